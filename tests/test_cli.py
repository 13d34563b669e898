"""The CLI as a user runs it, in-process (``clvdrift.cli.run``) on a small synthetic history, plus one
subprocess smoke test. Settings come from CLVDRIFT_* variables, paths are relative to the working folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import clvdrift
from clvdrift import cli
from clvdrift.errors import EXIT_BAD_INPUT, EXIT_DRIFT, EXIT_INTERNAL
from helpers import synthetic_history  # type: ignore[import-not-found]


@pytest.fixture
def workdir(cli_workdir):
    """An empty working folder with a small transactions file as CLVDRIFT_RAW_DATA (conftest)."""
    return cli_workdir


def clv(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; exit code, stdout, stderr."""
    code = cli.run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_help_does_not_import_heavy_libraries(tmp_path):
    code = (
        "import sys; from clvdrift.cli import run; assert run(['--help']) == 0; "
        "print(sorted(m for m in ('sklearn', 'evidently', 'airflow', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        (
            ["train"],
            [
                "CLVDRIFT_TRAIN__HORIZON_DAYS or 90",
                "CLVDRIFT_TRAIN__TARGET or holdout",
                "last day in the data minus H",
                "only when there is none",
                "CLVDRIFT_RAW_DATA",
            ],
        ),
        (
            ["detect"],
            [
                "CLVDRIFT_DRIFT__DRIFT_SHARE or 0.5",
                "CLVDRIFT_DRIFT__FDR or False",
                "CLVDRIFT_DRIFT__CALIBRATE or False",
                "current_data.csv",
                "default: inferred",
            ],
        ),
        (["simulate"], ["default: none", "default: 42", "--column", "--date-format"]),
        (["demo"], ["default: 42"]),
        (["models", "gc"], ["--dry-run"]),
    ],
)
def test_help_shows_every_default(workdir, capsys, command, defaults):
    code, out, _ = clv(capsys, *command, "--help")
    assert code == 0
    flat = " ".join(out.split())
    for text in defaults:
        assert text in flat, f"{text!r} missing from `clvdrift {' '.join(command)} --help`"


def test_train_simulate_detect_list_promote_gc(workdir, capsys):
    code, out, err = clv(capsys, "train", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert first["champion"] is True and first["training"]["horizon_days"] == 90
    assert (workdir / "models" / "clv_model_latest.joblib").is_file()
    reference = workdir / "data" / "reference" / "reference_data.csv"
    champion_reference = reference.read_bytes()
    code, out, err = clv(capsys, "train", "--json", "--horizon-days", "60")
    assert code == 0, err
    second = json.loads(out)
    assert second["champion"] is False and second["reference_path"] is None
    assert reference.read_bytes() == champion_reference  # a challenger never touches the champion's files
    code, out, _ = clv(capsys, "models", "list", "--json")
    versions = {v["version"]: v for v in json.loads(out)}
    assert versions[first["version"]]["is_champion"] and not versions[second["version"]]["is_champion"]

    code, out, err = clv(capsys, "simulate", "--scenario", "none")
    assert code == 0, err
    code, out, err = clv(capsys, "detect", "--no-html", "--fail-on-drift")
    assert code == 0, err + out
    assert "no retraining needed" in out and "model drift scored on" in out
    code, out, err = clv(capsys, "simulate", "--scenario", "data-drift", "--seed", "2")
    code, out, err = clv(capsys, "detect", "--no-html", "--fail-on-drift")
    assert code == EXIT_DRIFT and "RETRAINING REQUIRED" in out
    code, out, _ = clv(capsys, "detect", "--no-html")
    assert code == 0  # without the flag, drift is not a failure
    report = json.loads((workdir / "monitoring" / "reports" / "latest_drift_report.json").read_text())
    assert report["decision"]["data_drift_detected"] is True

    code, out, err = clv(capsys, "models", "promote", second["version"])
    assert code == 0, err
    assert reference.read_bytes() != champion_reference  # promotion moves the champion's files
    orphan = workdir / "models" / "clv_model_20000101_000000_000000.joblib"
    orphan.write_bytes(b"left by a run that never registered")
    os.utime(orphan, (0, 0))  # old enough not to belong to a training still running
    code, out, err = clv(capsys, "models", "gc")
    assert code == 0, err
    assert not orphan.exists() and (workdir / "models" / f"clv_model_{first['version']}.joblib").is_file()


def test_detect_settings_and_options(workdir, capsys, monkeypatch):
    assert clv(capsys, "train")[0] == 0
    assert clv(capsys, "simulate", "--scenario", "none")[0] == 0
    monkeypatch.setenv("CLVDRIFT_DRIFT__PER_COLUMN_STATTEST", '{"Monetary": "psi"}')
    monkeypatch.setenv("CLVDRIFT_DRIFT__PER_COLUMN_THRESHOLD", '{"Recency": 0.5}')
    code, out, err = clv(capsys, "detect", "--no-html", "--json", "--drift-share", "0.9")
    assert code == 0, err
    doc = json.loads(out)
    columns = {c["column"]: c for c in doc["data_drift"]["columns"]}
    assert columns["Monetary"]["test"] == "psi" and columns["Monetary"]["test_chosen_by"] == "configured"
    assert columns["Recency"]["threshold"] == 0.5 and doc["data_drift"]["drift_share_threshold"] == 0.9


def test_detect_reads_a_semicolon_file_with_renamed_columns(workdir, capsys):
    assert clv(capsys, "train")[0] == 0
    batch = workdir / "batch.csv"
    synthetic_history(batch, seed=5, sep=";")
    text = batch.read_text().replace("CustomerID", "Client").replace("InvoiceDate", "Date", 1)
    batch.write_text(text)
    code, _, err = clv(
        capsys,
        "detect",
        "--current",
        str(batch),
        "--no-html",
        "--column",
        "Client=CustomerID",
        "--column",
        "Date=InvoiceDate",
        "--date-format",
        "%Y-%m-%d %H:%M",
    )
    assert code == 0, err


@pytest.mark.parametrize(
    ("env", "args", "words"),
    [
        ({"CLVDRIFT_DRIFT__DRIFT_SHARE": "lots"}, ["detect"], ["drift_share", "lots"]),
        ({"CLVDRIFT_TRAIN__HORIZON_DAYS": "-3"}, ["train"], ["horizon_days"]),
        ({"CLVDRIFT_HORIZON_DAYS": "30"}, ["train"], ["unknown setting", "CLVDRIFT_TRAIN__HORIZON_DAYS"]),
        ({"CLVDRIFT_DRIFT__STATTEST": "magic"}, ["detect"], ["unknown test", "magic"]),
        ({"CLVDRIFT_TRAIN__GBM": "abc"}, ["train"], ["CLVDRIFT_TRAIN__GBM:", "JSON object", "__MAX_ITER"]),
        ({"CLVDRIFT_TRAIN": '{"horizon_days": 6'}, ["train"], ["CLVDRIFT_TRAIN:", "JSON object"]),
        ({}, ["train", "--cutoff", "notadate"], ["notadate"]),
        ({}, ["train", "--horizon-days", "100000", "--cutoff", "2022-06-01"], ["horizon_days"]),
        ({}, ["train", "--data", "missing.csv"], ["missing.csv"]),
    ],
)
def test_bad_settings_and_arguments_are_one_line_exit_2(workdir, capsys, monkeypatch, env, args, words):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = clv(capsys, *args)
    assert code == EXIT_BAD_INPUT
    line = one_line_error(err)
    for word in words:
        assert word in line


def test_detect_bad_cutoff_and_one_customer_batch(workdir, capsys):
    assert clv(capsys, "train")[0] == 0
    assert clv(capsys, "simulate")[0] == 0
    code, _, err = clv(capsys, "detect", "--no-html", "--cutoff", "notadate")
    assert code == EXIT_BAD_INPUT and "notadate" in one_line_error(err)
    history = (workdir / "history.csv").read_text().splitlines()
    one = workdir / "one.csv"
    one.write_text(
        "\n".join([history[0], *[r for r in history[1:] if r.endswith(",90003,Norway") or ",90003," in r]])
        + "\n"
    )
    code, out, err = clv(capsys, "detect", "--current", str(one), "--no-html", "--json")
    assert code in (0, EXIT_BAD_INPUT), err
    if code == 0:
        assert json.loads(out)["current"]["customers"] == 1
    else:
        one_line_error(err)


def test_outlier_dates_are_left_out_with_a_warning_and_short_horizons_refused(workdir, capsys):
    """Five rows dated 2099 must neither move the cutoff nor pass unseen; an explicit cutoff whose
    horizon the data does not cover is refused before anything is registered."""
    history = workdir / "history.csv"
    lines = history.read_text().splitlines()
    fields = lines[1].split(",")
    future = [",".join([*fields[:4], "2099-01-01 10:00", *fields[5:]]) for _ in range(5)]
    polluted = workdir / "polluted.csv"
    polluted.write_text("\n".join([*lines, *future]) + "\n")
    code, _, err = clv(capsys, "train", "--cutoff", "2023-02-18")  # 8 days before the last day
    assert code == EXIT_BAD_INPUT and "8 of 90 days" in one_line_error(err)
    code, out, _ = clv(capsys, "models", "list")
    assert "no model registered" in out
    assert not list((workdir / "models").glob("clv_model_*")) if (workdir / "models").exists() else True
    code, out, err = clv(capsys, "train", "--data", str(polluted), "--json")
    assert code == 0, err
    assert "2099-01-01" in err and "warning" in err  # the finding is shown, not buried
    result = json.loads(out)
    assert result["cleaning"]["removed"]["date_outlier"] == 5
    assert result["training"]["cutoff"] < "2023-01-01" and result["training"]["zero_target_share"] < 0.9


def test_unexpected_error_is_one_line_exit_4_and_debug_shows_the_traceback(workdir, capsys, monkeypatch):
    from clvdrift import pipeline

    def broken(*_a, **_k):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(pipeline, "simulate", broken)
    code, _, err = clv(capsys, "simulate")
    assert code == EXIT_INTERNAL
    assert "simulated bug" in one_line_error(err) and "--debug" in err
    code, _, err = clv(capsys, "--debug", "simulate")
    assert code == EXIT_INTERNAL and "Traceback" in err


def test_smoke_subprocess(workdir):
    """The installed entry point as a user types it: train, simulate, detect with --fail-on-drift."""
    env = {**os.environ, "DO_NOT_TRACK": "1"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clvdrift", *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert run("train").returncode == 0
    assert run("simulate", "--scenario", "model-drift").returncode == 0
    proc = run("detect", "--no-html", "--fail-on-drift")
    assert proc.returncode == EXIT_DRIFT, proc.stderr
    assert Path(workdir / "monitoring" / "reports" / "latest_drift_report.json").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--horizon-days", "0"],
        ["train", "--bogus"],
        ["simulate", "--scenario", "wild"],
        ["detect", "--drift-share", "2"],
    ],
)
def test_usage_errors_exit_2_and_are_not_reported_as_bugs(workdir, capsys, args):
    code, _, err = clv(capsys, *args)
    assert code == EXIT_BAD_INPUT
    assert "unexpected" not in err and "Traceback" not in err
    # one line, as every other bad input, naming the option and where to read more
    assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert f"(see `clvdrift {args[0]} --help`)" in err


def test_a_champion_with_undefined_metrics_is_listed_and_checked(workdir, capsys):
    """Metrics stored as null (NaN is not JSON): listing and checking still work, the rules that need
    the undefined figures simply cannot fire, and the JSON stays strict."""
    import math

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from clvdrift.store import connect
    from clvdrift.store.tables import ModelVersionRow

    assert clv(capsys, "train")[0] == 0
    assert clv(capsys, "simulate")[0] == 0
    engine = connect("sqlite:///clvdrift.db")
    with Session(engine) as session:
        row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.is_champion))
        undefined = {"r2": math.nan, "mae": math.nan}  # both references a check may compare with
        row.metrics = {
            **row.metrics,
            "model": {**row.metrics["model"], **undefined},
            "random_split": {
                **row.metrics["random_split"],
                "model": {**row.metrics["random_split"]["model"], **undefined},
            },
        }
        session.commit()
    code, out, err = clv(capsys, "models", "list", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["metrics"]["model"]["r2"] is None
    assert clv(capsys, "models", "list")[0] == 0
    code, out, err = clv(capsys, "detect", "--no-html", "--json")
    assert code == 0, err
    md = json.loads(out)["model_drift"]
    assert md["reference"]["r2"] is None and md["r2_drop"] is None and "undefined" in md["note"]


def test_a_second_training_is_refused_while_one_holds_the_lock(workdir, capsys):
    from clvdrift.store import connect
    from clvdrift.store.locks import training_lock

    with training_lock(connect("sqlite:///clvdrift.db")):
        code, _, err = clv(capsys, "train")
    assert code == 5 and "another training holds the lock" in one_line_error(err)
    assert clv(capsys, "train")[0] == 0  # released with its holder


def test_ctrl_c_while_the_command_is_still_starting_ends_quietly(tmp_path):
    """The installed `clvdrift` command, interrupted while its libraries are importing (before this fix
    a KeyboardInterrupt traceback up to 0.3 s after launch on this machine) or while typer builds the
    command (outside click's own Ctrl-C handling): "aborted", exit 130.

    A Ctrl-C that lands before clvdrift's first line runs (Python's `site` import, the entry script's
    own import line) gives Python's traceback, which no code of ours can catch; where the signal lands
    depends on the machine's speed, so such a child is not held against the command, but a traceback
    through any clvdrift module is."""
    import re
    import signal
    import time

    exe = Path(sys.executable).parent / "clvdrift"
    assert exe.is_file(), f"no installed entry point at {exe}"
    package = str(Path(clvdrift.__file__).parent)
    aborted = 0
    for delay in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4):
        child = subprocess.Popen(
            [str(exe), "runs", "list"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(
                signal.SIGINT, signal.SIG_DFL
            ),  # a shell's background jobs ignore it
        )
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        code, err = child.wait(timeout=60), child.stderr.read()  # type: ignore[union-attr]
        if "Traceback" in err:
            frames = re.findall(r'File "([^"]+)", line \d+, in (\S+)', err)
            ours = [(Path(f).name, name) for f, name in frames if f.startswith(package)]
            # before main() runs: only the module level of the package's __init__ or __main__
            assert frames and set(ours) <= {("__init__.py", "<module>"), ("__main__.py", "<module>")}, (
                delay,
                err,
            )
            continue
        if code == 130:
            assert err.strip().splitlines()[-1] == "aborted"
            aborted += 1
    assert aborted, "no interruption landed while the command ran"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_whose_exit_python_dropped_in_a_destructor_still_ends_the_command(cli_workdir, monkeypatch):
    """The SIGTERM handler runs wherever the main thread is; in a destructor, Python prints its
    SystemExit and drops it (seen once: a replay ran to its end and exited 0 after a SIGTERM). The
    command must still end with 143, and a replay stop at its next step."""
    import gc
    import signal

    class Doomed:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs here, between bytecodes: its SystemExit is dropped
                pass

    real = cli.get_settings

    def settings_with_a_sigterm_in_a_destructor():  # type: ignore[no-untyped-def]
        Doomed()
        gc.collect()
        return real()

    monkeypatch.setattr(cli, "get_settings", settings_with_a_sigterm_in_a_destructor)
    with pytest.raises(SystemExit) as info:
        cli.run(["runs", "list"])
    assert info.value.code == 143  # (the dropped one reaches pytest as an unraisable-exception warning)
    out = cli_workdir / "replay-out"
    with pytest.raises(SystemExit) as info:  # the replay stops before its first step and cleans up
        cli.run(["replay", "--start", "2022-12-01", "--step", "28d", "--policy", "never", "--out", str(out)])
    assert info.value.code == 143 and not out.exists()


def test_predict_writes_every_customer_and_ignores_lines_after_its_cutoff(workdir, capsys):
    """`predict --cutoff C` on the file and on the file plus later lines — a cancellation of an early
    order, dated after C, that cleaning would net against it — writes the same predictions; the input
    and the stored files are never overwritten; a cutoff after the data is a one-line error."""
    import pandas as pd

    assert clv(capsys, "train")[0] == 0
    history = workdir / "history.csv"
    rows = pd.read_csv(history)
    last = pd.to_datetime(rows["InvoiceDate"]).max()
    cutoff = (last - pd.Timedelta(days=40)).date().isoformat()
    first = rows.iloc[0]
    cancel = first.copy()
    cancel["InvoiceNo"], cancel["Quantity"] = "C999999", -first["Quantity"]
    cancel["InvoiceDate"] = last.strftime("%Y-%m-%d %H:%M")
    later = workdir / "later.csv"
    pd.concat([rows, cancel.to_frame().T]).to_csv(later, index=False)
    outs = []
    for name, data in (("a.csv", history), ("b.csv", later)):
        code, out, err = clv(
            capsys, "predict", "--data", str(data), "--cutoff", cutoff, "--out", name, "--json"
        )
        assert code == 0, err
        outs.append((workdir / name).read_bytes())
        result = json.loads(out)
        assert result["cutoff"] == cutoff and result["total_status"] == "uncalibrated"
    assert outs[0] == outs[1]
    frame = pd.read_csv(workdir / "a.csv")
    dates = pd.to_datetime(rows["InvoiceDate"])
    assert len(frame) == rows.loc[dates < pd.Timestamp(cutoff) + pd.Timedelta(days=1), "CustomerID"].nunique()
    before = history.read_bytes()
    code, _, err = clv(capsys, "predict", "--data", str(history), "--out", str(history))
    assert code == EXIT_BAD_INPUT and "would overwrite the input file" in one_line_error(err)
    assert history.read_bytes() == before
    code, _, err = clv(capsys, "predict", "--out", "models/x.csv")
    assert code == EXIT_BAD_INPUT and "would overwrite" in one_line_error(err)
    code, _, err = clv(capsys, "predict", "--cutoff", "2099-01-01")
    assert code == EXIT_BAD_INPUT and "is outside the data" in one_line_error(err)


def test_switching_families_leaves_no_latest_file_of_the_old_champion(workdir, capsys):
    """rf champion (model + the seed's scaler), then a gbm promoted: every *_latest file is the gbm's and
    the rf scaler's *_latest copy is gone; the horizon of a champion that predicts another window is not
    compared; an out-of-range random_state is a one-line error."""
    assert clv(capsys, "train", "--model", "rf")[0] == 0
    assert (workdir / "models" / "scaler_latest.joblib").is_file()
    code, out, err = clv(capsys, "train", "--model", "gbm", "--promote", "--horizon-days", "60", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert "not comparable" in result["evaluation"]["champion"]["skipped"]
    assert not (workdir / "models" / "scaler_latest.joblib").exists()
    meta = json.loads((workdir / "models" / "metadata_latest.json").read_text())
    assert meta["family"] == "gbm" and meta["version"] == result["version"]
    code, out, _ = clv(capsys, "models", "list")  # each version's family is shown
    rows = [line for line in out.splitlines() if "│" in line and "20" in line]
    assert code == 0 and [("gbm" in r, "rf" in r) for r in rows] == [(True, False), (False, True)], out
    os.environ["CLVDRIFT_TRAIN__GBM__RANDOM_STATE"] = "-5"
    try:
        code, _, err = clv(capsys, "train")
    finally:
        del os.environ["CLVDRIFT_TRAIN__GBM__RANDOM_STATE"]
    assert code == EXIT_BAD_INPUT and "train.gbm.random_state" in one_line_error(err)
