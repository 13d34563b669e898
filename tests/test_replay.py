"""`clvdrift replay` (issue 9): real monitoring cycles through the history of a small synthetic file —
no leak from after a step date, a drift injected at a known date, the policies, the timeline's schema,
and the command line's errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from clvdrift import cli
from clvdrift.config import DriftConfig, GbmParams, TrainConfig
from clvdrift.data import load_transactions
from clvdrift.errors import ConfigError, DataError
from clvdrift.pipeline.replay import TIMELINE_SCHEMA, parse_policy, parse_step
from clvdrift.pipeline.replay import replay as _replay
from helpers import dead_pid, synthetic_history  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parents[1]
START = "2022-08-01"  # the synthetic history starts 2022-01-03: start ≥ first day + 2H + 30
STEP = 21
DATES = ["2022-08-01", "2022-08-22", "2022-09-12", "2022-10-03", "2022-10-24"]
POLICIES = ["never", "every:2", "on-drift"]
SMALL_MODEL = TrainConfig(gbm=GbmParams(max_iter=50))
"""The replays here test the replay, not the model: 50 boosted trees train ~4x faster than 200."""


def replay(raw, **kwargs):
    return _replay(raw, **{"train_config": SMALL_MODEL, **kwargs})


# fields that name versions (timestamps of when the replay ran), not what the step saw or did
VOLATILE = {"champion_version", "champion_after", "challenger_version"}


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "history.csv"
    synthetic_history(path, days=300)
    return path


@pytest.fixture(scope="module")
def full(history, tmp_path_factory):
    out = tmp_path_factory.mktemp("replay-full")
    return replay(
        load_transactions(history),
        out_dir=out,
        source="history.csv",
        start=START,
        step_days=STEP,
        policies=POLICIES,
    )


def _stable(step) -> dict:
    return {k: v for k, v in step.to_dict().items() if k not in VOLATILE}


def test_the_steps_are_the_dates_from_start_every_step_days(full):
    assert full.dates == DATES
    assert [(s.step, s.date, s.policy) for s in full.steps] == [
        (i, d, p) for i, d in enumerate(DATES, start=1) for p in POLICIES
    ]
    assert all(s.quality is not None and s.model_drift_assessable for s in full.steps)  # span ≥ 2H


def test_no_leak_a_replay_of_the_file_truncated_at_a_step_gives_the_same_step_records(
    full, history, tmp_path
):
    day = DATES[3]
    raw = load_transactions(history)
    truncated = raw[raw["InvoiceDate"] < pd.Timestamp(day) + pd.Timedelta(days=1)]
    assert len(truncated) < len(raw)
    cut = replay(
        truncated, out_dir=tmp_path, source="history.csv", start=START, step_days=STEP, policies=POLICIES
    )
    assert cut.dates == DATES[:4]
    at_day = [_stable(s) for s in full.steps if s.date == day]
    assert [_stable(s) for s in cut.steps if s.date == day] == at_day
    assert any(s["retrained"] for s in at_day)  # every:2 retrains at step 4: the gate saw only raw_D too
    # and the earlier steps too (each of them is a step of the truncated file)
    assert [_stable(s) for s in cut.steps] == [_stable(s) for s in full.steps if s.date <= day]


def test_never_never_retrains_and_every_2_retrains_exactly_at_steps_2_and_4(full):
    never = [s for s in full.steps if s.policy == "never"]
    assert not any(s.retrained for s in never) and {s.champion_version for s in never} == {
        never[0].champion_version
    }
    every = [s for s in full.steps if s.policy == "every:2"]
    assert [s.step for s in every if s.retrained] == [2, 4]
    assert all(s.gate_outcome in ("promoted", "rejected") for s in every if s.retrained)
    on_drift = [s for s in full.steps if s.policy == "on-drift"]
    assert [s.retrained for s in on_drift] == [s.retraining_required for s in on_drift]
    summary = {s.policy: s for s in full.summaries}
    assert summary["never"].retrains == 0 and summary["every:2"].retrains == 2
    assert summary["every:2"].retrain_errors == 0
    assert summary["on-drift"].alarms == sum(s.retraining_required for s in on_drift)
    assert summary["never"].matured_steps == len(DATES)


def test_every_cycle_is_a_run_of_the_policys_own_history(full):
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    root = Path(full.timeline_path).parent / "policies" / "every-2"
    runs = RunStore(connect(f"sqlite:///{root / 'clvdrift.db'}")).list()
    assert sorted(r.run_id for r in runs) == [f"replay-every-2-{d}" for d in DATES]
    assert {r.trigger for r in runs} == {"replay"} and {r.status for r in runs} == {"success"}
    assert [r.decision for r in sorted(runs, key=lambda r: r.run_id)] == [
        "no_retrain",
        "retrain",
        "no_retrain",
        "retrain",
        "no_retrain",
    ]


def test_paired_quality_scores_every_champion_on_the_same_customers_none_of_them_trained_on(full, history):
    """Recomputed here from the policies' own registries: at each step, the customers that neither
    `never`'s nor `every:2`'s champion trained on (while its labels overlap the window), and each
    champion's metrics on exactly those."""
    import numpy as np

    from clvdrift.data import clean_transactions
    from clvdrift.features import build_training_set
    from clvdrift.model.artifacts import load_model, read_verified
    from clvdrift.model.base import TrainingRecord
    from clvdrift.model.evaluate import regression_metrics
    from clvdrift.model.registry import ModelRegistry
    from clvdrift.pipeline.detect import training_customers
    from clvdrift.store import connect

    raw = load_transactions(history)
    root = Path(full.timeline_path).parent / "policies"
    by_date: dict[str, dict[str, object]] = {}
    for s in full.steps:
        by_date.setdefault(s.date, {})[s.policy] = s
    differed = 0
    for day, steps in by_date.items():
        assert len({s.customers_paired for s in steps.values()}) == 1  # one customer set per step
        assert all(s.customers_paired <= s.customers_scored for s in steps.values())
        clean, _ = clean_transactions(raw[raw["InvoiceDate"] < pd.Timestamp(day) + pd.Timedelta(days=1)])
        ts = build_training_set(clean, cutoff=steps["never"].cutoff, require_labels=False)
        customers = ts.features.index.astype(str)
        keep = np.ones(len(customers), dtype=bool)
        predictions = {}
        for policy, slug in (("never", "never"), ("every:2", "every-2"), ("on-drift", "on-drift")):
            version = steps[policy].champion_version
            record = ModelRegistry(connect(f"sqlite:///{root / slug / 'clvdrift.db'}")).get(version)
            models = root / slug / "models"
            predictions[policy] = load_model(models, version, expected=record.artifacts).predict(ts.features)
            if TrainingRecord.from_dict(record.training).labels_overlap(steps[policy].cutoff, 90):
                trained = training_customers(read_verified(models, record.artifacts["reference"]))
                keep &= ~customers.isin(trained)
        assert steps["never"].customers_paired == keep.sum() > 0
        for policy, predicted in predictions.items():
            want = regression_metrics(ts.target.to_numpy()[keep], predicted[keep])
            assert steps[policy].paired_quality == pytest.approx(
                {k: want[k] for k in ("spearman", "gini_normalized", "mae", "total_ratio")}
            )
        differed += steps["never"].paired_quality != steps["every:2"].paired_quality
    assert differed  # after every:2's first promotion its champion is another model
    summary = {s.policy: s for s in full.summaries}
    paired = [s.paired_quality["spearman"] for s in full.steps if s.policy == "never"]
    assert summary["never"].paired_mean_spearman == pytest.approx(sum(paired) / len(paired))


def test_the_timeline_validates_against_its_schema(full):
    import jsonschema

    schema = json.loads((REPO / "docs" / "replay_timeline.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    timeline = json.loads(Path(full.timeline_path).read_text())
    assert timeline["schema"] == TIMELINE_SCHEMA and len(timeline["steps"]) == len(DATES) * len(POLICIES)
    jsonschema.Draft202012Validator(schema).validate(timeline)
    broken = {**timeline, "steps": [{**timeline["steps"][0], "quality": {"spearman": "high"}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(broken)
    summary = json.loads(Path(full.summary_path).read_text())
    assert [s["policy"] for s in summary["summaries"]] == POLICIES


def test_a_drift_injected_at_a_known_date_is_flagged_at_the_first_step_that_sees_it(history, tmp_path):
    """Quantities ×50 from 2022-08-23 on (the day after a step): the revenue of the newest matured
    window jumps, so the champion's MAE rises — first at the step of 2022-08-29, never at a step before."""
    raw = load_transactions(history)
    after = raw["InvoiceDate"] >= pd.Timestamp("2022-08-23")
    raw.loc[after, "Quantity"] = raw.loc[after, "Quantity"] * 50
    # R² is too noisy on 240 customers to be the signal here; MAE rising by half is
    config = DriftConfig(r2_drop_threshold=1000, mae_increase_threshold=0.5)
    result = replay(
        raw,
        out_dir=tmp_path,
        start="2022-08-01",
        end="2022-09-05",
        step_days=7,
        policies=["never"],
        drift_config=config,
    )
    flagged = {s.date: s.model_drift for s in result.steps}
    assert flagged == {
        "2022-08-01": False,
        "2022-08-08": False,
        "2022-08-15": False,
        "2022-08-22": False,
        "2022-08-29": True,
        "2022-09-05": True,
    }
    assert all(s.retraining_required == s.model_drift for s in result.steps)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus", "unknown replay policy 'bogus'"),
        ("every:0", "unknown replay policy 'every:0'"),
        ("every:x", "unknown replay policy"),
        ("bogus-lookback", "unknown replay policy 'bogus-lookback'"),
        ("on-drift-lookback-lookback", "unknown replay policy"),
        ("-lookback", "unknown replay policy"),
    ],
)
def test_an_unknown_policy_is_a_config_error(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_policy(text)


def test_policies_and_steps_parse():
    assert parse_policy("every:3").every == 3 and parse_policy("every:3").slug == "every-3"
    assert parse_policy("on-drift-fdr").drift_config(DriftConfig()).fdr
    assert parse_policy("on-drift-calibrated").drift_config(DriftConfig()).calibrate
    assert parse_step("14d") == 14 and parse_step("7") == 7
    # any policy takes the -lookback suffix: the same rule on features of the last L days
    for name in ("never", "every:3", "on-drift", "on-drift-calibrated", "on-drift-fdr"):
        plain, windowed = parse_policy(name), parse_policy(name + "-lookback")
        assert windowed.name == name + "-lookback" and windowed.lookback and not plain.lookback
        assert (windowed.every, windowed.on_drift, windowed.calibrate, windowed.fdr) == (
            plain.every,
            plain.on_drift,
            plain.calibrate,
            plain.fdr,
        )
        assert windowed.train_config(TrainConfig(), 120).lookback_days == 120
        assert plain.train_config(TrainConfig(), 120).lookback_days is None
    assert parse_policy("every:3-lookback").slug == "every-3-lookback"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--step", "0d"], "--step: a step must be at least 1 day, got '0d'"),
        (["--step", "-3d"], "--step: a step must be at least 1 day, got '-3d'"),
        (["--step", "7x"], "--step: expected a number of days such as 7d, got '7x'"),
        (["--start", "2022-10-01", "--end", "2022-09-01"], "--start 2022-10-01 is after --end 2022-09-01"),
        (["--start", "2022-13"], "--start: expected a date YYYY-MM-DD, got '2022-13'"),
        (
            ["--start", "2022-02-30"],
            "--start: 2022-02-30 is no calendar date (day is out of range for month)",
        ),
        (["--end", "2030-01-01"], "--end 2030-01-01 is after the data's last day 2023-02-2"),
        (["--end", "2020-01-01"], "--end 2020-01-01 is before the data's first day 2022-01-03"),
        (
            ["--end", "2022-06-01"],
            "--end 2022-06-01 is before the default start 2022-08-01 (the data's first",
        ),
        (["--policy", "sometimes"], "unknown replay policy 'sometimes'"),
        (
            ["--policy", "never-lookback", "--lookback-days", "0"],
            "--lookback-days: a lookback window must be",
        ),
        (
            ["--policy", "never", "--lookback-days", "30"],
            "--lookback-days 30: only the -lookback policies use",
        ),
        (["--lookback-days", "abc"], "Invalid value for '--lookback-days'"),  # click's, in one line too
        (["--no-such-option"], "No such option: --no-such-option"),
        (["--data", "."], "is a folder, not a transactions file"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(cli_workdir, capsys, args, message):
    assert cli.run(["replay", *args]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.strip().count("\n") == 0, captured.err
    assert not (cli_workdir / "reports").exists() or not any((cli_workdir / "reports").rglob("timeline.json"))


def test_a_file_of_a_few_days_has_no_matured_window(cli_workdir, capsys):
    few = cli_workdir / "few.csv"
    synthetic_history(few, days=20)
    assert cli.run(["replay", "--data", str(few)]) == 2
    err = capsys.readouterr().err
    assert "no matured window: the data spans" in err and "at least 2×H = 180 days" in err
    assert err.strip().count("\n") == 0


def test_the_command_prints_the_table_and_writes_the_files(cli_workdir, capsys):
    out = cli_workdir / "replay-out"
    args = ["replay", "--start", "2022-12-01", "--step", "28d", "--policy", "never", "--out", str(out)]
    assert cli.run([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dates"] == ["2022-12-01", "2022-12-29", "2023-01-26", "2023-02-23"]
    assert [s["policy"] for s in doc["summaries"]] == ["never"] and doc["summaries"][0]["retrains"] == 0
    assert (out / "timeline.json").is_file() and (out / "summary.json").is_file()
    assert doc["chart_paths"] == {"svg": str(out / "chart.svg"), "html": str(out / "chart.html")}
    assert "<svg" in (out / "chart.svg").read_text() and "<svg" in (out / "chart.html").read_text()
    # every phase of the work is timed, and the phases add up to (almost) the whole replay
    assert {"load", "first champions", "clean", "detect", "run history", "write"} <= set(doc["phases"])
    assert 0.8 * doc["seconds"] <= sum(doc["phases"].values()) <= doc["seconds"] + 0.01
    assert cli.run([*args[:-1], str(out / "again")]) == 0
    printed = capsys.readouterr().out
    assert "precision" in printed and "4 steps from 2022-12-01 to 2023-02-23 every 28 days" in printed
    assert doc["end"] == "2023-02-26"  # the file's last days fall after the last step date: said so
    assert re.search(
        r"the [\d,]+ rows after the last step date 2023-02-23 \(up to 2023-02-26\) are not", printed
    )
    assert json.loads((out / "again" / "summary.json").read_text())["rows_after_last_step"] > 0
    assert cli.run(args) == 2  # the same output folder again: refused, nothing overwritten
    assert "already hold(s) a replay; choose another output folder (--out)" in capsys.readouterr().err
    # another policy into the same folder would overwrite its timeline: refused too; a file is no folder
    assert cli.run([*args[:-3], "on-drift", "--out", str(out)]) == 2
    assert "timeline.json" in capsys.readouterr().err
    (cli_workdir / "afile").write_text("x")
    assert cli.run([*args[:-1], str(cli_workdir / "afile")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_calibrated_and_fdr_policies_check_with_their_options(history, tmp_path):
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    day = "2022-10-24"
    replay(
        load_transactions(history),
        out_dir=tmp_path,
        start=day,
        end=day,
        policies=["on-drift", "on-drift-calibrated", "on-drift-fdr"],
    )
    used = {}
    for slug in ("on-drift", "on-drift-calibrated", "on-drift-fdr"):
        store = RunStore(connect(f"sqlite:///{tmp_path / 'policies' / slug / 'clvdrift.db'}"))
        report = json.loads(Path(store.get(f"replay-{slug}-{day}").details["report"]).read_text())
        settings = report["data_drift"]["settings"]
        used[slug] = (settings["calibrate"], settings["fdr"])
    assert used == {
        "on-drift": (False, False),
        "on-drift-calibrated": (True, False),
        "on-drift-fdr": (False, True),
    }


def _step(i: int, *, alarm: bool, spearman: float | None, reference: float = 0.5, mae: float = 1.0):
    from clvdrift.pipeline.replay import ReplayStep

    quality = (
        None
        if spearman is None
        else {"spearman": spearman, "gini_normalized": 0.5, "mae": mae, "total_ratio": 1.0}
    )
    return ReplayStep(
        step=i,
        date=f"2022-01-{i:02d}",
        policy="on-drift",
        run_id=f"r{i}",
        status="success",
        error=None,
        rows=1,
        cutoff="2021-10-01",
        drifted_columns=[],
        column_drift={},
        dataset_drift=alarm,
        model_drift=False,
        model_drift_assessable=spearman is not None,
        retraining_required=alarm,
        retrained=alarm,
        gate_outcome=None,
        gate_reason=None,
        challenger_version=None,
        champion_version="v",
        champion_after="v",
        champion_reference_spearman=reference,
        quality=quality,
        customers_scored=None if spearman is None else 10,
    )


def test_alarm_precision_counts_alarms_followed_by_a_real_quality_drop():
    from clvdrift.pipeline.replay import summarize

    steps = [
        _step(1, alarm=True, spearman=0.49),  # no drop here, none at the next matured step (3): false alarm
        _step(2, alarm=False, spearman=None),
        _step(3, alarm=False, spearman=0.50, mae=3.0),
        _step(4, alarm=True, spearman=0.49),  # no drop here, a drop at step 5: confirmed
        _step(5, alarm=True, spearman=0.40),  # a drop at the alarm step itself: confirmed
        _step(6, alarm=True, spearman=None),  # nothing matured at or after it: not judged
    ]
    s = summarize("on-drift", steps, tolerance=0.02)
    assert (s.alarms, s.judged_alarms, s.confirmed_alarms) == (4, 3, 2)
    assert (s.data_drift_alarms, s.model_drift_alarms) == (4, 0)  # the hand-made alarms are data drift
    assert s.alarm_precision == pytest.approx(2 / 3)
    assert (s.matured_steps, s.worst_spearman, s.worst_mae) == (4, 0.40, 3.0)
    assert s.mean_spearman == pytest.approx((0.49 + 0.50 + 0.49 + 0.40) / 4)
    assert summarize("never", [], tolerance=0.02).alarm_precision is None


def test_a_retraining_the_history_does_not_allow_yet_is_recorded_not_raised(history, tmp_path):
    """every:1 from the earliest start: the gate needs 2H + 30 days, the data has 120: the step records
    why, the champion stays, the replay goes on."""
    result = replay(
        load_transactions(history),
        out_dir=tmp_path,
        start="2022-05-03",
        end="2022-05-03",
        policies=["every:1"],
    )
    (step,) = result.steps
    assert step.retrained and step.gate_outcome == "error" and step.champion_after == step.champion_version
    assert "retraining with a gate needs at least 2 × 90 + 30 = 210 days" in (step.gate_reason or "")
    (summary,) = result.summaries
    assert (summary.retrains, summary.retrain_errors) == (0, 1)
    with pytest.raises(ConfigError, match="--start 2022-05-02 is too early"):
        replay(load_transactions(history), out_dir=tmp_path / "early", start="2022-05-02", policies=["never"])


def test_a_step_its_data_cannot_support_is_recorded_as_failed_and_the_replay_goes_on(tmp_path):
    """A 110-day hole in the data: with a 30-day lookback some cutoffs have no customer at all. Those steps
    are recorded (status failed, the error, nothing checked) and every other step is still replayed."""
    import jsonschema

    path = tmp_path / "history.csv"
    synthetic_history(path, days=420)
    raw = load_transactions(path)
    dates = raw["InvoiceDate"]
    holed = raw.loc[(dates < "2022-09-01") | (dates >= "2022-12-20")].reset_index(drop=True)
    result = replay(
        holed,
        out_dir=tmp_path / "out",
        start="2022-08-01",
        step_days=14,
        policies=["never", "never-lookback"],
        lookback_days=30,
    )
    windowed = [s for s in result.steps if s.policy == "never-lookback"]
    failed = [s for s in windowed if s.status == "failed"]
    assert failed and len(failed) < len(windowed)
    assert all("in the 30-day lookback window up to the cutoff" in s.error for s in failed)
    assert all(s.quality is None and s.cutoff is None for s in failed)
    assert all(s.status == "success" and s.error is None for s in result.steps if s.policy == "never")
    by_policy = {s.policy: s for s in result.summaries}
    assert by_policy["never-lookback"].failed_steps == len(failed) and by_policy["never"].failed_steps == 0
    # the failed cycles are in the policy's run history too
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    store = RunStore(connect(f"sqlite:///{tmp_path / 'out' / 'policies' / 'never-lookback' / 'clvdrift.db'}"))
    assert store.get(failed[0].run_id).status == "failed"
    schema = json.loads((REPO / "docs" / "replay_timeline.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(Path(result.timeline_path).read_text()))


def test_a_first_champion_that_cannot_be_fitted_leaves_nothing_and_names_the_lookback_window(
    history, tmp_path
):
    out = tmp_path / "out"
    raw = load_transactions(history)
    with pytest.raises(DataError) as caught:
        replay(raw, out_dir=out, start=START, policies=["never", "never-lookback"], lookback_days=1)
    message = str(caught.value)
    assert f"the first champion at start {START} (1-day lookback features)" in message
    assert "in the 1-day lookback window" in message and "--cutoff" not in message
    assert not out.exists()  # no policy folder was created: the same command can run again at once
    again = replay(raw, out_dir=out, start=START, step_days=60, policies=["never", "never-lookback"])
    assert [s.status for s in again.steps] == ["success"] * len(again.steps)


def test_an_interrupted_replay_removes_what_it_wrote_so_that_it_can_run_again(history, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # something of the user's in the folder stays
    raw = load_transactions(history)
    calls = []

    def interrupt(done: int, total: int, label: str) -> None:
        calls.append(label)
        if done == 3:  # after three cycles: workspaces and their runs exist
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replay(raw, out_dir=out, start=START, step_days=STEP, policies=POLICIES, progress=interrupt)
    assert (out / "policies").exists() is False and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert len(calls) > 3
    again = replay(raw, out_dir=out, start=START, step_days=STEP, policies=POLICIES)
    assert again.dates == DATES and Path(again.summary_path).is_file()


def test_two_replays_started_together_into_one_folder_one_runs_the_other_is_refused(cli_workdir):
    import os
    import subprocess
    import sys

    out = cli_workdir / "shared-out"
    args = [sys.executable, "-m", "clvdrift", "replay", "--start", "2022-12-01", "--step", "28d"]
    sets = [["--policy", "never", "--policy", "every:2"], ["--policy", "on-drift"]]  # disjoint policies
    children = [
        subprocess.Popen(
            [*args, *policies, "--out", str(out)],
            env=os.environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for policies in sets
    ]
    results = [(child.wait(timeout=300), child.stderr.read()) for child in children]  # type: ignore[union-attr]
    assert sorted(code for code, _ in results) == [0, 2], results
    winner = [code for code, _ in results].index(0)
    refused = results[1 - winner][1]
    assert ("another replay" in refused or "already hold" in refused) and refused.strip().count("\n") == 0
    summary = json.loads((out / "summary.json").read_text())  # the finished replay's files are whole
    assert summary["policies"] == [["never", "every:2"], ["on-drift"]][winner]
    slugs = [["every-2", "never"], ["on-drift"]][winner]
    assert sorted(p.name for p in (out / "policies").iterdir()) == slugs
    assert not (out / ".replay.lock").exists()


def test_a_replay_killed_with_sigkill_is_cleaned_up_by_the_next_one_sigterm_cleans_up_itself(cli_workdir):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "clvdrift", "replay", "--start", "2022-08-01", "--step", "7d"]
    for sig, code in ((signal.SIGKILL, -9), (signal.SIGTERM, 143)):
        out = cli_workdir / f"out-{sig.name}"
        child = subprocess.Popen([*args, "--out", str(out)], env=os.environ, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not list(out.glob("policies/*/clvdrift.db")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        child.send_signal(sig)
        assert child.wait(timeout=60) == code, child.stderr.read()  # type: ignore[union-attr]
        assert not (out / "timeline.json").exists()
        if sig == signal.SIGTERM:  # cleaned up on the way out: nothing of it is left
            assert not out.exists(), sorted(out.rglob("*"))
        else:  # the lock and the half-written policy folders stay, until the next replay there
            assert (out / ".replay.lock").is_file() and (out / "policies").is_dir()
        # one policy, no retraining: the takeover of the folder is what is tested here
        assert (
            cli.run(
                ["replay", "--start", "2022-12-01", "--step", "28d", "--policy", "never", "--out", str(out)]
            )
            == 0
        )
        assert json.loads((out / "summary.json").read_text())["dates"][0] == "2022-12-01"
        assert not (out / ".replay.lock").exists()


def test_an_output_folder_that_cannot_be_written_is_a_one_line_error_and_a_users_folder_stays(
    cli_workdir, capsys
):
    (cli_workdir / "afile").write_text("x")
    assert cli.run(["replay", "--out", str(cli_workdir / "afile" / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write a replay there" in err and err.strip().count("\n") == 0, err
    mine = cli_workdir / "mine"
    mine.mkdir()  # an empty folder of the user's: a failed replay into it leaves it there
    assert cli.run(["replay", "--policy", "never-lookback", "--lookback-days", "1", "--out", str(mine)]) == 2
    assert "1-day lookback window" in capsys.readouterr().err
    assert mine.is_dir() and not any(mine.iterdir())
    nested = cli_workdir / "new" / "a" / "b"  # folders the failed replay created: removed again
    args = ["replay", "--policy", "never-lookback", "--lookback-days", "1"]
    assert cli.run([*args, "--out", str(nested)]) == 2
    assert not (cli_workdir / "new").exists()


def test_step_dates_without_new_transactions_are_skipped_not_counted_again(tmp_path):
    """A 70-day hole, then a single late day: the step dates in the hole see the same rows as the one
    before it; replayed, each would check the same window again and count its alarms and retrains twice."""
    path = tmp_path / "history.csv"
    synthetic_history(path, days=400, seed=3)
    # in the hole, rows that cleaning removes all (a guest without customer id, postage): they give no
    # new data either (seen by an independent check: the same window checked and counted twice)
    extra = pd.read_csv(path, dtype=str).iloc[[0, 1, 2]].copy()
    extra["InvoiceDate"] = ["2022-11-20 10:00", "2022-12-01 10:00", "2022-12-15 10:00"]
    extra["CustomerID"] = ["12345", None, None]
    extra["StockCode"] = ["POST", "85123A", "85123A"]
    extra.to_csv(path, mode="a", header=False, index=False)
    raw = load_transactions(path)
    dates, added = raw["InvoiceDate"], raw.index >= len(raw) - 3
    holed = raw.loc[(dates < "2022-11-01") | (dates >= "2023-01-10") | added].reset_index(drop=True)
    result = replay(holed, out_dir=tmp_path / "out", start="2022-08-01", step_days=14, policies=["every:1"])
    grid = pd.date_range("2022-08-01", result.end, freq="14D").date
    in_hole = [
        d.isoformat()
        for d in grid
        if pd.Timestamp("2022-11-14") <= pd.Timestamp(d) < pd.Timestamp("2023-01-10")
    ]
    assert in_hole and result.skipped_dates == in_hole  # 2022-11-14 saw no row after 2022-10-31's
    assert result.dates == [d.isoformat() for d in grid if d.isoformat() not in in_hole]
    assert [s.step for s in result.steps] == list(range(1, len(result.dates) + 1))
    summary = json.loads(Path(result.summary_path).read_text())
    assert summary["skipped_dates"] == in_hole and summary["summaries"][0]["steps"] == len(result.dates)
    # a step far beyond the calendar is one step, not an overflow
    huge = replay(holed, out_dir=tmp_path / "huge", start="2022-08-01", step_days=parse_step("99999999999d"))
    assert huge.dates == ["2022-08-01"] and huge.skipped_dates == []


def test_a_dead_replays_lock_is_taken_over_removing_only_what_it_names_inside_the_folder(history, tmp_path):
    from clvdrift.io import host_tag

    out, victim = tmp_path / "out", tmp_path / "victim"
    (out / "policies" / "never").mkdir(parents=True)  # left by the killed replay
    (out / "policies" / "never" / "clvdrift.db").write_text("half")
    (out / "chart.svg").write_text("<svg")  # its last write
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    (out / "policies" / "evil").symlink_to(victim)  # a policy folder that leads out of the folder
    (out / "notes.txt").write_text("the user's")
    slugs = ["never", "evil", "..", ".", "", "../victim", str(victim)]
    (out / ".replay.lock").write_text(json.dumps({"pid": dead_pid(), "host": host_tag(), "policies": slugs}))
    result = replay(load_transactions(history), out_dir=out, start=START, step_days=60, policies=["never"])
    assert [s.status for s in result.steps] == ["success"] * len(result.steps)
    assert (victim / "keep.txt").read_text() == "mine" and not (out / ".replay.lock").exists()
    assert (out / "notes.txt").read_text() == "the user's" and (out / "policies" / "evil").is_symlink()
    # a lock of a live process (this one) is refused, and says how to proceed
    (out / ".replay.lock").write_text(json.dumps({"pid": os.getpid(), "host": host_tag(), "policies": []}))
    with pytest.raises(
        ConfigError, match=r"another replay \(pid \d+\) is writing there; .* if no replay is running"
    ):
        replay(load_transactions(history), out_dir=tmp_path / "out", start=START, policies=["every:2"])
    assert (out / ".replay.lock").exists() and not (out / "policies" / "every-2").exists()
    (out / ".replay.lock").write_text("{not json")  # unreadable: refused, and said so
    with pytest.raises(ConfigError, match=r"a replay lock that cannot be read"):
        replay(load_transactions(history), out_dir=out, start=START, policies=["every:2"])


def test_a_lock_read_between_its_creation_and_its_writing_is_waited_for_not_called_unreadable(tmp_path):
    """Its owner creates the lock (O_EXCL) and writes it next: a second replay reading in between
    (found racing two processes: 126 of 1,000) must wait for the content, not report it unreadable."""
    import threading

    from clvdrift.io import host_tag
    from clvdrift.pipeline.replay import _take_lock

    lock = tmp_path / ".replay.lock"
    lock.touch()  # created, not yet written
    owner = json.dumps({"pid": os.getpid(), "host": host_tag(), "policies": ["never"]})
    writer = threading.Timer(0.3, lambda: lock.write_text(owner))
    writer.start()
    with pytest.raises(ConfigError, match=r"another replay \(pid \d+\) is writing there"):
        _take_lock(lock, ["on-drift"])
    writer.join()
    lock.write_text("")  # one that stays empty is unreadable after a second
    with pytest.raises(ConfigError, match=r"a replay lock that cannot be read"):
        _take_lock(lock, ["on-drift"])


def test_the_terminal_table_keeps_every_value_whole_in_80_columns():
    """Long policy names that differ only at their ends, and every number of the summary, survive an
    80-column terminal (before: "on-drift-calibrate…" twice, and no promotions or worst MAE): a table
    when it fits, else a block of lines per policy."""
    from rich.console import Console

    def summary(policy: str, k: int) -> dict[str, object]:
        return {
            "policy": policy,
            "steps": 37,
            "failed_steps": 0,
            "matured_steps": 36,
            "retrains": 10 + k,
            "promotions": 9,
            "retrain_errors": 0,
            "alarms": 22,
            "data_drift_alarms": 12,
            "model_drift_alarms": 18 + k,
            "mean_spearman": 0.4634,
            "worst_spearman": 0.3571,
            "mean_mae": 1558.4 if k == 1 else 558.4,
            "worst_mae": 12823.0 if k == 1 else 823.0,
            "confirmed_alarms": 17,
            "judged_alarms": 22,
        }

    short = ["never", "every:4", "on-drift-calibrated", "on-drift-fdr"]
    long = ["on-drift-calibrated", "on-drift-calibrated-lookback", "on-drift-fdr", "on-drift-fdr-lookback"]
    for names, width, tabled in ((short, 120, True), (long, 80, False)):
        console = Console(width=width, record=True)
        cli._print_replay_table(console, [summary(name, k) for k, name in enumerate(names)])
        text = console.export_text()
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= width, text
        assert ("───" in text) is tabled, text
        lines = text.splitlines()
        found = [line.split()[0] for line in lines if line.split()[:1]]
        assert [f for f in found if f in names] == names, text
        first = next(i for i, line in enumerate(lines) if line.split()[:1] == [names[1]])
        numbers = re.findall(r"\d[\d,./]*\d|\d", " ".join(lines[first : first + (1 if tabled else 4)]))
        want = ["37", "36", "11", "9", "22", "12", "19", "0.463", "0.357", "17/22", "1,558", "12,823"]
        assert [v for v in want if v not in numbers] == [], text


def test_policies_on_one_thread_give_the_timeline_of_policies_on_two(full, history, tmp_path, monkeypatch):
    """A step's policies run on POLICY_THREADS threads and share fits and aggregates: one after the other
    they must record the same steps (drift, decisions, gates, quality to the last bit)."""
    from clvdrift.pipeline import replay as replay_module

    assert replay_module.POLICY_THREADS == 2
    monkeypatch.setattr(replay_module, "POLICY_THREADS", 1)
    serial = replay(
        load_transactions(history),
        out_dir=tmp_path,
        source="history.csv",
        start=START,
        step_days=STEP,
        policies=POLICIES,
    )
    assert [_stable(s) for s in serial.steps] == [_stable(s) for s in full.steps]
    assert any(s.retrained for s in full.steps) and any(s.dataset_drift for s in full.steps)


def _children(pid: int, marker: str) -> list[int]:
    """PIDs of ``pid``'s child processes whose command line holds ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and marker in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_replay_stopped_while_its_fit_worker_is_stuck_exits_at_once_and_leaves_nothing(
    cli_workdir, signal_name
):
    """The booster worker stopped (SIGSTOP: as stuck as a process gets), then the replay is told to stop:
    it must not wait for the worker's answer (minutes), must kill it, and must remove what it wrote."""
    import signal
    import subprocess
    import sys
    import time

    out = cli_workdir / "out"
    args = [
        sys.executable,
        "-m",
        "clvdrift",
        "replay",
        "--start",
        "2022-08-01",
        "--step",
        "14d",
        "--out",
        str(out),
    ]
    child = subprocess.Popen(
        [*args, "--policy", "every:1", "--policy", "on-drift"],
        env=os.environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while not workers and time.monotonic() < deadline and child.poll() is None:
            workers = _children(child.pid, "clvdrift.model.fit_worker")
            time.sleep(0.05)
        assert workers, "the replay started no fit worker"
        os.kill(workers[0], signal.SIGSTOP)
        time.sleep(2.0)  # a fit now waits for the stopped worker
        assert child.poll() is None
        os.kill(child.pid, getattr(signal, signal_name))
        started = time.monotonic()
        code = child.wait(timeout=120)
        assert time.monotonic() - started < 30, "the replay waited for its stuck worker"
        assert code != 0
        assert "Traceback" not in (child.stderr.read() if child.stderr else "")
        gone = time.monotonic() + 10
        while time.monotonic() < gone and Path(f"/proc/{workers[0]}").exists():
            time.sleep(0.05)
        assert not Path(f"/proc/{workers[0]}").exists(), "the stopped worker outlived its replay"
        assert not (out / "policies").exists() and not (out / ".replay.lock").exists()
    finally:
        if child.poll() is None:
            child.kill()
