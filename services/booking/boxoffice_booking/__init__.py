"""The booking service: the HTTP API and its outbox relay."""
