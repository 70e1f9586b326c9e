"""The real image, built by `make image-test`, runs every service as the chart runs it.

Each container runs read-only with a tmpfs /tmp, as UID 10001, with the command and the plain
env entries of its component in the rendered chart (and the chart's ConfigMap), against the test
PostgreSQL and Redis; a hold is paid for and its confirmation email arrives. Skipped unless
BOXOFFICE_TEST_IMAGE names the image (the Makefile target builds it and sets it).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from boxoffice_devstack.servers import free_port

from tests.helm.chart import CONNECTIONS, Manifest, name, render
from tests.support.processes import wait_for_http, wait_until
from tests.support.smtp import SmtpServer
from tests.support.stack import API_KEY, Stack
from tests.support.unix_forwarder import UnixForwarder

IMAGE = os.environ.get("BOXOFFICE_TEST_IMAGE", "")
ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.skipif(not IMAGE, reason="`make image-test` builds the image and runs these"),
    pytest.mark.timeout(900),
]

# Daemonless podman as root in a sandbox: vfs storage, runc with cgroupfs, the host's network
# (the test servers listen on 127.0.0.1) and its ulimits (containers.conf sets no defaults).
PODMAN = ["podman", "--storage-driver", "vfs"]
RUN = [
    "run", "--detach", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
    "--network", "host", "--ulimit", "host",
    "--read-only", "--tmpfs", "/tmp:rw,size=64m,mode=1777", "--user", "10001:10001",
]  # fmt: skip
COMPONENTS = ["booking", "relay", "notifier-email", "reaper", "scheduler"]


def podman(
    *args: str, timeout: float = 300, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "scripts" / "image" / "containers.conf")}
    return subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=check, env=env
    )


@dataclass
class ChartPod:
    """What the chart gives one component's container: its command and its plain env."""

    command: list[str]
    env: dict[str, str]
    init_command: list[str] = field(default_factory=list)


def chart_pods() -> dict[str, ChartPod]:
    rendered = render(CONNECTIONS)
    config: dict[str, str] = rendered.get("ConfigMap", "shop-boxoffice")["data"]
    pods = {}
    for component in [*COMPONENTS, "migrations"]:
        kind = "Job" if component == "migrations" else "Deployment"
        spec: Manifest = rendered.get(kind, name(component))["spec"]["template"]["spec"]
        container = spec["containers"][0]
        plain = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
        init = [c["command"] for c in spec.get("initContainers", [])]
        pods[component] = ChartPod(
            container["command"] + container.get("args", []),
            {**config, **plain},
            init[0] if init else [],
        )
    return pods


@dataclass
class Running:
    api: httpx.Client
    smtp: SmtpServer
    containers: dict[str, str]
    showtime_id: uuid.UUID


def start(container: str, command: list[str], env: dict[str, str]) -> str:
    flags = [arg for key, value in sorted(env.items()) for arg in ("--env", f"{key}={value}")]
    podman("rm", "--force", container, check=False)
    # Output to a file, not a pipe: the container's monitor (conmon) keeps the descriptors it
    # inherits open, so reading a pipe to its end would wait as long as the container runs.
    log = ROOT / "var" / "image" / f"{container}.podman.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        subprocess.run(
            [*PODMAN, *RUN, "--name", container, *flags, IMAGE, *command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=True,
            env={
                **os.environ,
                "CONTAINERS_CONF": str(ROOT / "scripts" / "image" / "containers.conf"),
            },
        )
    return container


def logs(container: str) -> str:
    done = podman("logs", container, check=False)
    return done.stdout + done.stderr


def running(container: str) -> bool:
    state = podman("inspect", "--format", "{{.State.Running}}", container, check=False)
    return state.stdout.strip() == "true"


@pytest.fixture(scope="module")
def system(stack: Stack) -> Iterator[Running]:
    pods = chart_pods()
    database = f"image_{uuid.uuid4().hex[:10]}"
    stack.postgres.create_database(database)
    forwarder = UnixForwarder(str(Path(stack.postgres.socket_dir) / ".s.PGSQL.5432")).start()
    smtp = SmtpServer().start()
    api_port = free_port()
    tag = uuid.uuid4().hex[:6]
    base = {
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{forwarder.port}/{database}",
        "REDIS_URL": stack.redis_url,
        "BOXOFFICE_ENV": "test",  # the `test` payment provider
        "BOXOFFICE_SMTP_HOST": "127.0.0.1",
        "BOXOFFICE_SMTP_PORT": str(smtp.port),
        "BOXOFFICE_SMTP_STARTTLS": "false",
        "BOXOFFICE_RATE_LIMIT_REQUESTS": "0",
        # No Kubernetes API here: the replicas elect their leader through Redis.
        "BOXOFFICE_SCHEDULER_LEADER_ELECTION": "redis",
    }
    containers: dict[str, str] = {}
    previous_url = os.environ.get("DATABASE_URL")
    try:
        # The chart's order: the pods' wait-for-migrations holds them until the Job has run.
        waiting = start(
            f"bo-wait-{tag}", pods["booking"].init_command, {**pods["booking"].env, **base}
        )
        containers["wait-for-migrations"] = waiting
        start(
            f"bo-migrations-{tag}", pods["migrations"].command, {**pods["migrations"].env, **base}
        )
        containers["migrations"] = f"bo-migrations-{tag}"
        wait_until(
            lambda: "migrations applied" in logs(f"bo-migrations-{tag}"), 300, "the migration Job"
        )
        wait_until(lambda: "schema at head" in logs(waiting), 120, "wait-for-migrations")
        for component in COMPONENTS:
            env = {**pods[component].env, **base, "BOXOFFICE_METRICS_PORT": str(free_port())}
            if component == "booking":
                env |= {
                    "BOXOFFICE_API_HOST": "127.0.0.1",
                    "BOXOFFICE_API_PORT": str(api_port),
                    "BOXOFFICE_BOOTSTRAP_API_KEY": API_KEY,
                }
            containers[component] = start(f"bo-{component}-{tag}", pods[component].command, env)
        url = f"http://127.0.0.1:{api_port}"
        wait_for_http(url + "/readyz", timeout=300)
        for worker in ("notifier-email", "reaper"):
            container = containers[worker]

            def ready(container: str = container) -> bool:
                return "ready." in logs(container)

            wait_until(ready, 300, f"{worker} ready")
        # The showtime is made on the host, in the image's database.
        os.environ["DATABASE_URL"] = base["DATABASE_URL"]
        showtime_id = make_showtime_in(base["DATABASE_URL"])
        client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        )
        yield Running(client, smtp, containers, showtime_id)
        client.close()
    finally:
        for container in containers.values():
            print(f"---- {container}\n{logs(container)[-3000:]}")
            podman("stop", "--time", "20", container, check=False)
            podman("rm", "--force", container, check=False)
        smtp.stop()
        forwarder.stop()
        if previous_url is not None:
            os.environ["DATABASE_URL"] = previous_url


def make_showtime_in(database_url: str) -> uuid.UUID:
    from boxoffice_db.engine import get_engine, get_sessionmaker
    from boxoffice_settings import get_settings

    for cached in (get_settings, get_engine, get_sessionmaker):
        cached.cache_clear()
    from tests.support.catalog import make_showtime

    assert urlsplit(get_settings().database_url).port == urlsplit(database_url).port
    return make_showtime()


def test_a_paid_hold_sends_its_confirmation_through_the_containers(system: Running) -> None:
    email = f"image-{uuid.uuid4().hex[:8]}@example.com"
    created = system.api.post(
        "/v1/bookings",
        json={
            "showtime_id": str(system.showtime_id),
            "seats": ["B1", "B2"],
            "customer": {"email": email, "phone": "+919800000001"},
        },
    )
    assert created.status_code == 201, created.text
    booking = created.json()
    paid = system.api.post(
        f"/v1/bookings/{booking['id']}/payments", json={"provider": "test", "outcome": "succeeded"}
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["booking"]["status"] == "CONFIRMED"
    # relay (outbox -> Celery) -> notifier-email (SMTP), each in its own container.
    wait_until(lambda: any(m["To"] == email for m in system.smtp.messages()), 120, "the email")
    [message] = [m for m in system.smtp.messages() if m["To"] == email]
    assert booking["reference"] in message["Subject"]


def test_every_service_runs_as_10001_on_a_read_only_root(system: Running) -> None:
    for component in COMPONENTS:
        container = system.containers[component]
        assert running(container), logs(container)[-3000:]
        assert podman("exec", container, "id", "-u").stdout.strip() == "10001"
        denied = podman("exec", container, "touch", "/app/written", check=False)
        assert denied.returncode != 0
        assert "Read-only file system" in denied.stderr
        assert podman("exec", container, "touch", "/tmp/written", check=False).returncode == 0
