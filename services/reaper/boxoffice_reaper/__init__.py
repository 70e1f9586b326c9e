"""The reaper service: Celery workers that expire unpaid holds and release their seats."""
