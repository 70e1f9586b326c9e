"""Local stack for `make run` and the tests: embedded PostgreSQL, a private Redis, an SMTP sink."""
