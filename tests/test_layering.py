"""Only drift/report.py imports Evidently. The layers themselves are import-linter contracts in
pyproject.toml, checked by `lint-imports` in `make test` (it sees relative imports too)."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "clvdrift"


def test_only_the_report_module_imports_evidently():
    users = [
        p.relative_to(SRC).as_posix()
        for p in SRC.rglob("*.py")
        if "evidently" in p.read_text(encoding="utf-8")
        and any(
            line.lstrip().startswith(("import evidently", "from evidently"))
            for line in p.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert users == ["drift/report.py"]
