"""The Grafana dashboards that ship in the chart, one module per dashboard.

`scripts/build_dashboards.py` writes them to deploy/helm/boxoffice/files/dashboards/.
"""
