"""The Celery app Flower monitors: `celery -A boxoffice_messaging.flower_app flower`.

Flower needs the same broker settings as the services (a sentinel:// REDIS_URL needs its master
name in the transport options), so it loads this app rather than a bare `--broker` URL.
"""

from __future__ import annotations

from boxoffice_settings import get_settings

from boxoffice_messaging.celery_app import create_celery_app

app = create_celery_app("boxoffice-flower", get_settings())
