"""The installable package: an sdist and a wheel built from the repository's tracked files (``uv build``:
the wheel is built from the sdist, so the sdist is complete), installed into a fresh virtual environment
outside the repository, and used from an empty folder: ``clvdrift --version`` and the whole
``clvdrift demo`` on the sample data that ships inside the wheel.

The fresh environment takes the wheel's own dependency metadata, resolved within the versions the
project tests (``-c constraints/airflow-3.3.2.txt``; uv's cache makes this fast after ``make install``).
It gets no extras, so the demo runs without Evidently (its HTML pages say how to add it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from clvdrift import __version__

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    command = " ".join(map(str, args))
    assert proc.returncode == 0, f"{command} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from a copy of the tracked files."""
    source = tmp_path_factory.mktemp("source")
    tracked = _run("git", "ls-files", "-z", cwd=REPO).split("\0")
    for name in filter(None, tracked):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, target)
    out = tmp_path_factory.mktemp("dist")
    _run(UV, "build", "--quiet", "--out-dir", out, cwd=source, timeout=300)
    return out


def test_the_sdist_and_the_wheel_carry_the_sample_data_and_the_migrations(dist: Path) -> None:
    wheel = next(dist.glob("clvdrift-*.whl"))
    sdist = next(dist.glob("clvdrift-*.tar.gz"))
    assert wheel.name.startswith(f"clvdrift-{__version__}-")
    assert sdist.name == f"clvdrift-{__version__}.tar.gz"
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "clvdrift/data/online_retail.csv.gz",
        "clvdrift/data/ONLINE_RETAIL.md",
        "clvdrift/store/migrations/env.py",
        "clvdrift/store/migrations/versions/0006_online.py",
    ):
        assert needed in names, needed
    meta = zipfile.ZipFile(wheel).read(f"clvdrift-{__version__}.dist-info/METADATA").decode()
    assert "Requires-Python: >=3.11" in meta
    with tarfile.open(sdist) as tar:
        assert f"clvdrift-{__version__}/src/clvdrift/data/online_retail.csv.gz" in tar.getnames()


def test_the_wheel_installs_and_runs_the_demo_outside_the_repository(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(UV, "venv", "--quiet", "--python", sys.executable, venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    wheel = next(dist.glob("clvdrift-*.whl"))
    constraints = REPO / "constraints" / "airflow-3.3.2.txt"
    _run(UV, "pip", "install", "--quiet", "--python", python, "-c", constraints, wheel, cwd=tmp_path)
    folder = tmp_path / "empty"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLVDRIFT_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    clvdrift = venv / "bin" / "clvdrift"
    assert _run(clvdrift, "--version", cwd=folder, env=env).strip() == f"clvdrift {__version__}"
    # the package is the wheel's copy, not the repository's source
    where = _run(python, "-c", "import clvdrift, sys; print(clvdrift.__file__)", cwd=folder, env=env)
    assert Path(where.strip()).is_relative_to(venv), where
    out = _run(clvdrift, "demo", cwd=folder, env=env, timeout=900)
    assert "registered version" in out and "monitoring loop" in out, out[-3000:]
    assert (folder / "clvdrift.db").is_file() and any((folder / "models").glob("clv_model_*.joblib"))
    assert not (folder / "data" / "online_retail.csv.gz").exists()  # read from inside the package
