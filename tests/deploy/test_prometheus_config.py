"""deploy/prometheus: the config, the rules of the observability contract and their promtool unit tests,
checked with the real promtool (Debian's 2.42)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
CONFIG = PROM / "prometheus.yml"
RULES = PROM / "rules.yml"
UNIT_TESTS = PROM / "tests" / "rules_test.yml"

# The contract (docs of issue 8, obs_spec): recording rules and alerts, exactly.
RECORDING = {
    "clv_data_drift_rate": (
        'sum without (model_version, instance) (increase(clv_drift_detected_total{drift_type="data"}[1d]))'
    ),
    "clv_model_drift_rate": (
        'sum without (model_version, instance) (increase(clv_drift_detected_total{drift_type="model"}[1d]))'
    ),
    "clv_model_r2_score": 'max without (instance) (clv_model_performance{metric="r2"})',
    # issue 16: the champion's relative quality drop against its own registered reference
    "clv_model_quality_drop": (
        '( max without (instance) (clv_model_reference_performance{metric=~"r2|spearman"})'
        ' - max without (instance) (clv_model_performance{metric=~"r2|spearman"}) )'
        ' / abs(max without (instance) (clv_model_reference_performance{metric=~"r2|spearman"}))'
    ),
}
ALERTS = {
    "CLVDataDriftDetected": (
        'max without (instance) (clv_drift_status{drift_type="data"}) == 1',
        "warning",
        "0m",
    ),
    "CLVModelDriftDetected": (
        'max without (instance) (clv_drift_status{drift_type="model"}) == 1',
        "critical",
        "0m",
    ),
    # issue 16: relative to the champion's own reference, not an absolute R² (see the recording rule)
    "CLVModelPerformanceLow": ("clv_model_quality_drop > 0.1", "warning", "0m"),
    "CLVMonitoringStale": (
        "time() - max without (instance) (clv_monitoring_last_success_timestamp_seconds) > 2 * 86400",
        "warning",
        "0m",
    ),
    "CLVMonitoringFailing": (
        "max without (instance) (clv_monitoring_last_run_success) == 0",
        "critical",
        "0m",
    ),
    # issue 8 follow-up: the other alerts need the series to exist
    "CLVMonitoringMetricsAbsent": (
        'absent(clv_monitoring_last_run_timestamp_seconds{job="clv_drift_monitoring"})',
        "warning",
        "1h",
    ),
    # issue 15: a bad feed (quarantined or unreadable new files) alerts
    "CLVFilesQuarantined": (
        'max without (instance) (clv_monitoring_last_run_files{status=~"quarantined|unreadable"}) > 0',
        "warning",
        "0m",
    ),
}
# absent() returns only the job label, so this alert's summary cannot name a model_version.
WITHOUT_MODEL_VERSION = {"CLVMonitoringMetricsAbsent"}

RUNBOOK = "https://github.com/clvdrift/clvdrift/blob/main/docs/operations.md#"


def load(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def one_line(expr: str) -> str:
    """A PromQL expression with its whitespace collapsed (a rule may be written over several lines)."""
    return " ".join(expr.split())


def groups() -> dict[str, list[dict]]:
    return {g["name"]: g["rules"] for g in load(RULES)["groups"]}


def test_promtool_checks_the_config_and_its_rule_file(promtool):
    proc = promtool("check", "config", CONFIG)
    assert proc.returncode == 0, proc.stdout
    assert "SUCCESS: 1 rule files found" in proc.stdout
    assert "SUCCESS: 11 rules found" in proc.stdout


def test_promtool_checks_the_rules(promtool):
    proc = promtool("check", "rules", RULES)
    assert proc.returncode == 0, proc.stdout
    assert "SUCCESS: 11 rules found" in proc.stdout


def test_promtool_rule_unit_tests_pass(promtool):
    proc = promtool("test", "rules", UNIT_TESTS)
    assert proc.returncode == 0, proc.stdout
    assert "SUCCESS" in proc.stdout


def test_scrape_jobs_intervals_and_alertmanager():
    config = load(CONFIG)
    assert config["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}
    assert config["rule_files"] == ["rules.yml"]
    [am] = config["alerting"]["alertmanagers"]
    assert am["static_configs"] == [{"targets": ["alertmanager:9093"]}]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs.items()}
    assert targets == {
        "prometheus": ["localhost:9090"],
        "pushgateway": ["pushgateway:9091"],
        "clvdrift": ["clvdrift:8000"],
        "node-exporter": ["node-exporter:9100"],
        "cadvisor": ["cadvisor:8081"],  # the seed's port (deploy/docker-compose.yml runs it there)
        "airflow": ["statsd-exporter:9102"],
    }
    # honor_labels keeps the pushed job="clv_drift_monitoring"; no other job may override labels
    assert [n for n, job in jobs.items() if job.get("honor_labels")] == ["pushgateway"]
    assert jobs["clvdrift"]["metrics_path"] == "/metrics"
    # each address in one place, so the integration test can substitute it in the text
    text = CONFIG.read_text()
    for address in [*(t for ts in targets.values() for t in ts), "alertmanager:9093"]:
        assert text.count(address) == 1, address


def test_rules_are_exactly_the_contract():
    by_group = groups()
    assert set(by_group) == {"clv_drift_recording", "clv_drift_alerts"}
    recording = {r["record"]: one_line(r["expr"]) for r in by_group["clv_drift_recording"]}
    assert recording == RECORDING
    alerts = {r["alert"]: r for r in by_group["clv_drift_alerts"]}
    assert set(alerts) == set(ALERTS)
    for name, rule in alerts.items():
        expr, severity, hold = ALERTS[name]
        assert one_line(rule["expr"]) == expr, name
        assert rule.get("for", "0m") == hold, name
        assert rule["labels"] == {"severity": severity, "service": "clvdrift"}, name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        if name in WITHOUT_MODEL_VERSION:
            assert "model_version" not in annotations["summary"], name
        else:
            assert "{{ $labels.model_version }}" in annotations["summary"], name
        assert annotations["description"].strip(), name
        assert annotations["runbook_url"] == RUNBOOK + name.lower(), name


def test_unit_tests_cover_every_rule_both_ways():
    """Every alert has a case where it fires and one where it stays silent; every recording rule is
    evaluated."""
    tests = load(UNIT_TESTS)["tests"]
    assert load(UNIT_TESTS)["rule_files"] == ["../rules.yml"]
    firing: set[str] = set()
    silent: set[str] = set()
    for case in (c for t in tests for c in t.get("alert_rule_test", [])):
        (firing if case["exp_alerts"] else silent).add(case["alertname"])
    assert firing == set(ALERTS)
    assert silent == set(ALERTS)
    evaluated = {c["expr"] for t in tests for c in t.get("promql_expr_test", [])}
    assert set(RECORDING) <= evaluated


def copy_rules(tmp_path: Path, mutate: tuple[str, str] | None = None) -> Path:
    """rules.yml (optionally with one substring replaced) and its unit tests, laid out as in the repo."""
    text = RULES.read_text()
    if mutate is not None:
        old, new = mutate
        assert text.count(old) == 1, f"mutation target {old!r} not unique in {RULES}"
        text = text.replace(old, new)
    (tmp_path / "rules.yml").write_text(text)
    (tmp_path / "tests").mkdir()
    shutil.copy(UNIT_TESTS, tmp_path / "tests" / "rules_test.yml")
    shutil.copy(CONFIG, tmp_path / "prometheus.yml")
    return tmp_path


def test_a_syntax_error_in_an_expression_fails_promtool(promtool, tmp_path):
    copy = copy_rules(
        tmp_path, ("expr: clv_model_quality_drop > 0.1", "expr: clv_model_quality_drop > > 0.1")
    )
    rules = promtool("check", "rules", copy / "rules.yml")
    assert rules.returncode != 0
    assert "parse error" in rules.stdout
    config = promtool("check", "config", copy / "prometheus.yml")
    assert config.returncode != 0
    assert "parse error" in config.stdout


def test_broken_yaml_fails_promtool(promtool, tmp_path):
    (tmp_path / "rules.yml").write_text(
        RULES.read_text().replace("  - name: clv_drift_alerts", "  - name: [x")
    )
    proc = promtool("check", "rules", tmp_path / "rules.yml")
    assert proc.returncode != 0
    assert "yaml" in proc.stdout.lower()


@pytest.mark.parametrize(
    "mutation",
    [
        ("clv_model_quality_drop > 0.1", "clv_model_quality_drop > 0.2"),
        ("clv_model_quality_drop > 0.1", "clv_model_quality_drop >= 0.1"),
        ("/ abs(max without (instance)", "/ (max without (instance)"),
        (
            '- max without (instance) (clv_model_performance{metric=~"r2|spearman"})',
            '- max without (instance) (clv_model_performance{metric=~"r2"})',
        ),
        (
            '- max without (instance) (clv_model_performance{metric=~"r2|spearman"})',
            "- on (metric, job) group_left max without (instance, model_version) "
            '(clv_model_performance{metric=~"r2|spearman"})',
        ),
        ("> 2 * 86400", "> 3 * 86400"),
        ('clv_drift_status{drift_type="data"}) == 1', 'clv_drift_status{drift_type="data"}) >= 0'),
        ("(clv_monitoring_last_run_success) == 0", "(clv_monitoring_last_run_success) < 1 > 1"),
        (
            'clv_drift_detected_total{drift_type="model"}[1d]',
            'clv_drift_detected_total{drift_type="model"}[2d]',
        ),
        ("#clvmonitoringfailing", "#failing"),
        ("for: 1h", "for: 2h"),
        ("for: 1h", "for: 0m"),
        (
            'absent(clv_monitoring_last_run_timestamp_seconds{job="clv_drift_monitoring"})',
            "absent(clv_monitoring_last_run_timestamp_seconds)",
        ),
    ],
    ids=[
        "quality-drop-threshold",
        "quality-drop-strictly-above",
        "quality-drop-abs-reference",
        "quality-drop-spearman",
        "quality-drop-any-model-version",
        "stale-threshold",
        "data-drift-condition",
        "failing-condition",
        "rate-window",
        "runbook",
        "absent-hold-longer",
        "absent-hold-none",
        "absent-any-job",
    ],
)
def test_the_unit_tests_catch_a_changed_rule(promtool, tmp_path, mutation):
    copy = copy_rules(tmp_path, mutation)
    assert promtool("check", "rules", copy / "rules.yml").returncode == 0  # still valid, only wrong
    proc = promtool("test", "rules", copy / "tests" / "rules_test.yml")
    assert proc.returncode != 0, f"unit tests did not notice {mutation}"
    assert "FAILED" in proc.stdout
