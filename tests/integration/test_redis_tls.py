"""REDIS_URL may be `rediss://`: clients, Celery's broker and result backend, and the admin CLI
over real TLS (a TLS listener in front of the tests' Redis), with the server's certificate
verified."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.exceptions
import trustme
from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.redis_client import redis_client, redis_from_settings
from boxoffice_settings import Settings

from tests.support.celery_probe import assert_celery_round_trip
from tests.support.stack import Stack
from tests.support.tls_proxy import TlsProxy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A rediss:// URL to the stack's Redis through TLS, trusting the test CA only."""
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    proxy = TlsProxy(stack.redis.port, context).start()
    try:
        yield f"rediss://127.0.0.1:{proxy.port}/0?ssl_ca_certs={ca_file}"
    finally:
        proxy.stop()


def settings_for(url: str) -> Settings:
    return Settings(database_url="postgresql://unused@127.0.0.1:1/unused", redis_url=url)


def test_a_client_speaks_tls_and_checks_the_certificate(tls_url: str) -> None:
    client = redis_client(tls_url, socket_connect_timeout=2)
    key = f"tls-{uuid.uuid4()}"
    client.set(key, "Zoë Ñandú")
    assert client.get(key) == "Zoë Ñandú".encode()
    # The same server without our CA: its certificate is not trusted, so no connection.
    untrusted = redis_client(tls_url.split("?", 1)[0], socket_connect_timeout=2)
    with pytest.raises(redis.exceptions.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.ping()


def test_celery_publishes_consumes_and_stores_results_over_tls(tls_url: str) -> None:
    app = create_celery_app("tls-test", settings_for(tls_url))
    app.conf.update(result_backend=tls_url)  # as the notifier configures it
    assert app.conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    client = redis_from_settings(settings_for(tls_url), socket_connect_timeout=2)
    assert_celery_round_trip(app, client, "reaper.tls_probe")


def test_the_admin_cli_reads_the_queues_over_tls(stack: Stack, tls_url: str) -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "boxoffice_booking.admin", "--json", "queues"],
        env=stack.env(REDIS_URL=tls_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).parent,
    )
    assert cli.returncode == 0, cli.stderr
    assert set(json.loads(cli.stdout)["queues"]) == {"notifier.email", "notifier.sms", "reaper"}
