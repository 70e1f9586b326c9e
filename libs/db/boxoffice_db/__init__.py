"""The Boxoffice schema, engine and session helpers shared by the services."""
