"""The metric catalogue (docs/metrics.md), the bridge's registry, the Grafana dashboard and the
Prometheus alert rules name the same series, and every PromQL expression in them parses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from bridge.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "metrics.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "bridge-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
_ROW = re.compile(r"^\| `(\w+)` \| (counter|gauge|histogram) \|", re.MULTILINE)
_ALERT_NAME = re.compile(r"`(Bridge\w+)`")
_GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b")
_LABEL_VALUES = re.compile(r"label_values\((\w+)")
_SUFFIXES = {"counter": ("",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
_PROMETHEUS_OWN = {"up"}
"""Series Prometheus adds to every target, listed in the catalogue's second table."""


def _catalogue() -> dict[str, str]:
    """Each catalogued metric's type, by name."""
    return {name: kind for name, kind in _ROW.findall(CATALOGUE.read_text())}


def _series() -> set[str]:
    """Every series name a query may use: the catalogued metrics as Prometheus stores them."""
    return {name + suffix for name, kind in _catalogue().items() for suffix in _SUFFIXES[kind]}


def _names(expr: str) -> set[str]:
    """The metric names an expression selects; raises ``ValueError`` if it does not parse."""
    found: set[str] = set()

    def visit(node: Any, *_: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every panel target, Grafana's interval variables given a value."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], _GRAFANA_INTERVALS.sub("5m", target["expr"]))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_catalogue_lists_exactly_what_the_bridge_exports() -> None:
    """Every metric of the registry is in the catalogue with its type, and nothing else is."""
    exported: dict[str, str] = {}
    for family in Metrics().registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        exported[name] = family.type
    catalogued = {n: k for n, k in _catalogue().items() if n not in _PROMETHEUS_OWN}
    assert catalogued == exported, "docs/metrics.md and bridge/metrics.py list different metrics"


def test_the_catalogue_parser_sees_every_row() -> None:
    """A row the pattern missed would let a metric escape the comparison above."""
    rows = [line for line in CATALOGUE.read_text().splitlines() if line.startswith("| `")]
    assert len(rows) == len(_catalogue())


def test_alert_rules_parse_and_use_catalogued_series() -> None:
    """Each rule has what Alertmanager routes on, a PromQL expression that parses and names only
    catalogued series; the catalogue names every alert and only those."""
    rules = _alert_rules()
    series = _series()
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule.get("alert")
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        names = _names(rule["expr"])
        assert names, rule["alert"]
        assert names <= series, f"{rule['alert']} uses {names - series}, not in docs/metrics.md"
    documented = set(_ALERT_NAME.findall(CATALOGUE.read_text()))
    assert documented == {rule["alert"] for rule in rules}


def test_dashboard_queries_parse_and_use_catalogued_series() -> None:
    """Every panel's query parses (Grafana's ``$__rate_interval`` given a value; ``$job`` and
    ``$instance`` only ever inside label matchers) and names catalogued series only, as do the
    queries of the dashboard's variables."""
    dashboard = json.loads(DASHBOARD.read_text())
    series = _series()
    queries = _dashboard_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        names = _names(expr)
        assert names, title
        assert names <= series, f"panel {title!r} uses {names - series}, not in docs/metrics.md"
    variables = [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert variables
    for definition in variables:
        assert set(_LABEL_VALUES.findall(definition)) <= series, definition
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    "expr",
    ["sum(rate(bridge_slack_calls_total[5m]", "rate(bridge_slack_calls_total[$__rate_interval])"],
)
def test_a_broken_expression_is_caught(expr: str) -> None:
    """The parser refuses what Prometheus would: an unclosed call, a Grafana variable left over."""
    with pytest.raises(ValueError, match=r".+"):
        _names(expr)
