"""Real Prometheus tools for the deploy-config tests: promtool and amtool from the Debian packages.

Nothing is skipped: ``make test`` installs the packages first (``make tools``); a missing binary is a
failure that says so. The fixtures are callables: ``promtool("check", "rules", path)`` runs the real
binary and returns the finished process, stdout and stderr together in ``.stdout``.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Tool:
    path: str

    def __call__(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.path, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        )


def tool(name: str) -> Tool:
    """The tool on PATH, or fail the test saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found on PATH: run `make tools` (installs prometheus, "
            "prometheus-pushgateway and prometheus-alertmanager from Debian)",
            pytrace=False,
        )
    return Tool(path)


@pytest.fixture(scope="session")
def promtool() -> Tool:
    return tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> Tool:
    return tool("amtool")


@pytest.fixture(scope="session")
def alertmanager_binary() -> Tool:
    return tool("prometheus-alertmanager")
