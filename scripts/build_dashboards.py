"""Build the Grafana dashboards in deploy/helm/boxoffice/files/dashboards/ (`make dashboards`).

The JSON files are what ships; the modules in scripts/dashboards/ (one per dashboard) are how
they are kept consistent. Edit there, run this, commit both. tests/observability checks the
files match.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python scripts/build_dashboards.py`
    sys.path.insert(0, str(ROOT))

from scripts.dashboards import bookings, messaging, platform  # noqa: E402
from scripts.dashboards.grafana import render  # noqa: E402

OUT = ROOT / "deploy/helm/boxoffice/files/dashboards"

__all__ = ["build", "main", "render"]


def build() -> dict[str, dict[str, Any]]:
    """Every dashboard by file name."""
    return {
        "platform-overview": platform.build(),
        "bookings": bookings.build(),
        "messaging": messaging.build(),
    }


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    for name, built in build().items():
        (out / f"{name}.json").write_text(render(built))


if __name__ == "__main__":
    main()
