"""The chart rendered with its monitors on, and the target labels the operator derives from it."""

from __future__ import annotations

from functools import lru_cache

from tests.helm.chart import CONNECTIONS, Manifest, merge, render
from tests.observability.operator import pods, scrape_configs, target_labels

COMPONENTS = ("booking", "relay", "notifier-email", "notifier-sms", "reaper", "scheduler")


def monitored_values(interval: str = "30s") -> dict[str, object]:
    """Values that turn on every monitor (with `interval`) and the rules."""
    scrape = {"enabled": True, "interval": interval}
    return merge(
        CONNECTIONS,
        {
            "monitoring": {
                "serviceMonitor": dict(scrape),
                "podMonitor": dict(scrape),
                "prometheusRule": {"enabled": True},
            }
        },
    )


def rendered_objects(interval: str = "30s") -> list[Manifest]:
    return list(render(monitored_values(interval)).objects)


@lru_cache(maxsize=1)
def labels_by_component() -> dict[str, dict[str, str]]:
    """component -> the labels its pod's target gets (one pod each; the address is made up)."""
    objects = rendered_objects()
    listening = {
        c: {"http": f"10.0.0.{i}:8000", "metrics": f"10.0.0.{i}:9100"}
        for i, c in enumerate(COMPONENTS, 1)
    }
    found: dict[str, dict[str, str]] = {}
    for config in scrape_configs(objects, pods(objects, listening)):
        for labels in target_labels(config):
            assert labels["component"] not in found, f"{labels['component']} scraped twice"
            found[labels["component"]] = labels
    return found
