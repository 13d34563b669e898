"""Command line: a thin adapter over :mod:`clvdrift.pipeline`.

Heavy libraries (pandas, scikit-learn, Evidently) are imported inside the commands so that
``clvdrift --help`` stays fast. Every error ends in one line on stderr and the exit code of
:mod:`clvdrift.errors` (``--debug`` adds the traceback); :func:`run` is the one place that maps them.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clvdrift.config import SCENARIO_SEED, DriftConfig, TrainConfig, validated
from clvdrift.errors import (
    EXIT_BAD_INPUT,
    EXIT_DRIFT,
    EXIT_INTERNAL,
    EXIT_QUARANTINE,
    EXIT_STORE,
    ClvdriftError,
    ConfigError,
    exit_code,
    storage_error,
)
from clvdrift.settings import Settings, get_settings
from clvdrift.urls import mask_url

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="clvdrift: keep a Customer Lifetime Value model honest in production.",
)
models_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Model registry.")
app.add_typer(models_app, name="models")
runs_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="Run history of the monitoring cycle."
)
app.add_typer(runs_app, name="runs")
history_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="The transaction history: check and repair its parts."
)
app.add_typer(history_app, name="history")
apikey_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="API keys of the service (clvdrift serve)."
)
app.add_typer(apikey_app, name="apikey")
# Not a terminal (CI, Airflow logs, pipes): wide enough that tables are not squeezed.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _default(config: type[TrainConfig] | type[DriftConfig], name: str) -> str:
    """'[default: CLVDRIFT_X__NAME or <value>]' for help texts, from the one place defaults live."""
    section = "TRAIN" if config is TrainConfig else "DRIFT"
    value = config.model_fields[name].get_default(call_default_factory=True)
    return f"[default: CLVDRIFT_{section}__{name.upper()} or {value}]"


class Target(str, Enum):
    holdout = "holdout"
    formula = "formula"


class Family(str, Enum):
    gbm = "gbm"
    rf = "rf"


class EngineArg(str, Enum):
    auto = "auto"
    pandas = "pandas"
    duckdb = "duckdb"
    dask = "dask"


class Scenario(str, Enum):
    none = "none"
    data_drift = "data-drift"
    model_drift = "model-drift"
    both = "both"


DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Transactions file (CSV, CSV.GZ, XLSX, Parquet) "
        "[default: CLVDRIFT_RAW_DATA or the bundled Online Retail file]",
    ),
]
DateFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--date-format",
        help="strftime format of InvoiceDate, e.g. '%d-%m-%Y %H:%M' [default: inferred when unambiguous]",
    ),
]
ColumnOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--column",
        help="Map a column of the file to a canonical name: 'Name In File=CustomerID' (repeatable) "
        "[default: the Online Retail and Online Retail II names]",
    ),
]
CutoffOpt = Annotated[
    str | None,
    typer.Option(
        help="Last day of the calibration window, YYYY-MM-DD [default: last day in the data minus H]"
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
EngineOpt = Annotated[
    EngineArg | None,
    typer.Option(
        "--engine",
        help="What cleans the transactions and computes the features: pandas (in memory), duckdb (out of "
        "core), dask (CLVDRIFT_DASK_SCHEDULER or a local cluster); auto: by size [default: CLVDRIFT_ENGINE "
        "or auto]",
    ),
]


def _with_engine(settings: Settings, engine: EngineArg | None) -> Settings:
    """The settings with ``--engine`` applied (one place, so every command reads it alike)."""
    return settings if engine is None else settings.model_copy(update={"engine": engine.value})


def _print_version(value: bool) -> None:
    if value:
        from clvdrift import __version__

        out.print(f"clvdrift {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """clvdrift: keep a Customer Lifetime Value model honest in production."""
    from clvdrift.observability.logging import configure

    settings = get_settings()
    configure(settings.log_level, settings.log_file)


_TERMINATED: list[int] = []  # the SIGTERM that came (see _sigterm_exits); a plain list: no lock


def _exit_if_terminated() -> None:
    """Exit (143) when a SIGTERM came: its handler's exit can have been dropped, because Python prints
    and drops an exception raised in a destructor (``__del__``, a weakref callback), and the handler
    runs wherever the main thread is (a lost SIGTERM seen once in a test of replay)."""
    if _TERMINATED:
        raise SystemExit(143)


@contextmanager
def _sigterm_exits() -> Iterator[None]:
    """SIGTERM (how a scheduler stops a task) exits through every command's cleanup (``finally``,
    ``except BaseException``), as Ctrl-C does, with exit code 143.

    Only the first SIGTERM raises: later ones (a burst, or a scheduler repeating itself) must not
    interrupt the cleanup the first one started (recording the run as stopped). The handler takes no
    lock: a signal landing inside it while it held one deadlocked the process (``threading.Event``)."""
    import signal

    def exit_(signum: int, _frame: object) -> None:
        if _TERMINATED:
            return
        _TERMINATED.append(signum)
        raise SystemExit(128 + signum)

    _TERMINATED.clear()
    if threading.current_thread() is not threading.main_thread():  # handlers live in the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, exit_)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` and return its exit code (see :mod:`clvdrift.errors`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with _sigterm_exits():
            rv = app(args=args, prog_name="clvdrift", standalone_mode=False)
            _exit_if_terminated()  # the command finished, but a SIGTERM came: say so to the scheduler
    except (click.exceptions.Abort, typer.Abort, KeyboardInterrupt):  # Ctrl-C: click turns it into Abort
        err.print("aborted")  # only inside a command; typer builds the command before, outside click
        return 130
    except (click.ClickException, typer.TyperException) as exc:  # a bad option or value (typer vendors
        # its own click): one line, as every other bad input, not click's usage block
        if type(exc).__name__ == "NoArgsIsHelpError":  # `clvdrift` or `clvdrift models` alone: the help
            exc.show()  # type: ignore[union-attr]
            return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        shown = escape(mask_url(f"{message}{where}"))  # every message: passwords hidden, no markup
        err.print(f"[bold red]error:[/] {shown}", highlight=False, soft_wrap=True, emoji=False)
        return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
    except ClvdriftError as exc:
        shown = escape(mask_url(str(exc)))
        err.print(f"[bold red]error:[/] {shown}", highlight=False, soft_wrap=True, markup=True, emoji=False)
        return exit_code(exc)
    except Exception as exc:
        disk = storage_error(exc)  # the environment, not a bug: disk full, quota, read-only, I/O (exit 3)
        if disk is not None:
            if "--debug" in args:
                traceback.print_exc()
            err.print(
                f"error: {mask_url(str(disk))}", highlight=False, soft_wrap=True, markup=False, emoji=False
            )
            return disk.exit_code
        if "--debug" in args:
            traceback.print_exc()
        first = str(exc).splitlines()[0] if str(exc) else ""
        err.print(
            mask_url(
                f"error: unexpected {type(exc).__name__}: {first} (a bug in clvdrift; rerun with --debug "
                "for the traceback)"
            ),
            highlight=False,
            soft_wrap=True,
            markup=False,
            emoji=False,
        )
        return EXIT_INTERNAL
    if rv == 130:  # typer turns Ctrl-C into exit code 130 by itself
        err.print("aborted")
    return rv if isinstance(rv, int) else 0


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner naming the current step on a terminal; silent in CI and Airflow logs."""
    if not err.is_terminal:
        yield lambda _step: None
        return
    with err.status(label) as status:
        yield lambda step: status.update(f"{label}: {step}…")


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar (done of total, what comes next, elapsed and remaining time) on a terminal;
    silent in CI and Airflow logs."""
    if not err.is_terminal:
        yield lambda _done, _total, _what: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=f"{label}: {what}")

        yield update


def _registry(database_url: str):  # type: ignore[no-untyped-def]
    from clvdrift.pipeline.champion import open_registry

    return open_registry(database_url)


def _columns(pairs: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(
                f"expected 'Name In File=Canonical', got {pair!r}", param_hint="--column"
            )
        src, dst = pair.rsplit("=", 1)
        mapping[src.strip()] = dst.strip()
    return mapping


def _print_json(value: Any) -> None:
    """JSON on stdout, the one convention of :mod:`clvdrift.jsonable` (no NaN, no Infinity)."""
    from clvdrift.jsonable import dumps

    out.print_json(dumps(value))


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"
    return str(value)


def _evaluation_table(evaluation: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("persistence baseline", justify="right")
    for key in ("r2", "mae", "rmse", "spearman", "gini_normalized", "top10_capture", "total_ratio"):
        table.add_row(key, _fmt(evaluation["model"][key]), _fmt(evaluation["baseline"][key]))
    return table


def _train_table(ev: dict[str, Any], family: str) -> Table:
    """The evaluation through time: the model next to persistence, the seed's rf and the champion."""
    if ev.get("split") != "time":
        return _evaluation_table(ev, f"{ev['split']}: {ev['customers']:,} test customers")
    w = ev["window"]
    title = (
        f"through time: fitted with labels up to {w['labels_end']}, scored on the {w['customers']:,} "
        f"customers at {w['scored_at']} (revenue until {w['scored_until']})"
    )
    table = Table(title=title)
    columns: list[tuple[str, dict[str, Any]]] = [(family, ev["model"])]
    if "calibrated" in ev:
        columns.append((f"{family} × season", ev["calibrated"]))
    columns.append(("persistence", ev["baseline"]))
    if "rf" in ev:
        columns.append(("seed rf", ev["rf"]))
    champion = ev.get("champion") or {}
    if champion.get("skipped"):
        table.caption = f"champion {champion['version']} not compared: {champion['skipped']}"
    if champion.get("champion"):
        note = "" if champion["clean"] else ", NOT clean"
        columns.append(
            (
                f"champion {champion['version']} ({champion['customers']:,} customers{note})",
                champion["champion"],
            )
        )
    table.add_column("metric")
    for name, _ in columns:
        table.add_column(name, justify="right")
    for key in ("spearman", "gini_normalized", "top10_capture", "mae", "rmse", "r2", "total_ratio"):
        table.add_row(key, *(_fmt(values.get(key)) for _, values in columns))
    return table


def _train(
    settings: Settings,
    data: Path | None,
    overrides: dict[str, Any],
    cutoff: str | None,
    date_format: str | None,
    columns: dict[str, str],
    promote: bool | None,
) -> dict[str, Any]:
    from clvdrift import pipeline

    config = validated(
        TrainConfig,
        "training options",
        **{**settings.train.model_dump(), **{k: v for k, v in overrides.items() if v is not None}},
    )
    with _progress("training") as progress:
        result = pipeline.train(
            data or settings.raw_data,
            registry=_registry(settings.database_url),
            models_dir=settings.models_dir,
            reference_dir=settings.reference_dir,
            config=config,
            cutoff=cutoff,
            date_format=date_format,
            columns=columns,
            champion=promote,
            progress=progress,
            engines=settings.workspace().engines,
        )
    return result.to_dict()


def _print_findings(cleaning: dict[str, Any]) -> None:
    """Validation findings of the cleaning (e.g. rows dated far outside the data) the user must see."""
    for finding in cleaning.get("findings") or []:
        err.print(f"[yellow]warning:[/] {finding}", highlight=False, soft_wrap=True)


def _print_train(result: dict[str, Any]) -> None:
    ev = result["evaluation"]
    removed = ", ".join(f"{k} {v:,}" for k, v in result["cleaning"]["removed"].items() if v)
    out.print(
        f"cleaning: {result['cleaning']['rows_in']:,} rows in, {result['cleaning']['rows_out']:,} kept "
        f"({removed}); {result['cleaning']['customers_out']:,} customers"
    )
    tr = result["training"]
    stacked = (
        f", {tr['stacked_cutoffs']} stacked cutoffs from {tr['first_cutoff']}"
        if tr["stacked_cutoffs"] > 1
        else ""
    )
    out.print(
        f"model {tr['family']}, target {tr['target']}, cutoff {tr['cutoff']}, "
        f"horizon {tr['horizon_days']} days: "
        f"{tr['customers']:,} customers ({tr['train_customers']:,} fitted / "
        f"{tr['test_customers']:,} held out){stacked}"
    )
    out.print(_train_table(ev, tr["family"]))
    season = ev.get("season") or {}
    if season:
        how = f"× {season['factor']:.3f} ({season['reason']})" if season.get("factor") else season["reason"]
        out.print(f"total: {season['status']}: {how}", highlight=False)
    verdict = "beats" if ev["beats_baseline"] else "does NOT beat"
    out.print(f"model {verdict} the persistence baseline on Spearman and normalized Gini")
    secondary = ev.get("random_split")
    if secondary:
        out.print(
            f"secondary (held-out customers, same window as training): Spearman "
            f"{_fmt(secondary['model']['spearman'])}, MAE {_fmt(secondary['model']['mae'], 1)}",
            highlight=False,
        )
    role = "champion" if result["champion"] else "challenger (champion unchanged)"
    out.print(
        f"registered version [bold]{result['version']}[/] as {role}; timings {json.dumps(result['timings'])}",
        highlight=False,
    )


@app.command()
def train(
    data: DataOpt = None,
    target: Annotated[
        Target | None,
        typer.Option(
            help="holdout: revenue in the next H days; formula: the seed's "
            "Monetary×Frequency/(Recency+1)×365 " + _default(TrainConfig, "target")
        ),
    ] = None,
    horizon_days: Annotated[
        int | None,
        typer.Option(
            "--horizon-days",
            min=1,
            help="H, the holdout window and the baseline window " + _default(TrainConfig, "horizon_days"),
        ),
    ] = None,
    cutoff: CutoffOpt = None,
    lookback_days: Annotated[
        int | None,
        typer.Option(
            "--lookback-days",
            min=1,
            help="Compute features "
            "from the last L days only " + _default(TrainConfig, "lookback_days") + " (None: all history)",
        ),
    ] = None,
    date_format: DateFormatOpt = None,
    column: ColumnOpt = None,
    promote: Annotated[
        bool | None,
        typer.Option(
            "--promote/--no-promote", help="Make this version the champion [default: only when there is none]"
        ),
    ] = None,
    model: Annotated[
        Family | None,
        typer.Option(
            "--model",
            help="gbm: boosted trees, Poisson loss, stacked cutoffs; rf: the seed's random forest "
            + _default(TrainConfig, "model"),
        ),
    ] = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train, evaluate and register a CLV model on a transactions file."""
    settings = _with_engine(get_settings(), engine)
    overrides = {
        "model": model.value if model else None,
        "target": target.value if target else None,
        "horizon_days": horizon_days,
        "lookback_days": lookback_days,
    }
    result = _train(settings, data, overrides, cutoff, date_format, _columns(column), promote)
    _print_findings(result["cleaning"])
    if as_json:
        _print_json(result)
    else:
        _print_train(result)


@app.command()
def simulate(
    scenario: Annotated[Scenario, typer.Option(help="Which drift to inject.")] = Scenario.none,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same file.")] = SCENARIO_SEED,
    data: DataOpt = None,
    date_format: DateFormatOpt = None,
    column: ColumnOpt = None,
) -> None:
    """Write a drift scenario of the raw transactions to data/current/current_data.csv."""
    from clvdrift import pipeline

    settings = get_settings()
    with _progress(f"simulating {scenario.value}"):
        info = pipeline.simulate(
            data or settings.raw_data,
            scenario.value,
            seed=seed,
            current_dir=settings.current_dir,
            date_format=date_format,
            columns=_columns(column),
        )
    out.print(
        f"scenario {info.scenario} (seed {seed}): {info.rows:,} rows → {info.path} "
        f"(mean Quantity {info.mean_quantity:,.2f}, mean UnitPrice {info.mean_unit_price:,.2f})"
    )


def _drift_tables(result: dict[str, Any]) -> None:
    dd, md, decision = result["data_drift"], result["model_drift"], result["decision"]
    table = Table(
        title=f"data drift: {result['current']['source']} vs champion {result['model_version']} reference"
    )
    for name in (
        "column",
        "test",
        "statistic",
        "p-value",
        "threshold",
        "effect size",
        "decided by",
        "drifted",
    ):
        table.add_column(name, justify="left" if name in ("column", "test", "decided by") else "right")
    for col in dd["columns"]:
        # the numbers shown are those of the rule that decided: calibration (its statistic on the grid,
        # calibrated p-value and threshold), FDR (the adjusted p-value) or the test itself
        by = col.get("decided_by")
        calibrated = by == "calibration"
        statistic = col.get("calibrated_statistic") if calibrated else col["statistic"]
        threshold = col.get("calibrated_threshold") if calibrated else col["threshold"]
        p_value = {"calibration": col.get("calibrated_p_value"), "fdr": col.get("adjusted_p_value")}.get(
            by, col.get("p_value")
        )
        table.add_row(
            col["column"],
            col["test"],
            _fmt(statistic),
            _fmt(p_value),
            _fmt(threshold),
            _fmt(col.get("effect_size")),
            str(by or "test"),
            "[bold red]yes[/]" if col["drifted"] else "no",
        )
    out.print(table)
    rules = sorted({col["decision_rule"] for col in dd["columns"] if col.get("decided_by") != "test"})
    for rule in rules:
        out.print(f"decided by: {rule}", highlight=False)
    out.print(f"dataset rule: {dd['dataset_rule']}", highlight=False)
    out.print(
        f"drifted columns {dd['number_of_drifted_columns']}/{dd['number_of_columns']} "
        f"(share {dd['drift_share']:.2f}, threshold {dd['drift_share_threshold']}); "
        f"dataset drift: {'YES' if dd['dataset_drift'] else 'no'}"
    )
    out.print(
        f"model drift scored on {result['model_drift_scope']['customers_scored']:,} customers "
        f"({result['model_drift_scope']['rule']})",
        highlight=False,
    )
    if md["labels_available"]:
        ref, cur = md["reference"], md["current"]
        out.print(
            f"model: R² {_fmt(cur['r2'])} (held-out reference {_fmt(ref['r2'])}), MAE {_fmt(cur['mae'], 1)} "
            f"(reference {_fmt(ref['mae'], 1)}); model drift: {'YES' if md['detected'] else 'no'}"
        )
    else:
        out.print(f"model drift not assessed: {md['note']}")
    verdict = (
        "[bold red]RETRAINING REQUIRED[/]"
        if decision["retraining_required"]
        else "[green]no retraining needed[/]"
    )
    out.print(f"decision: {verdict}")
    for reason in decision["reasons"]:
        out.print(f"  - {reason}", highlight=False)
    reports = result["reports"]
    out.print(f"results: {reports['json']} (and {reports['latest_json']})")
    if reports.get("data_drift_html"):
        out.print(
            f"reports: {reports['data_drift_html']}"
            + (f", {reports['regression_html']}" if reports.get("regression_html") else "")
        )
    if reports.get("note"):
        out.print(f"note: {reports['note']}")


def _detect_kwargs(settings: Settings, html: bool, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The drift check's inputs from the settings (CLVDRIFT_DRIFT__* variables); options override them."""
    config = validated(
        DriftConfig,
        "drift options",
        **{**settings.drift.model_dump(), **{k: v for k, v in (overrides or {}).items() if v is not None}},
    )
    return {
        "registry": _registry(settings.database_url),
        "models_dir": settings.models_dir,
        "reports_dir": settings.reports_dir,
        "config": config,
        "render_html": html,
        "engines": settings.workspace().engines,
    }


@app.command()
def detect(
    current: Annotated[
        Path | None,
        typer.Option(help="Batch of transactions to check [default: CLVDRIFT_CURRENT_DIR/current_data.csv]"),
    ] = None,
    cutoff: Annotated[
        str | None,
        typer.Option(
            help="Compute the batch's features at this day, YYYY-MM-DD "
            "[default: its last day minus H when labels can be observed, "
            "else its last day]"
        ),
    ] = None,
    drift_share: Annotated[
        float | None,
        typer.Option(
            "--drift-share",
            min=0.0,
            max=1.0,
            help="Share of drifted "
            "columns that makes dataset drift (a key column alone also "
            "does) " + _default(DriftConfig, "drift_share"),
        ),
    ] = None,
    fdr: Annotated[
        bool | None,
        typer.Option(
            "--fdr/--no-fdr",
            help="Benjamini–Hochberg across the p-value tests " + _default(DriftConfig, "fdr"),
        ),
    ] = None,
    calibrate: Annotated[
        bool | None,
        typer.Option(
            "--calibrate/--no-calibrate",
            help="Calibrate each column's "
            "threshold to the batch size (permutation null) " + _default(DriftConfig, "calibrate"),
        ),
    ] = None,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Render the Evidently HTML reports.")] = True,
    fail_on_drift: Annotated[
        bool,
        typer.Option("--fail-on-drift", help="Exit 1 when retraining is required (errors exit 2, 3 or 4)."),
    ] = False,
    date_format: DateFormatOpt = None,
    column: ColumnOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a batch for data drift and model drift against the champion; decide on retraining.

    Per-column tests and thresholds, key columns and the model-drift thresholds come from the settings
    (CLVDRIFT_DRIFT__PER_COLUMN_STATTEST, CLVDRIFT_DRIFT__PER_COLUMN_THRESHOLD, CLVDRIFT_DRIFT__KEY_COLUMNS,
    CLVDRIFT_DRIFT__STATTEST, CLVDRIFT_DRIFT__R2_DROP_THRESHOLD, CLVDRIFT_DRIFT__MAE_INCREASE_THRESHOLD;
    JSON for lists and maps).
    """
    from clvdrift import pipeline

    settings = _with_engine(get_settings(), engine)
    path = current or settings.current_dir / pipeline.CURRENT_FILE
    kwargs = _detect_kwargs(settings, html, {"drift_share": drift_share, "fdr": fdr, "calibrate": calibrate})
    with _progress("detecting drift") as progress:
        result = pipeline.detect(
            path,
            date_format=date_format,
            columns=_columns(column),
            cutoff=cutoff,
            progress=progress,
            **kwargs,
        ).to_dict()
    _print_findings(result["current"]["cleaning"])
    if as_json:
        _print_json(result)
    else:
        _drift_tables(result)
    if fail_on_drift and result["decision"]["retraining_required"]:
        raise typer.Exit(EXIT_DRIFT)


@app.command()
def predict(
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write the predictions here (.csv or .parquet)")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Transactions file (CSV, CSV.GZ, XLSX, Parquet) [default: the transaction history when it "
            "holds a batch, else CLVDRIFT_RAW_DATA or the bundled file]",
        ),
    ] = None,
    cutoff: Annotated[
        str | None,
        typer.Option(help="Predict from the transactions up to this day, YYYY-MM-DD [default: the last day]"),
    ] = None,
    date_format: DateFormatOpt = None,
    column: ColumnOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Predict every customer's revenue over the next H days with the champion; write them with --out."""
    from clvdrift import pipeline

    settings = _with_engine(get_settings(), engine)
    with _progress("predicting") as progress:
        raw, source = pipeline.predict_input(
            settings.workspace(), data, date_format=date_format, columns=_columns(column)
        )
        result = pipeline.predict(
            raw,
            engines=settings.workspace().engines,
            registry=_registry(settings.database_url),
            models_dir=settings.models_dir,
            source=source,
            cutoff=cutoff,
            out=out_path,
            protected=[
                *([data] if data else []),
                settings.models_dir,
                settings.reference_dir,
                settings.history_dir,
                settings.current_dir,
            ],
            progress=progress,
        ).to_dict()
    _print_findings(result["cleaning"])
    if as_json:
        _print_json(result)
        return
    out.print(
        f"champion {result['model_version']} ({result['family']}): {result['customers']:,} customers, "
        f"features {result['features_from']} … {result['features_to']} (cutoff {result['cutoff']}), "
        f"source {result['source']}",
        highlight=False,
    )
    out.print(
        f"predicted revenue over the next {result['horizon_days']} days: {result['predicted_total']:,.2f} in "
        f"total ({result['total_status']}: {result['season']['reason']})",
        highlight=False,
    )
    out.print(f"written to {result['output']}" if result["output"] else "not written (pass --out PATH)")


def _scenario_table(results: dict[str, dict[str, Any]]) -> Table:
    table = Table(
        title=f"champion {next(iter(results.values()))['model_version']} checked on each drift scenario"
    )
    for name in (
        "scenario",
        "drifted columns",
        "data drift",
        "R² (ref)",
        "MAE (ref)",
        "model drift",
        "retraining",
        "report",
    ):
        table.add_column(name, justify="left" if name in ("scenario", "report") else "right")
    for scenario, r in results.items():
        dd, md = r["data_drift"], r["model_drift"]
        cur, ref = md["current"] or {}, md["reference"]
        table.add_row(
            scenario,
            f"{dd['number_of_drifted_columns']}/{dd['number_of_columns']}",
            "YES" if dd["dataset_drift"] else "no",
            f"{_fmt(cur.get('r2', math.nan))} ({_fmt(ref['r2'])})",
            f"{_fmt(cur.get('mae', math.nan), 0)} ({_fmt(ref['mae'], 0)})",
            "YES" if md["detected"] else "no",
            "YES" if r["decision"]["retraining_required"] else "no",
            str(Path(r["reports"]["json"]).parent),
        )
    return table


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the drift scenarios.")] = SCENARIO_SEED,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Render Evidently HTML reports.")] = True,
) -> None:
    """The main job on the bundled data: train and register, then check every drift scenario."""
    from clvdrift import pipeline

    settings = get_settings()
    out.rule("1. train on the bundled Online Retail data")
    result = _train(settings, None, {}, None, None, {}, None)
    _print_train(result)
    out.rule("2. simulate the drift scenarios and check each against the champion")
    with _progress("checking scenarios") as progress:
        results = pipeline.check_scenarios(
            settings.raw_data, seed=seed, progress=progress, **_detect_kwargs(settings, html)
        )
    out.print(_scenario_table({name: r.to_dict() for name, r in results.items()}))
    out.print(
        "Reference R² and MAE are the champion's held-out figures; current ones are on the batch's customers "
        "the champion did not train on. Details: clvdrift detect, docs/drift.md."
    )
    from clvdrift.pipeline import new_version
    from clvdrift.pipeline.demo import demo_loop

    workspace = settings.reports_dir.parent / "demo_loop" / new_version()
    out.rule(f"3. the monitoring loop, in a workspace of its own ({workspace})")
    with _progress("monitoring loop") as progress:
        steps = demo_loop(
            settings.raw_data,
            workspace,
            seed=seed,
            train_config=settings.train,
            drift_config=settings.drift,
            gate_config=settings.gate,
            progress=progress,
        )
    out.print(_loop_table(steps))
    out.print(
        "Each cycle is a row of that workspace's run history; `clvdrift monitor` runs one on data/current/."
    )


def _loop_table(steps: list[Any]) -> Table:
    table = Table(title="monitoring cycles: new file → history → drift check → decision → retrain → gate")
    for name in (
        "scenario file",
        "file",
        "data drift",
        "model drift",
        "decision",
        "challenger",
        "gate",
        "champion",
    ):
        table.add_column(name)
    for step in steps:
        c = step.cycle
        decision = c.detect.decision if c.detect is not None else None
        table.add_row(
            step.scenario,
            ", ".join(f.status for f in c.new_data.files) or "—",
            _yes_no(decision.data_drift_detected if decision else None),
            _yes_no(decision.model_drift_detected if decision else None),
            c.decision,
            f"{c.challenger.version} {c.challenger.outcome}" if c.challenger else "—",
            c.challenger.reason if c.challenger else "—",
            str(c.champion_version),
        )
    return table


class Mode(str, Enum):
    snapshot = "snapshot"
    append = "append"


@app.command()
def monitor(
    mode: Annotated[
        Mode | None,
        typer.Option(
            help="snapshot: a new file is the whole transaction history; "
            "append: it holds new transactions [default: CLVDRIFT_BATCH_MODE "
            "or snapshot]"
        ),
    ] = None,
    html: Annotated[
        bool, typer.Option("--html/--no-html", help="Render the Evidently HTML reports.")
    ] = False,
    wait: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=86_400,
            help="Seconds to wait while another cycle of the same store runs, then exit 5 "
            "[default: CLVDRIFT_LOOP__LOCK_WAIT_SECONDS or 0]",
        ),
    ] = None,
    fail_on_quarantine: Annotated[
        bool,
        typer.Option("--fail-on-quarantine", help="Exit 6 when a new file was quarantined or unreadable."),
    ] = False,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One monitoring cycle: new files → transaction history → drift check → decision → (retrain → gate
    → promote). Recorded in the run history (clvdrift runs list). One cycle at a time per store: a
    second one exits 5 ("another monitoring cycle is running") unless --wait."""
    from clvdrift.pipeline.cycle import monitor_cycle
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    settings = _with_engine(get_settings(), engine)
    loop = settings.loop if wait is None else settings.loop.model_copy(update={"lock_wait_seconds": wait})
    with _progress("monitoring cycle") as progress:
        result = monitor_cycle(
            settings.workspace(),
            mode=(mode.value if mode else settings.batch_mode),
            trigger="cli",
            train_config=settings.train,
            drift_config=settings.drift,
            gate_config=settings.gate,
            loop_config=loop,
            render_html=html,
            progress=progress,
        )
    metrics = RunStore(connect(settings.database_url)).get(result.run_id).details.get("metrics")
    quarantine_exit = fail_on_quarantine and bool(result.new_data.not_taken_in)
    if as_json:
        _print_json({**result.to_dict(), "metrics": metrics})
        if quarantine_exit:
            raise typer.Exit(EXIT_QUARANTINE)
        return
    for reaped in result.new_data.reaped or []:
        out.print(f"run {reaped} was left running by a process that is gone: recorded as failed")
    for f in result.new_data.files:
        extra = f" ({f.rows_added:,} rows added)" if f.rows_added else f": {f.reason}" if f.reason else ""
        out.print(f"{f.status}: {f.path}{extra}", highlight=False, soft_wrap=True, markup=False)
    if result.detect is not None:
        _drift_tables(result.detect.to_dict())
    if result.challenger is not None:
        c = result.challenger
        out.print(f"challenger {c.version} {c.outcome.upper()}: {c.reason}", highlight=False, soft_wrap=True)
    out.print(
        f"run {result.run_id}: {result.status}, decision {result.decision}, "
        f"champion {result.champion_version}"
    )
    if metrics:
        where = f"{metrics['target']} {metrics['destination']}"
        out.print(
            f"metrics: {metrics['series']} series to {where}"
            if metrics["ok"]
            else f"metrics NOT published to {where}: {metrics['error']}",
            highlight=False,
            soft_wrap=True,
        )
    if quarantine_exit:
        raise typer.Exit(EXIT_QUARANTINE)


def _replay_rows(summaries: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """The README's replay table, a tuple of cells per policy (see :func:`_print_replay_table`)."""
    rows: list[tuple[str, ...]] = []
    for s in summaries:
        rows.append(
            (
                s["policy"],
                f"{s['steps']} ({s['matured_steps']})"
                + (f" {s['failed_steps']} failed" if s["failed_steps"] else ""),
                f"{s['retrains']} ({s['promotions']})"
                + (f" {s['retrain_errors']} errors" if s["retrain_errors"] else ""),
                f"{s['alarms']}: {s['data_drift_alarms']} / {s['model_drift_alarms']}",
                f"{_fmt(s['mean_spearman'])} / {_fmt(s['worst_spearman'])}",
                f"{_fmt(s['mean_mae'], 0)} / {_fmt(s['worst_mae'], 0)}",
                f"{_fmt(s.get('paired_mean_spearman'))} / {_fmt(s.get('paired_mean_mae'), 0)}",
                f"{s['confirmed_alarms']}/{s['judged_alarms']}" if s["judged_alarms"] else "—",
            )
        )
    return rows


REPLAY_COLUMNS = ("policy", "steps", "retrains", "alarms", "Spearman", "MAE", "paired", "precision")
REPLAY_CAPTION = (
    "steps (matured), retrains (promoted), alarms: all, data / model drift; Spearman and MAE realized on "
    "the matured steps, mean / worst; paired: mean Spearman / MAE on the customers no champion of the same "
    "features (all-history or lookback) trained on, the same for each policy of that group; precision: "
    "alarms confirmed by a quality drop / alarms judged"
)


def _print_replay_table(console: Console, summaries: list[dict[str, Any]]) -> None:
    """Per policy, what it did and how good its champions turned out: a table when it fits the
    terminal, else a few lines per policy. No value is ever shortened (policy names differ at their
    ends)."""
    from rich import box

    rows = _replay_rows(summaries)
    title = "replay: retraining policies over the history"
    table = Table(title=title, caption=REPLAY_CAPTION, box=box.SIMPLE_HEAD)
    for i, name in enumerate(REPLAY_COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    if Console(width=10_000).measure(table).maximum <= console.width:  # its natural width fits
        console.print(table)
        return
    console.print(title, highlight=False)
    for s in summaries:
        failed = f", {s['failed_steps']} failed" if s["failed_steps"] else ""
        errors = f", {s['retrain_errors']} retrain errors" if s["retrain_errors"] else ""
        precision = f"{s['confirmed_alarms']}/{s['judged_alarms']}" if s["judged_alarms"] else "—"
        console.print(
            f"  {s['policy']}\n"
            f"    steps {s['steps']} ({s['matured_steps']} matured{failed}), retrains {s['retrains']} "
            f"({s['promotions']} promoted{errors})\n"
            f"    alarms {s['alarms']} ({s['data_drift_alarms']} data drift, {s['model_drift_alarms']} model "
            f"drift), precision {precision}\n"
            f"    Spearman mean {_fmt(s['mean_spearman'])} worst {_fmt(s['worst_spearman'])}, MAE mean "
            f"{_fmt(s['mean_mae'], 0)} worst {_fmt(s['worst_mae'], 0)}; paired: Spearman "
            f"{_fmt(s.get('paired_mean_spearman'))}, MAE {_fmt(s.get('paired_mean_mae'), 0)}",
            highlight=False,
        )


@app.command()
def replay(
    data: DataOpt = None,
    start: Annotated[
        str | None,
        typer.Option(help="First step date, YYYY-MM-DD [default: first day in the data + 2H + 30 days]"),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Last step date, YYYY-MM-DD [default: last day in the data]")
    ] = None,
    step: Annotated[
        str | None, typer.Option("--step", help="Days between step dates, e.g. 14d [default: 7d]")
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            help="never | every:N | on-drift | on-drift-calibrated | on-drift-fdr, each also with -lookback "
            "(repeatable) [default: never, every:4, on-drift, on-drift-lookback]",
        ),
    ] = None,
    lookback_days: Annotated[
        int | None,
        typer.Option(
            "--lookback-days", help="L of the -lookback policies' features [default: H, the horizon]"
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Output folder [default: <reports dir>/replay/<timestamp>]"),
    ] = None,
    date_format: DateFormatOpt = None,
    column: ColumnOpt = None,
    engine: EngineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Backtest retraining policies: the real monitoring cycle at each step date on the transactions
    known then; writes timeline.json and summary.json."""
    from clvdrift.pipeline.common import new_version
    from clvdrift.pipeline.replay import (
        DEFAULT_POLICIES,
        DEFAULT_STEP_DAYS,
        parse_policy,
        parse_step,
        replay_file,
    )

    settings = _with_engine(get_settings(), engine)
    step_days = parse_step(step) if step is not None else DEFAULT_STEP_DAYS
    policies = [parse_policy(p).name for p in (policy or DEFAULT_POLICIES)]
    target = out_dir or settings.reports_dir / "replay" / new_version()
    with _progress_bar("replay") as bar:

        def progress(done: int, total: int, what: str) -> None:
            _exit_if_terminated()  # before each cycle: a dropped SIGTERM stops the replay here
            bar(done, total, what)

        result = replay_file(
            data or settings.raw_data,
            date_format=date_format,
            columns=_columns(column),
            out_dir=target,
            start=start,
            end=end,
            step_days=step_days,
            policies=policies,
            lookback_days=lookback_days,
            train_config=settings.train,
            drift_config=settings.drift,
            gate_config=settings.gate,
            progress=progress,
            engines=settings.workspace().engines,
        )
    if as_json:
        _print_json({k: v for k, v in result.to_dict().items() if k != "steps"})
        return
    _print_replay_table(out, [s.to_dict() for s in result.summaries])
    failed = [s for s in result.steps if s.status == "failed"]
    if failed:
        first = failed[0]
        out.print(
            f"{len(failed)} step(s) could not be checked (status failed in the timeline); the first, "
            f"{first.policy} at {first.date}: {first.error}",
            highlight=False,
            soft_wrap=True,
        )
    if result.skipped_dates:
        out.print(
            f"{len(result.skipped_dates)} step date(s) had no new transaction since the previous one (or "
            "only rows that cleaning removes) and were skipped (they would check the same window again): "
            f"{', '.join(result.skipped_dates[:5])}" + (", …" if len(result.skipped_dates) > 5 else ""),
            highlight=False,
            soft_wrap=True,
        )
    if result.rows_after_last_step:
        out.print(
            f"the {result.rows_after_last_step:,} rows after the last step date {result.dates[-1]} (up to "
            f"{result.end}) are not replayed; "
            "choose --start so that the steps end on the last day to include them",
            highlight=False,
            soft_wrap=True,
        )
    out.print(
        f"{len(result.dates)} steps from {result.dates[0]} to {result.dates[-1]} every "
        f"{result.step_days} days (H = {result.horizon_days}) in {result.seconds:.1f} s; "
        f"timeline {result.timeline_path}, summary {result.summary_path}, chart {result.chart_paths['html']}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("validate-metrics")
def validate_metrics(
    pushgateway: Annotated[
        str | None,
        typer.Option(help="Pushgateway base URL [default: CLVDRIFT_PUSHGATEWAY_URL]"),
    ] = None,
    prometheus: Annotated[
        str | None, typer.Option(help="Also query Prometheus at this base URL, e.g. http://localhost:9090")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Is every clvdrift series at the Pushgateway (and in Prometheus)? Exit 1 when one is missing."""
    from clvdrift.observability.validate import validate

    url = pushgateway or get_settings().pushgateway_url
    if not url:
        raise ConfigError("no Pushgateway: pass --pushgateway URL or set CLVDRIFT_PUSHGATEWAY_URL")
    checks = validate(url, prometheus)
    missing = [c for c in checks if not c.present]
    if as_json:
        _print_json({"checks": checks, "missing": len(missing)})
    else:
        table = Table(title=f"clvdrift series (job clv_drift_monitoring) at {url}")
        for name in ("source", "metric", "present", "series", "value(s)"):
            table.add_column(name)
        for c in checks:
            values = ", ".join(
                ",".join(f"{k}={v}" for k, v in labels.items() if k != "model_version") + f" {value:g}"
                for labels, value in c.samples[:4]
            )
            more = f" … (+{len(c.samples) - 4})" if len(c.samples) > 4 else ""
            table.add_row(c.source, c.metric, _yes_no(c.present), str(len(c.samples)), values.strip() + more)
        out.print(table)
        out.print(f"{len(missing)} of {len(checks)} expected series missing", highlight=False)
    if missing:
        raise typer.Exit(EXIT_DRIFT)


@history_app.command("verify")
def history_verify(as_json: JsonOpt = False) -> None:
    """Check every part of the transaction history (present, its sha256, readable, its row count);
    exit 3 when one is not."""
    from clvdrift.pipeline.history_ops import verify_history

    report = verify_history(get_settings().workspace())
    if as_json:
        _print_json(report.to_dict())
    else:
        table = Table(title="transaction history")
        for name in ("batch", "mode", "rows", "created (UTC)", "current", "source", "problem"):
            table.add_column(name)
        for b in report.batches:
            table.add_row(
                b["batch_id"],
                b["mode"],
                f"{b['rows_added']:,}",
                b["created_at"],
                _yes_no(b["current"]),
                b["source"],
                b["problem"] or "ok",
            )
        out.print(table)
        out.print(
            "history ok"
            if report.ok
            else f"{len(report.problems)} part(s) damaged; repair with `clvdrift history drop BATCH`, "
            "then put the batch's source file back into the current folder to take it in again",
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(EXIT_STORE)


@history_app.command("drop")
def history_drop(
    batch: Annotated[str, typer.Argument(help="The batch id (see `clvdrift history verify`).")],
    as_json: JsonOpt = False,
) -> None:
    """Remove a batch from the history (its part moves to <history>/dropped/) and forget its source file,
    so that file is taken in again when put back; recorded in the run history (kind repair)."""
    from clvdrift.pipeline.history_ops import drop_batch

    result = drop_batch(get_settings().workspace(), batch)
    if as_json:
        _print_json(result.to_dict())
        return
    b = result.batch
    out.print(
        f"dropped batch {b['batch_id']} ({b['rows_added']:,} rows from {b['source']}); run {result.run_id}"
        + ("; its source file is new again" if result.ledger_forgotten else ""),
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


@runs_app.command("list")
def runs_list(
    limit: Annotated[int, typer.Option(min=1, max=1_000_000, help="How many runs, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The monitoring cycles recorded in the store, newest first, and totals counted from them."""
    from clvdrift.store import connect
    from clvdrift.store.runs import RunStore

    store = RunStore(connect(get_settings().database_url))
    runs = store.list(limit=limit)
    if as_json:
        _print_json({"runs": runs, "totals": store.totals()})
        return
    if not runs:
        out.print("no monitoring run recorded yet; run `clvdrift monitor`")
        return
    table = Table(title="runs (monitoring cycles, champion changes, history repairs)")
    for name in (
        "run",
        "kind",
        "trigger",
        "started (UTC)",
        "status",
        "champion",
        "data drift",
        "model drift",
        "decision",
        "challenger",
    ):
        table.add_column(name)
    for r in runs:
        challenger = r.challenger or {}
        table.add_row(
            r.run_id,
            r.kind,
            r.trigger,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.status,
            str(r.champion_version or "—"),
            _yes_no(r.data_drift),
            _yes_no(r.model_drift),
            str(r.decision or "—"),
            f"{challenger.get('version', '')} {challenger.get('outcome', '')}".strip() or "—",
        )
    out.print(table)
    out.print("totals: " + ", ".join(f"{k} {v}" for k, v in store.totals().items()), highlight=False)


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Registered model versions, newest first, with held-out metrics; * marks the champion."""
    from clvdrift.pipeline.champion import list_versions

    versions = list_versions(get_settings().database_url)
    if as_json:
        _print_json([v.to_dict() for v in versions])
        return
    if not versions:
        out.print("no model registered yet; run `clvdrift train`")
        return
    table = Table(title="model versions")
    for name in (
        "",
        "version",
        "created (UTC)",
        "family",
        "target",
        "cutoff",
        "customers",
        "R²",
        "Spearman",
        "Gini",
        "baseline Gini",
        "beats baseline",
    ):
        table.add_column(name)
    for v in versions:
        m, b = v.metrics["model"], v.metrics["baseline"]
        table.add_row(
            "*" if v.is_champion else "",
            v.version,
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            v.family,
            v.target,
            str(v.training.get("cutoff")),
            f"{v.training.get('customers', 0):,}",
            _fmt(m["r2"]),
            _fmt(m["spearman"]),
            _fmt(m["gini_normalized"]),
            _fmt(b["gini_normalized"]),
            "yes" if v.metrics.get("beats_baseline") else "no",
        )
    out.print(table)


@app.command()
def deploy(
    version: Annotated[
        str, typer.Argument(help="The registered version to deploy (clvdrift train --no-promote).")
    ],
    service_url: Annotated[
        str, typer.Option("--service-url", help="The running clvdrift serve, e.g. http://127.0.0.1:8000.")
    ],
    thresholds: ThresholdsOpt,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="An API key of the service [default: CLVDRIFT_API_KEY, the better place: not in ps]",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, max=3600, help="Seconds to wait for the service to serve the version.")
    ] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Deploy VERSION: check its files, the quality thresholds, the champion/challenger gate and the
    service first; then promote it, have the service reload and wait until /ready names it. Nothing
    changes when a check fails; the previous champion is restored when the service does not serve it."""
    from clvdrift.config import QualityThresholds
    from clvdrift.pipeline.deploy import deploy as deploy_version

    settings = get_settings()
    key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    if not key:
        raise ConfigError(
            "clvdrift deploy needs an API key of the service: set CLVDRIFT_API_KEY or pass --api-key"
        )
    result = deploy_version(
        settings.workspace(),
        version,
        service_url=service_url,
        api_key=key,
        thresholds=QualityThresholds.from_file(thresholds),
        gate_config=settings.gate,
        timeout=timeout,
    )
    if as_json:
        _print_json(result)
        return
    was = f"was {result.previous_champion or 'none'}" if result.promoted else "the champion already"
    out.print(
        f"deployed {result.version} ({was}); {result.service_url} serves it after "
        f"{result.seconds_to_serve} s\nquality: {'; '.join(c.describe() for c in result.checks)}\n"
        f"gate: {result.gate}",
        highlight=False,
    )


@app.command()
def migrate(as_json: JsonOpt = False) -> None:
    """Bring the store (CLVDRIFT_DATABASE_URL) to the newest schema and print its revision: what every
    command does when it starts, as a deployment step of its own (the Kubernetes Job, compose's
    clvdrift-migrate)."""
    from clvdrift.store.db import migrate as migrate_store
    from clvdrift.urls import mask_url

    url = get_settings().database_url
    revision = migrate_store(url)
    if as_json:
        _print_json({"database_url": mask_url(url), "revision": revision})
    else:
        out.print(f"store {mask_url(url)} is at schema revision {revision}", highlight=False)


@models_app.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote a version the champion/challenger gate rejected.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make VERSION the champion: the registry first, then its *_latest files and reference_data.csv;
    recorded in the run history (kind promote) and published as metrics."""
    from clvdrift.pipeline.champion import promote

    change = promote(get_settings().workspace(), version, force=force)
    if as_json:
        _print_json(change)
    elif not change.changed:
        out.print(f"version {change.to_version} is the champion already; nothing changed", highlight=False)
    else:
        forced = f" (forced over the gate: {change.gate_reason})" if change.forced else ""
        out.print(
            f"version {change.to_version} is the champion (was {change.from_version or 'none'}){forced}",
            highlight=False,
        )


ThresholdsOpt = Annotated[
    Path,
    typer.Option(
        "--thresholds",
        help="TOML file of the quality thresholds (the repository keeps deploy/model_thresholds.toml).",
    ),
]


@models_app.command("check")
def models_check(
    version: Annotated[str, typer.Argument(help="The registered version to check.")],
    thresholds: ThresholdsOpt,
    as_json: JsonOpt = False,
) -> None:
    """Check VERSION's time-split evaluation against the quality thresholds: exit 7 naming every metric
    below its limit (CI's model quality gate; clvdrift deploy checks the same)."""
    from clvdrift.config import QualityThresholds
    from clvdrift.pipeline.champion import get_version
    from clvdrift.pipeline.deploy import require_quality

    limits = QualityThresholds.from_file(thresholds)
    checks = require_quality(get_version(get_settings().database_url, version), limits)
    if as_json:
        _print_json({"version": version, "passed": True, "checks": [c.to_dict() for c in checks]})
        return
    out.print(f"version {version} meets the quality thresholds: " + "; ".join(c.describe() for c in checks))


@models_app.command("rollback")
def models_rollback(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="The version to restore: any version that was champion before "
            "[default: the champion before the current one, skipping versions rolled back already]",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Take the champion off and restore the previous one (walking back the promotion history), its files
    published; recorded in the run history (kind rollback) and published as metrics."""
    from clvdrift.pipeline.champion import rollback

    change = rollback(get_settings().workspace(), to=to)
    if as_json:
        _print_json(change)
        return
    out.print(
        f"rolled back: version {change.to_version} is the champion again (was {change.from_version})",
        highlight=False,
    )


@models_app.command("gc")
def models_gc(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the files, remove nothing.")] = False,
) -> None:
    """Remove artifact files of versions that are not in the registry, and temporary files of killed runs."""
    from clvdrift.pipeline.champion import collect_garbage

    removed = collect_garbage(get_settings().workspace(), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb} {len(removed)} file(s)" + "".join(f"\n  {p}" for p in removed), highlight=False)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind [default: CLVDRIFT_SERVICE__HOST or 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="Port [default: CLVDRIFT_SERVICE__PORT or 8000]"),
    ] = None,
) -> None:
    """The HTTP API (FastAPI on uvicorn): ingestion, prediction, online drift, registry, runs, metrics.
    Every endpoint but /health, /ready and /metrics needs an API key (clvdrift apikey create)."""
    import uvicorn

    from clvdrift.service.app import create_app

    settings = get_settings()
    config = settings.service
    application = create_app(settings.workspace(), config)
    uvicorn.run(
        application,
        host=host or config.host,
        port=port or config.port,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Run one round and exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The drift monitor and retraining worker: checks logged predictions and newly ingested history with
    the cycle's rules, and runs queued retrain jobs (each exactly once, whatever the number of workers),
    every CLVDRIFT_SERVICE__WORKER_INTERVAL_SECONDS."""
    from clvdrift.worker import run_worker

    rounds = run_worker(get_settings(), once=once)
    for done in rounds:
        if as_json:
            _print_json(done)
        else:
            job = done.job or {}
            out.print(
                f"drift event {done.drift_event or '—'} ({done.drift_severity or 'no new predictions'}); "
                f"cycle {(done.cycle or {}).get('run_id', '—')}; "
                f"job {job.get('job_id', '—')} {job.get('status', '')}".rstrip(),
                highlight=False,
            )


@apikey_app.command("create")
def apikey_create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key, e.g. marketing-app.")],
    as_json: JsonOpt = False,
) -> None:
    """Create an API key; it is shown once (only its sha256 is stored)."""
    from clvdrift.store import connect
    from clvdrift.store.apikeys import ApiKeys

    key, text = ApiKeys(connect(get_settings().database_url)).create(name)
    if as_json:
        _print_json({**key.to_dict(), "key": text})
        return
    out.print(f"API key {key.key_id} ({key.name}); shown once, keep it secret:", highlight=False)
    out.print(text, highlight=False, soft_wrap=True)


@apikey_app.command("list")
def apikey_list(as_json: JsonOpt = False) -> None:
    """The API keys (never their secrets)."""
    from clvdrift.store import connect
    from clvdrift.store.apikeys import ApiKeys

    keys = ApiKeys(connect(get_settings().database_url)).list()
    if as_json:
        _print_json([k.to_dict() for k in keys])
        return
    if not keys:
        out.print("no API key yet; create one with `clvdrift apikey create NAME`")
        return
    table = Table(title="API keys")
    for name in ("key id", "name", "created (UTC)", "revoked (UTC)"):
        table.add_column(name)
    for k in keys:
        revoked = k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "—"
        table.add_row(k.key_id, k.name, k.created_at.strftime("%Y-%m-%d %H:%M:%S"), revoked)
    out.print(table)


@apikey_app.command("revoke")
def apikey_revoke(key_id: Annotated[str, typer.Argument(help="The key id (clvdrift apikey list).")]) -> None:
    """Revoke an API key (the service refuses it within 5 seconds)."""
    from clvdrift.store import connect
    from clvdrift.store.apikeys import ApiKeys

    key = ApiKeys(connect(get_settings().database_url)).revoke(key_id)
    out.print(f"API key {key.key_id} ({key.name}) revoked", highlight=False)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":  # pragma: no cover
    main()
