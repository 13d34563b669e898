"""The Grafana provisioning and the CLV drift dashboard, checked statically.

Grafana cannot run on the test machine (no package in any reachable registry, no Docker engine), so the
dashboard is checked the way Grafana would read it:

- it round-trips through ``grafana-foundation-sdk`` (Grafana's own generated schema models, panel and
  query plugins registered) without losing a key or changing a value;
- every PromQL expression passes promtool's parser (as recording rules in ``promtool check rules``);
- every metric it queries is one of the observability contract's names, and every selector filters on
  the ``$model_version`` variable;
- its datasource uids are the provisioned ones, and its Loki queries use the labels Promtail sets.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from clvdrift.observability.metrics import METRICS

ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_JSON = GRAFANA_DIR / "dashboards" / "clv-drift-dashboard.json"
DATASOURCES_YML = GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml"
PROVIDERS_YML = GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml"
PROMTAIL_YML = ROOT / "deploy" / "promtail" / "promtail-config.yml"

# The metric names of the observability contract: the exporter's own declaration.
CONTRACT_METRICS = frozenset(METRICS)

# The seed's seven panels (seeds 000/001: "Grafana Dashboard Panels").
SEED_PANELS = (
    "Data Drift Events",
    "Model Drift Events",
    "Model R² Score Over Time",
    "Model Error Metrics (MAE, RMSE)",
    "Drifted Features Count",
    "Airflow Error Logs",
    "Drift Detection Logs",
)

MODEL_VERSION_FILTER = 'model_version=~"$model_version"'

# What Grafana substitutes before the query reaches Prometheus: a multi-value variable with "All"
# becomes a regex (our allValue is ".*"), the interval variables become durations.
GRAFANA_SUBSTITUTIONS = {
    "$model_version": ".*",
    "${model_version}": ".*",
    "$__rate_interval": "5m",
    "$__range": "5m",
    "$__interval": "5m",
}

# PromQL words that are not metric names when they stand alone (aggregation modifiers, set operators).
_PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}
)
_IDENTIFIER = re.compile(r"(?<![\w:.])[a-zA-Z_:][a-zA-Z0-9_:]*")  # not the unit of 5m or 1e3

# The `promtool` fixture of tests/deploy/conftest.py: promtool(*args) runs the real binary.
Promtool = Callable[..., subprocess.CompletedProcess[str]]


# --- helpers ----------------------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))
    return data


def load_yaml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def strip_nulls(value: Any) -> Any:
    """The dashboard without null values: the SDK drops them (its models have no "null" state)."""
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key path, value) of every key of a JSON document; containers too, so empty ones count."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}/{key}"
            yield path, item
            yield from leaves(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{prefix}/{index}")


def sdk_round_trip(dashboard: dict[str, Any]) -> dict[str, Any]:
    """Load into the SDK's Dashboard model (panel options and queries typed by its plugins), dump back."""
    register_default_plugins()
    model = Dashboard.from_json(strip_nulls(dashboard))
    out: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return out


def lost_keys(before: dict[str, Any], after_doc: dict[str, Any]) -> list[str]:
    """Key paths of ``before`` missing from ``after_doc`` or holding another scalar value there."""
    original = dict(leaves(before))
    after = dict(leaves(after_doc))
    lost = []
    for path, value in original.items():
        if path not in after:
            lost.append(f"{path}: missing")
        elif not isinstance(value, dict | list) and after[path] != value:
            lost.append(f"{path}: {value!r} became {after[path]!r}")
    return lost


def lost_in_round_trip(dashboard: dict[str, Any]) -> list[str]:
    """What the SDK's model does not keep of the (null-stripped) dashboard."""
    return lost_keys(strip_nulls(dashboard), sdk_round_trip(dashboard))


def panels_of(dashboard: dict[str, Any], datasource_type: str) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["datasource"]["type"] == datasource_type]


def prometheus_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every Prometheus query in the dashboard."""
    return [(p["title"], t["expr"]) for p in panels_of(dashboard, "prometheus") for t in p["targets"]]


def substitute_grafana_variables(expr: str) -> str:
    """The expression as Prometheus receives it; a variable we do not know is left for the caller."""
    for variable in sorted(GRAFANA_SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_SUBSTITUTIONS[variable])
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (enough PromQL for what dashboards write).

    Drops string literals, label matchers ``{...}``, range/subquery brackets ``[...]`` and the label
    lists of ``by``/``without``/``on``/``ignoring``/``group_*``; what is left and is neither a function
    call (followed by ``(``), a keyword nor a number is a metric name.
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        following = text[match.end() :].lstrip()
        if name in _PROMQL_KEYWORDS or following.startswith("("):
            continue
        names.add(name)
    return names


def promtool_check(promtool: Promtool, expressions: list[str], tmp_path: Path) -> tuple[int, str]:
    """``promtool check rules`` on the expressions written as recording rules; (exit code, output)."""
    rules = {
        "groups": [
            {
                "name": "dashboard_expressions",
                "rules": [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(expressions)],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    result = promtool("check", "rules", path)
    return result.returncode, result.stdout


# --- the SDK round trip -------------------------------------------------------------------------------


def test_dashboard_round_trips_through_grafana_foundation_sdk_without_loss() -> None:
    assert lost_in_round_trip(load_dashboard()) == []


def test_round_trip_comparison_detects_keys_the_schema_does_not_know() -> None:
    dashboard = load_dashboard()
    broken = copy.deepcopy(dashboard)
    broken["panels"][0]["options"]["notAGaugeOption"] = True  # typed by the gauge plugin: dropped
    broken["panels"][1]["colour"] = "red"  # not a panel key
    broken["templating"]["list"][0]["definition"] = "shown in the UI only"  # not in the variable model
    assert sorted(lost_in_round_trip(broken)) == [
        "/panels/0/options/notAGaugeOption: missing",
        "/panels/1/colour: missing",
        "/templating/list/0/definition: missing",
    ]


def test_key_comparison_reports_changed_values_and_ignores_added_defaults() -> None:
    before = {"panels": [{"gridPos": {"h": 6, "w": 4}, "options": {"list": []}}], "refresh": "1m"}
    after = {"panels": [{"gridPos": {"h": 6, "w": 8}, "options": {"list": []}, "transparent": False}]}
    assert lost_keys(before, after) == ["/panels/0/gridPos/w: 4 became 8", "/refresh: missing"]
    assert lost_keys(before, before) == []


# --- PromQL -----------------------------------------------------------------------------------------------


def test_every_promql_expression_parses_with_promtool(promtool: Promtool, tmp_path: Path) -> None:
    expressions = [substitute_grafana_variables(expr) for _, expr in prometheus_expressions(load_dashboard())]
    assert len(expressions) >= 12
    unknown = [e for e in expressions if "$" in e]
    assert unknown == [], f"Grafana variables without a substitution in the test: {unknown}"
    code, output = promtool_check(promtool, expressions, tmp_path)
    assert code == 0, output
    assert f"SUCCESS: {len(expressions)} rules found" in output


def test_promtool_check_fails_on_a_broken_expression(promtool: Promtool, tmp_path: Path) -> None:
    good = substitute_grafana_variables(prometheus_expressions(load_dashboard())[0][1])
    code, output = promtool_check(
        promtool, [good, 'sum without (instance) (clv_drift_score{feature="x"}'], tmp_path
    )
    assert code != 0
    assert "dashboard:expr_1" in output or "parse error" in output, output


def test_every_metric_in_the_dashboard_is_in_the_observability_contract() -> None:
    used: set[str] = set()
    for title, expr in prometheus_expressions(load_dashboard()):
        names = metric_names(expr)
        assert names, f"panel {title!r}: no metric found in {expr!r}"
        assert names <= CONTRACT_METRICS, f"panel {title!r}: not in the contract: {names - CONTRACT_METRICS}"
        used |= names
    # The variable's query reads the info metric.
    assert "clv_champion_info" in used


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'sum without (instance) (increase(clv_drift_detected_total{drift_type="data"}[5m]))',
            {"clv_drift_detected_total"},
        ),
        (
            "time() - max without (instance) (clv_monitoring_last_run_timestamp_seconds)",
            {"clv_monitoring_last_run_timestamp_seconds"},
        ),
        (
            'clv_model_performance{metric=~"mae|rmse"} / on (model_version) clv_rows_processed',
            {"clv_model_performance", "clv_rows_processed"},
        ),
        ('clv_drift_scor{feature="by (x)"} offset 5m', {"clv_drift_scor"}),
    ],
)
def test_metric_name_extraction(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


def test_a_metric_outside_the_contract_is_caught() -> None:
    assert not metric_names('clv_drift_scor{feature="dataset"}') <= CONTRACT_METRICS


def test_every_prometheus_selector_filters_on_the_model_version_variable() -> None:
    for title, expr in prometheus_expressions(load_dashboard()):
        selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr)
        metric_selectors = [(name, matchers) for name, matchers in selectors if name in CONTRACT_METRICS]
        assert len(metric_selectors) == len(metric_names(expr)) == expr.count("{"), (
            f"panel {title!r}: every metric needs a label selector: {expr!r}"
        )
        for name, matchers in metric_selectors:
            assert MODEL_VERSION_FILTER in matchers, (
                f"panel {title!r}: {name} does not filter on $model_version"
            )


# --- panels, variable, datasources ---------------------------------------------------------------------


def test_the_seed_panels_and_ours_are_present() -> None:
    dashboard = load_dashboard()
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(titles) == len(set(titles))
    for title in (
        *SEED_PANELS,
        "Drift Score per Feature",
        "Model Spearman vs Reference",
        "Champion Version",
        "Last Run Status",
        "Last Run Age",
    ):
        assert title in titles
    assert "Retrains, Promotions and Rejections" in titles
    assert dashboard["uid"] == "clv-drift"
    assert dashboard["title"] == "CLV Drift Monitoring"
    assert len({p["id"] for p in dashboard["panels"]}) == len(titles)


def test_quality_panels_show_the_realized_value_against_the_champions_reference() -> None:
    """CLVModelPerformanceLow compares a model with its own reference (issue 16): the R² and Spearman
    panels show both lines, the reference dashed, and no absolute threshold such as the former 0.5."""
    panels = {p["title"]: p for p in load_dashboard()["panels"]}
    for title, metric in (("Model R² Score Over Time", "r2"), ("Model Spearman vs Reference", "spearman")):
        panel = panels[title]
        realized, reference = panel["targets"]
        assert metric_names(realized["expr"]) == {"clv_model_performance"}, title
        assert metric_names(reference["expr"]) == {"clv_model_reference_performance"}, title
        assert f'metric="{metric}"' in realized["expr"] and f'metric="{metric}"' in reference["expr"], title
        assert "thresholds" not in panel["fieldConfig"]["defaults"], title
        (dashed,) = panel["fieldConfig"]["overrides"]
        assert dashed["matcher"] == {"id": "byFrameRefID", "options": reference["refId"]}, title
        assert {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}} in dashed["properties"]


def test_model_version_variable() -> None:
    (variable,) = load_dashboard()["templating"]["list"]
    assert variable["name"] == "model_version"
    assert variable["type"] == "query"
    assert variable["datasource"] == {"type": "prometheus", "uid": "prometheus"}
    assert variable["query"]["query"] == "label_values(clv_champion_info, model_version)"
    assert variable["multi"] is True
    assert variable["includeAll"] is True
    assert variable["allValue"] == GRAFANA_SUBSTITUTIONS["$model_version"]


def test_datasource_uids_resolve_to_the_provisioned_datasources() -> None:
    provisioned = {d["uid"]: d for d in load_yaml(DATASOURCES_YML)["datasources"]}
    assert provisioned["prometheus"]["type"] == "prometheus"
    assert provisioned["prometheus"]["url"] == "http://prometheus:9090"
    assert provisioned["loki"]["type"] == "loki"
    assert provisioned["loki"]["url"] == "http://loki:3100"
    assert [uid for uid, d in provisioned.items() if d.get("isDefault")] == ["prometheus"]

    dashboard = load_dashboard()
    references = [p["datasource"] for p in dashboard["panels"]]
    references += [t["datasource"] for p in dashboard["panels"] for t in p["targets"]]
    references += [v["datasource"] for v in dashboard["templating"]["list"]]
    for ref in references:
        assert ref["uid"] in provisioned, f"datasource uid {ref['uid']!r} is not provisioned"
        assert ref["type"] == provisioned[ref["uid"]]["type"]
    assert {p["datasource"]["uid"] for p in panels_of(dashboard, "loki")} == {"loki"}
    for panel in dashboard["panels"]:
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"]), panel["title"]


def test_loki_queries_use_the_labels_promtail_sets() -> None:
    promtail = load_yaml(PROMTAIL_YML)
    jobs = set()
    labels = {"filename"}  # set by Promtail for every file it tails
    for scrape in promtail["scrape_configs"]:
        for static in scrape["static_configs"]:
            jobs.add(static["labels"]["job"])
            labels |= {k for k in static["labels"] if not k.startswith("__")}
        for stage in scrape["pipeline_stages"]:
            labels |= set(stage.get("labels") or {})
    logs_panels = panels_of(load_dashboard(), "loki")
    assert {p["title"] for p in logs_panels} == {"Airflow Error Logs", "Drift Detection Logs"}
    for panel in logs_panels:
        for target in panel["targets"]:
            selector = re.match(r"\{([^}]*)\}", target["expr"])
            assert selector, f"panel {panel['title']!r}: no stream selector in {target['expr']!r}"
            matchers = re.findall(r'([a-zA-Z_]\w*)\s*(=~|!=|!~|=)\s*"([^"]*)"', selector.group(1))
            assert matchers, target["expr"]
            for name, op, value in matchers:
                assert name in labels, f"panel {panel['title']!r}: Promtail sets no label {name!r}"
                if name == "job":
                    assert op == "=" and value in jobs, f"panel {panel['title']!r}: no Promtail job {value!r}"


def test_dashboard_provider_loads_the_mounted_dashboards_folder() -> None:
    (provider,) = load_yaml(PROVIDERS_YML)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert "deploy/grafana/dashboards:/var/lib/grafana/dashboards" in PROVIDERS_YML.read_text(
        encoding="utf-8"
    )
