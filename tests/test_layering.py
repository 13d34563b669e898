"""Layering: adapters → pipeline → drift/model → features → data; errors, settings and store from anywhere
(settings only from adapters). Checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "clvdrift"
SHARED = {"clvdrift.errors", "clvdrift.store"}
# what each layer may import from clvdrift, besides itself and SHARED
ALLOWED = {
    "data": {"clvdrift.data"},
    "features": {"clvdrift.data"},
    "model": {"clvdrift.data", "clvdrift.features"},
    "drift": {"clvdrift.data", "clvdrift.features", "clvdrift.model.evaluate"},
    "store": set(),
    "pipeline": {"clvdrift.data", "clvdrift.features", "clvdrift.model", "clvdrift.drift"},
}


def layer_of(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    return rel.parts[0]


def clvdrift_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return {n for n in names if n.startswith("clvdrift.")}


def test_layers_import_only_downwards():
    violations = []
    for path in SRC.rglob("*.py"):
        layer = layer_of(path)
        if layer not in ALLOWED:
            continue  # adapters (cli, __main__) and shared modules may import anything
        for name in clvdrift_imports(path):
            own = name == f"clvdrift.{layer}" or name.startswith(f"clvdrift.{layer}.")
            shared = any(name == s or name.startswith(s + ".") for s in SHARED)
            allowed = any(name == a or name.startswith(a + ".") for a in ALLOWED[layer])
            if not (own or shared or allowed):
                violations.append(f"{path.relative_to(SRC)} imports {name}")
    assert violations == []


def test_only_the_report_module_imports_evidently():
    users = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if "evidently" in p.read_text(encoding="utf-8")
             and any(line.lstrip().startswith(("import evidently", "from evidently"))
                     for line in p.read_text(encoding="utf-8").splitlines())]
    assert users == ["drift/report.py"]
