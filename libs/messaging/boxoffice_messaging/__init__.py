"""Celery configuration, queue names and the transactional outbox, shared by the services."""
