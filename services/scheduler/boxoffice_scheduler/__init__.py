"""The scheduler service: Celery Beat sending the periodic tasks."""
