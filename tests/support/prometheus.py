"""A real Prometheus server (the Debian package's binary) scraping the test's processes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml
from boxoffice_devstack.servers import free_port

from tests.support.processes import wait_until


class PrometheusServer:
    """Runs `scrape_configs` (as Prometheus's config file has them) and evaluates `rule_files`.

    tests/observability/operator.py derives them from the chart's monitors as the Prometheus
    Operator does.
    """

    def __init__(
        self, workdir: Path, scrape_configs: list[dict[str, Any]], rule_files: list[Path]
    ) -> None:
        binary = shutil.which("prometheus")
        assert binary, "install the Debian package `prometheus` (.ci/run does)"
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": scrape_configs,
        }
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PrometheusServer:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: httpx.get(self.url + "/-/ready", timeout=1).status_code == 200,
            60,
            "prometheus ready",
            interval=0.2,
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def api(self, path: str, **params: str) -> dict[str, Any]:
        response = httpx.get(self.url + "/api/v1/" + path, params=params, timeout=10)
        body: dict[str, Any] = response.json()
        return body

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query; the whole API answer (status, data or errorType/error)."""
        return self.api("query", query=expr)

    def targets(self) -> list[dict[str, Any]]:
        """The active targets: their `labels` (after relabeling) and `health`."""
        active: list[dict[str, Any]] = self.api("targets")["data"]["activeTargets"]
        return active

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def describe(self, answer: dict[str, Any]) -> str:
        return json.dumps(answer)[:500]


def firing(prometheus: PrometheusServer, alertname: str) -> list[dict[str, str]]:
    """The label sets of `alertname`'s firing alerts."""
    alerts = prometheus.api("alerts")["data"]["alerts"]
    return [
        a["labels"]
        for a in alerts
        if a["state"] == "firing" and a["labels"]["alertname"] == alertname
    ]
