"""Settings for every Boxoffice process, read once from the environment."""

from boxoffice_settings.settings import Environment, Settings, get_settings

__all__ = ["Environment", "Settings", "get_settings"]
