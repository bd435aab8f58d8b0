"""The Grafana provisioning example fits the package: the provider loads the directory the
package installs the dashboard into, and the dashboard names its data source through a
variable, so it works provisioned (no import step to fill ``__inputs``) as well as imported."""

from __future__ import annotations

import json
import re
from pathlib import Path

GRAFANA = Path(__file__).resolve().parents[2] / "packaging" / "grafana"
MAKEFILE = GRAFANA.parent / "Makefile"


def test_the_provider_loads_the_installed_dashboard_directory() -> None:
    provider = (GRAFANA / "provisioning/dashboards/forgeoned.yaml").read_text()
    [path] = re.findall(r"^\s+path: (\S+)$", provider, re.M)
    assert path == "/usr/share/forgeoned/grafana"
    assert "$(ROOT)/usr/share/forgeoned/" in MAKEFILE.read_text()  # grafana/ is copied there
    assert (GRAFANA / "forgeoned-dashboard.json").exists()


def test_the_data_source_is_a_dashboard_variable() -> None:
    dashboard = json.loads((GRAFANA / "forgeoned-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    used = set(re.findall(r"\$\{(\w+)\}", json.dumps(dashboard)))
    assert used <= set(variables)
    source = (GRAFANA / "provisioning/datasources/forgeoned.yaml").read_text()
    assert "type: prometheus" in source and "apiVersion: 1" in source


def test_the_dashboard_shows_when_each_plugin_review_is_due() -> None:
    """Issue 14: "the Grafana dashboard shows it" (the review due date; the alert is in the
    rules, fired by a real Prometheus in tests/integration/test_prometheus_daemon.py)."""
    dashboard = json.loads((GRAFANA / "forgeoned-dashboard.json").read_text())
    panels = [p for p in dashboard["panels"] if "review" in p.get("title", "").lower()]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert any("forgeone_plugin_review_due_timestamp_seconds" in e for e in exprs), exprs
