"""docs/operations.md is checked against what exists, so the on-call guide cannot drift from the code.

- every alert of deploy/prometheus/rules.yml has a heading whose GitHub anchor is its runbook_url's
  fragment (the lowercased alert name);
- the metric names it mentions are exactly clvdrift.observability.metrics.METRICS (recording rules,
  rule groups, the Pushgateway job and the DAG ids aside), and its metric table has METRICS' types,
  labels and help texts;
- every ``clvdrift …`` line of its code blocks names real subcommands and options (the real
  ``clvdrift <path> --help`` of the venv);
- every CLVDRIFT_* variable is a known setting, every repository path it names exists, and its PromQL
  blocks pass promtool's parser.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from clvdrift.cli import app
from clvdrift.observability.metrics import JOB, METRICS
from clvdrift.settings import known_variables

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "operations.md"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
CLVDRIFT_BIN = Path(sys.executable).parent / "clvdrift"

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
_METRIC = re.compile(r"(?<![\w-])clv_[a-z0-9_]+")
_VARIABLE = re.compile(r"(?<![\w])CLVDRIFT_[A-Z0-9_]*[A-Z0-9]")
_PATH = re.compile(r"(?<![\w/.-])(?:deploy|docs|tests|dags|src)/[\w./-]*[\w]")


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced code block."""
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(text)]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"[`*]", "", heading.strip().lower())  # markup is not part of the rendered text
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(text: str) -> list[str]:
    prose = _FENCE.sub("", text)
    return [m.group(1) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", prose, re.M)]


def rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return data


# --- runbook anchors -------------------------------------------------------------------------------


def test_github_anchor_matches_githubs_rules() -> None:
    assert github_anchor("CLVDataDriftDetected") == "clvdatadriftdetected"
    assert github_anchor("Read metrics") == "read-metrics"
    assert github_anchor("Grafana, Loki, Promtail") == "grafana-loki-promtail"
    assert (
        github_anchor("The loop from `cron` or the command line") == "the-loop-from-cron-or-the-command-line"
    )


def test_every_alert_has_a_runbook_heading_matching_its_runbook_url() -> None:
    anchors = {github_anchor(h) for h in headings(doc_text())}
    alerts = [r for g in rules()["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 5
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        page, _, fragment = url.partition("#")
        assert page.endswith("/docs/operations.md"), f"{alert['alert']}: runbook_url {url} is not this page"
        assert fragment == alert["alert"].lower(), f"{alert['alert']}: anchor {fragment!r}"
        assert fragment in anchors, f"docs/operations.md has no heading for {alert['alert']} (#{fragment})"


def test_internal_links_resolve() -> None:
    text = doc_text()
    anchors = {github_anchor(h) for h in headings(text)}
    for link in re.findall(r"\]\(#([^)]+)\)", text):
        assert link in anchors, f"link #{link} has no heading in docs/operations.md"


def test_every_runbook_section_says_what_it_means_how_to_check_what_to_do() -> None:
    text = doc_text()
    for alert in (r["alert"] for g in rules()["groups"] for r in g["rules"] if "alert" in r):
        start = re.search(rf"^#+ {alert}$", text, re.M)
        assert start is not None, alert
        end = re.search(r"^#+ ", text[start.end() :], re.M)
        section = text[start.end() : start.end() + end.start()] if end else text[start.end() :]
        for part in ("**Means**", "**Check**", "**Do**"):
            assert part in section, f"runbook section {alert} has no {part}"


# --- metrics ----------------------------------------------------------------------------------------


def not_metrics() -> set[str]:
    """``clv_`` names that are not exported metrics: recording rules, rule groups, the job, DAG ids."""
    names = {JOB}
    for group in rules()["groups"]:
        names.add(group["name"])
        names |= {r["record"] for r in group["rules"] if "record" in r}
    for dag_file in (ROOT / "dags").glob("*.py"):
        names |= set(re.findall(r'dag_id="([^"]+)"', dag_file.read_text(encoding="utf-8")))
    return names


def test_metric_names_are_exactly_the_exported_ones() -> None:
    mentioned = set(_METRIC.findall(doc_text())) - not_metrics()
    unknown = mentioned - set(METRICS)
    assert not unknown, f"docs/operations.md names metrics that clvdrift does not export: {sorted(unknown)}"
    missing = set(METRICS) - mentioned
    assert not missing, f"docs/operations.md does not document {sorted(missing)}"


def test_metric_table_matches_metrics_contract() -> None:
    rows = {}
    for line in doc_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if (
            len(cells) == 4
            and re.fullmatch(r"`clv_[a-z0-9_]+`", cells[0])
            and cells[1] in ("counter", "gauge")
        ):
            rows[cells[0].strip("`")] = cells[1:]
    assert set(rows) == set(METRICS), "the metric table must list every metric of METRICS once"
    for name, (kind, labels, help_text) in METRICS.items():
        doc_kind, doc_labels, doc_help = rows[name]
        assert doc_kind == kind, f"{name}: type {doc_kind}, exporter says {kind}"
        assert tuple(re.findall(r"`(\w+)`", doc_labels)) == labels, f"{name}: labels {doc_labels!r}"
        assert doc_help == help_text, f"{name}: meaning {doc_help!r} is not the exporter's {help_text!r}"


def test_promql_blocks_pass_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found on PATH: run `make tools`", pytrace=False)
    expressions = [
        line.strip()
        for lang, body in code_blocks(doc_text())
        if lang == "promql"
        for line in body.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(expressions) >= 5
    rules_file = tmp_path / "doc_expressions.yml"
    rules_file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "doc",
                        "rules": [{"record": f"doc:expr_{i}", "expr": e} for i, e in enumerate(expressions)],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [promtool, "check", "rules", str(rules_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- commands ---------------------------------------------------------------------------------------


def clvdrift_invocations(text: str) -> list[list[str]]:
    """The arguments of every ``clvdrift`` call in the code blocks (env assignments, pipes and
    redirections around it left out)."""
    calls = []
    for lang, body in code_blocks(text):
        if lang not in ("", "bash", "sh", "shell"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            lexer.commenters = "#"
            tokens = list(lexer)
            segment: list[str] = []
            for token in [*tokens, ";"]:
                if token and set(token) <= set("|&;<>()"):
                    words = [w for w in segment if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", w)]
                    if words and os.path.basename(words[0]) == "clvdrift":
                        calls.append(words[1:])
                    segment = []
                else:
                    segment.append(token)
    return calls


def resolve(args: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(root options, subcommand path, the command's options) of a clvdrift argument list."""
    command: Any = typer.main.get_command(app)  # Typer vendors click: groups known by .commands
    root_options: list[str] = []
    path: list[str] = []
    options: list[str] = []
    for arg in args:
        if arg.startswith("--"):
            (options if path else root_options).append(arg.split("=", 1)[0])
        elif hasattr(command, "commands") and not arg.startswith("-"):
            sub = command.commands.get(arg)
            assert sub is not None, (
                f"`clvdrift {' '.join(args)}`: {arg!r} is not a subcommand of {path or 'clvdrift'}"
            )
            command = sub
            path.append(arg)
    eager = path == [] and set(root_options) <= {"--version", "--help"} and root_options != []
    assert eager or not hasattr(command, "commands"), (
        f"`clvdrift {' '.join(args)}` names a group, not a command"
    )
    return root_options, path, options


def help_text(path: list[str], tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CLVDRIFT_")}
    env.update(COLUMNS="200", TERM="dumb", NO_COLOR="1")
    done = subprocess.run(
        [str(CLVDRIFT_BIN), *path, "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, f"clvdrift {' '.join(path)} --help: {done.stderr.strip()}"
    return done.stdout


def test_extracts_clvdrift_calls_from_shell_lines() -> None:
    text = (
        "```bash\nA=1 B=2 .venv/bin/clvdrift runs list --json | jq . # note\n"
        "clvdrift --debug monitor && echo\n```\n"
    )
    assert clvdrift_invocations(text) == [["runs", "list", "--json"], ["--debug", "monitor"]]
    assert resolve(["--debug", "runs", "list", "--limit", "3"]) == (
        ["--debug"],
        ["runs", "list"],
        ["--limit"],
    )


def test_every_clvdrift_command_and_option_exists(tmp_path: Path) -> None:
    assert CLVDRIFT_BIN.exists(), f"{CLVDRIFT_BIN} missing: install the project into the venv"
    calls = clvdrift_invocations(doc_text())
    assert len(calls) >= 10
    wanted: dict[tuple[str, ...], set[str]] = {(): set()}
    for args in calls:
        root_options, path, options = resolve(args)
        wanted[()] |= set(root_options)
        wanted.setdefault(tuple(path), set()).update(options)
    assert ("validate-metrics",) in wanted and ("runs", "list") in wanted and ("monitor",) in wanted
    for path, options in wanted.items():
        text = help_text(list(path), tmp_path)
        for option in options:
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
                f"`clvdrift {' '.join(path)}` has no option {option} (its --help)"
            )


# --- settings and paths -----------------------------------------------------------------------------


def test_every_setting_named_is_known() -> None:
    named = set(_VARIABLE.findall(doc_text()))
    assert "CLVDRIFT_PUSHGATEWAY_URL" in named and "CLVDRIFT_LOG_FILE" in named
    unknown = named - known_variables()
    assert not unknown, f"docs/operations.md names settings clvdrift does not read: {sorted(unknown)}"


def test_every_repository_path_named_exists() -> None:
    paths = set(_PATH.findall(doc_text()))
    assert "deploy/prometheus/rules.yml" in paths
    made_by_the_operator = {"deploy/.env"}  # from deploy/.env.example, never committed
    missing = sorted(p for p in paths - made_by_the_operator if not (ROOT / p).exists())
    assert not missing, f"docs/operations.md names paths that do not exist: {missing}"
