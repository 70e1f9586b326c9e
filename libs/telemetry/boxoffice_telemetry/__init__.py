"""Logging, metrics and tracing set-up shared by the services."""
