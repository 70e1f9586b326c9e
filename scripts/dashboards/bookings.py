# ruff: noqa: E501 - PromQL reads best on one line
"""Boxoffice / Bookings: holds, conflicts, confirmations, cancellations, expiries, revenue."""

from __future__ import annotations

from typing import Any

from scripts.dashboards.grafana import (
    RATE,
    Layout,
    Panel,
    dashboard,
    eq,
    green_red,
    quantile,
    quantiles,
    sel,
)

# A hold's 409s, by who decided: PostgreSQL (`conflict`), the seat cache (`conflict_cached`),
# or another hold of the seat in flight (`conflict_in_flight`, the hold guard).
CONFLICTS = 'result=~"conflict.*"'


def build() -> dict[str, Any]:
    layout = Layout()
    layout.row("Now")
    layout.add(
        Panel(
            "Holds / s",
            [(f"sum(rate(boxoffice_holds_total{sel(eq('result', 'created'))}[{RATE}]))", "holds")],
            kind="stat",
            unit="ops",
            w=6,
            h=5,
        ),
        Panel(
            # Every kind: decided by PostgreSQL, by the cache, or in flight (hold guard).
            "Conflict ratio",
            [
                (
                    f"(sum(rate(boxoffice_holds_total{sel(CONFLICTS)}[{RATE}])) or vector(0)) / clamp_min(sum(rate(boxoffice_holds_total{sel()}[{RATE}])), 1e-9)",
                    "conflicts",
                )
            ],
            kind="stat",
            unit="percentunit",
            w=6,
            h=5,
        ),
        Panel(
            "Confirmations (24h)",
            [(f"sum(increase(boxoffice_confirmations_total{sel()}[24h]))", "confirmed")],
            kind="stat",
            w=6,
            h=5,
        ),
        Panel(
            "Expiry lag p99",
            quantile(0.99, "boxoffice_expiry_lag_seconds"),
            kind="stat",
            unit="s",
            thresholds=green_red(1.5),
            w=6,
            h=5,
        ),
    )
    layout.row("Flow")
    layout.add(
        Panel(
            "Hold attempts / s by result",
            [(f"sum by (result) (rate(boxoffice_holds_total{sel()}[{RATE}]))", "{{result}}")],
            unit="ops",
            stack=True,
        ),
        Panel(
            "Confirmations, cancellations, expiries / s",
            [
                (f"sum(rate(boxoffice_confirmations_total{sel()}[{RATE}]))", "confirmed"),
                (f"sum(rate(boxoffice_cancellations_total{sel()}[{RATE}]))", "cancelled"),
                (f"sum(rate(boxoffice_holds_expired_total{sel()}[{RATE}]))", "expired"),
            ],
            unit="ops",
        ),
        Panel(
            "Hold → confirmation conversion (1h)",
            [
                (
                    f"sum(increase(boxoffice_confirmations_total{sel()}[1h])) / clamp_min(sum(increase(boxoffice_holds_total{sel(eq('result', 'created'))}[1h])), 1)",
                    "conversion",
                )
            ],
            unit="percentunit",
        ),
        Panel(
            "Revenue captured per hour (minor units) by currency",
            [
                (
                    f"sum by (currency) (increase(boxoffice_revenue_minor_total{sel()}[1h]))",
                    "{{currency}}",
                )
            ],
        ),
    )
    layout.row("Expiry")
    layout.add(
        Panel(
            "Expiry lag (expires_at → EXPIRED)",
            quantiles("boxoffice_expiry_lag_seconds"),
            unit="s",
            desc="SLO: p99 under 1.5 s. Seats are free at expires_at regardless; this is how late the reaper marks and announces it.",
        ),
        Panel(
            "Holds expired per sweep batch",
            [
                (
                    f"sum(rate(boxoffice_holds_expired_total{sel()}[{RATE}])) / clamp_min(sum(rate(celery_task_succeeded_total{sel(eq('name', 'reaper.expire_due_holds'))}[{RATE}])), 1e-9)",
                    "holds per sweep",
                )
            ],
        ),
    )
    return dashboard(
        "boxoffice-bookings",
        "Boxoffice / Bookings",
        "Holds, conflicts, confirmations, cancellations, expiries, expiry lag and revenue of one release.",
        layout,
        ["bookings"],
    )
