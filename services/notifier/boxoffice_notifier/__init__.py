"""The notifier service: Celery workers that send email and SMS."""
