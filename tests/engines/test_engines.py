"""Every engine gives the pandas engine's cleaning report, customers, features, targets and baselines:
integers exactly, floats bit for bit (one division per value, by the same numpy code).

The Dask engine runs on a real ``LocalCluster`` of two worker processes, started and closed here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clvdrift.data import TransactionHistory, load_transactions, schema
from clvdrift.data.clean import _dense_bounds, clean_transactions
from clvdrift.data.synthetic import retail_rows
from clvdrift.drift import build_profile
from clvdrift.engines import AUTO_DUCKDB_ROWS, ENGINES, Source, choose_engine, open_lines
from clvdrift.errors import ConfigError, DataError, HistoryIntegrityError
from clvdrift.features import (
    build_training_set,
    customer_features,
    revenue,
    stacked_cutoffs,
    stacked_training_set,
)
from clvdrift.store import connect

TODAY = pd.Timestamp("2026-01-01")
OTHERS = ("duckdb", "dask")
COLUMNS = {"numerical_columns": ["Recency", "Monetary", "Revenue90d"], "categorical_columns": ["Country"]}


def computed(source: Source, engine: str, scheduler: str, cutoffs: list[str]) -> dict[object, object]:
    """Everything the features module computes, from one engine."""
    out: dict[object, object] = {}
    with open_lines(source, engine=engine, today=TODAY, dask_scheduler=scheduler) as opened:
        assert opened.engine == engine
        lines = opened.lines
        out["report"] = opened.cleaning
        out["days"] = (lines.first_day(), lines.last_day())
        for cut in cutoffs:
            for lookback in (None, 60):
                ts = build_training_set(lines, cutoff=cut, lookback_days=lookback, require_labels=False)
                out[cut, lookback] = (ts.features, ts.target, ts.baseline)
            formula = build_training_set(lines, cutoff=cut, target="formula")
            out[cut, "formula"] = (formula.features, formula.target)
        first = pd.Timestamp(cutoffs[-1])
        cuts = stacked_cutoffs(first, lines.first_day(), step_days=30, min_history_days=30, max_cutoffs=4)
        stacked = stacked_training_set(lines, cuts, horizon_days=45)
        out["stacked"] = (stacked.features, stacked.target)
        snap = pd.Timestamp(cutoffs[0]) + pd.Timedelta(days=1)
        out["rfm"] = customer_features(lines, snap, lookback_days=30)
        out["revenue"] = revenue(lines, None, snap)
        ids = pd.Index([*out["rfm"].index[:5], "not-a-customer"])  # type: ignore[union-attr]
        out["revenue_of"] = lines.revenue(pd.Timestamp(cutoffs[0]), snap + pd.Timedelta(days=90), ids)
    return out


def assert_same(reference: dict[object, object], other: dict[object, object], engine: str) -> None:
    assert other.keys() == reference.keys()
    for key, expected in reference.items():
        got = other[key]
        values = expected if isinstance(expected, tuple) and key != "days" else (expected,)
        gots = got if isinstance(got, tuple) and key != "days" else (got,)
        for e, g in zip(values, gots, strict=True):
            if isinstance(e, pd.DataFrame):
                pd.testing.assert_frame_equal(g, e, check_exact=True, obj=f"{engine} {key}")
            elif isinstance(e, pd.Series):
                pd.testing.assert_series_equal(g, e, check_exact=True, obj=f"{engine} {key}")
            elif isinstance(e, np.ndarray):
                np.testing.assert_array_equal(g, e)
            else:
                assert g == e, (engine, key)


def test_engines_agree_on_the_bundled_file(bundled: Path, scheduler: str) -> None:
    source = Source.of_frame(load_transactions(bundled))
    cutoffs = ["2011-09-09", "2011-06-10"]
    reference = computed(source, "pandas", scheduler, cutoffs)
    for engine in OTHERS:
        assert_same(reference, computed(source, engine, scheduler, cutoffs), engine)
    features = reference["2011-09-09", None][0]  # type: ignore[index]
    assert len(features) > 3000  # type: ignore[arg-type]


@pytest.fixture
def nasty_history(tmp_path: Path) -> TransactionHistory:
    """A history of four parts: two periods of generated rows (with every nasty case), a part of a
    single row, and a part that repeats some rows of the first (dropped as already stored)."""
    history = TransactionHistory(tmp_path / "history", connect(f"sqlite:///{tmp_path / 'store.db'}"))
    first = retail_rows(6_000, seed=3, start="2011-01-03", days=200, customers=300, nasty=True)
    second = retail_rows(5_000, seed=4, start="2011-07-22", days=200, customers=300, first_invoice=700_000)
    history.add(first, source="first.csv", sha256="a" * 64, mode="snapshot")
    history.add(second, source="second.csv", sha256="b" * 64, mode="append")
    single = second.iloc[[10]].assign(**{schema.INVOICE_DATE: pd.Timestamp("2011-12-31 23:59:59")})
    history.add(single, source="single.csv", sha256="c" * 64, mode="append")
    history.add(first.iloc[:50], source="again.csv", sha256="d" * 64, mode="append")
    return history


def test_engines_agree_on_a_nasty_history(nasty_history: TransactionHistory, scheduler: str) -> None:
    parts = nasty_history.parts()
    assert len(parts) == 3  # the repeated rows added nothing
    source = Source.of_parts(parts, name="history")
    cutoffs = ["2011-11-01", "2011-08-15"]
    reference = computed(source, "pandas", scheduler, cutoffs)
    report = reference["report"]
    assert report.removed["date_outlier"] == 1 and report.findings  # type: ignore[attr-defined]
    for rule in ("cancelled_order", "cancellation", "missing_value", "non_positive_price", "exact_duplicate"):
        assert report.removed[rule] > 0, rule  # type: ignore[attr-defined]
    for engine in OTHERS:
        assert_same(reference, computed(source, engine, scheduler, cutoffs), engine)
    # the same with rows up to a day (numbered after the filter, as history.read(as_of=...) does)
    dated = Source.of_parts(parts, name="history", as_of=pd.Timestamp("2011-10-31"))
    reference = computed(dated, "pandas", scheduler, ["2011-09-30"])
    pd.testing.assert_frame_equal(
        reference["2011-09-30", None][0],  # type: ignore[index]
        build_training_set(
            load_clean(nasty_history, "2011-10-31"), cutoff="2011-09-30", require_labels=False
        ).features,
    )
    for engine in OTHERS:
        assert_same(reference, computed(dated, engine, scheduler, ["2011-09-30"]), engine)


def load_clean(history: TransactionHistory, as_of: str) -> pd.DataFrame:
    from clvdrift.data import clean_transactions

    return clean_transactions(history.read(as_of=pd.Timestamp(as_of)), today=TODAY)[0]


def test_profiles_agree(bundled: Path, scheduler: str) -> None:
    """Profiles are built from the features, which are equal; the profile built per customer bucket
    and merged equals the one built at once (what a cluster does)."""
    source = Source.of_frame(load_transactions(bundled))
    profiles = {}
    for engine in ("pandas", *OTHERS):
        with open_lines(source, engine=engine, today=TODAY, dask_scheduler=scheduler) as opened:
            features = build_training_set(opened.lines, cutoff="2011-09-09").features
            profiles[engine] = build_profile(features, **COLUMNS)
    for engine in OTHERS:
        assert profiles[engine].to_dict() == profiles["pandas"].to_dict()
    halves = [features.iloc[::2], features.iloc[1::2]]
    parts = [build_profile(h, **COLUMNS) for h in halves]
    assert parts[0].merge(parts[1]).equals(profiles["pandas"])


@pytest.mark.parametrize("engine", ["pandas", *OTHERS])
def test_the_same_one_line_errors(engine: str, scheduler: str) -> None:
    frame = retail_rows(2_000, seed=5)
    frame[schema.QUANTITY] = frame[schema.QUANTITY].astype(np.float64)
    bad = frame.copy()
    bad.loc[[7, 1500], schema.UNIT_PRICE] = 5e9
    with pytest.raises(DataError) as caught:
        open_lines(Source.of_frame(bad), engine=engine, today=TODAY, dask_scheduler=scheduler)
    assert str(caught.value) == (
        "synthetic transactions: column UnitPrice has values beyond ±1e+09 (the bound that keeps money sums "
        "exact): 2 bad value(s), e.g. row 8: 5e+09, row 1501: 5e+09"
    )
    gone = frame.assign(**{schema.INVOICE_DATE: pd.Timestamp("2099-01-01")})
    gone[schema.CUSTOMER] = gone[schema.CUSTOMER].cat.add_categories(["x"])
    with pytest.raises(DataError, match="no usable transactions: the cleaning rules remove all") as caught:
        open_lines(Source.of_frame(gone), engine=engine, today=TODAY, dask_scheduler=scheduler)
    if engine == "pandas":
        test_the_same_one_line_errors.pandas_message = str(caught.value)  # type: ignore[attr-defined]
    else:
        assert str(caught.value) == test_the_same_one_line_errors.pandas_message  # type: ignore[attr-defined]


def test_dask_starts_and_closes_its_own_local_cluster() -> None:
    """No scheduler given: a LocalCluster of two workers on 127.0.0.1, closed with the lines."""
    source = Source.of_frame(retail_rows(3_000, seed=6))
    with open_lines(source, engine="dask", today=TODAY) as opened:
        client = opened.lines.client  # type: ignore[attr-defined]
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and all(w.startswith("tcp://127.0.0.1:") for w in workers)
        expected = open_lines(source, engine="pandas", today=TODAY)
        assert opened.cleaning == expected.cleaning
    assert client.status == "closed"


def test_auto_picks_by_size_and_says_why() -> None:
    assert choose_engine("auto", AUTO_DUCKDB_ROWS - 1)[0] == "pandas"
    name, why = choose_engine("auto", AUTO_DUCKDB_ROWS)
    assert name == "duckdb" and "auto" in why
    assert choose_engine("dask", 10) == ("dask", "chosen")
    expected = "unknown engine 'spark'; expected one of auto, pandas, duckdb, dask"
    with pytest.raises(ConfigError, match=expected):
        choose_engine("spark", 10)


def _dense_bounds_rowwise(values: np.ndarray) -> tuple[int, int]:
    """The date rule as it was first written, on every row's date: the reference for the counts version."""
    from clvdrift.data import clean

    n = len(values)
    lowest, highest = np.iinfo(np.int64).min + 1, np.iinfo(np.int64).max
    if n < 3:
        return lowest, highest
    k = min(max(1, int(n * clean.DATE_OUTLIER_TAIL_SHARE)), n - 2)
    span = values[int(0.99 * (n - 1))] - values[int(np.ceil(0.01 * (n - 1)))]
    min_gap = max(clean.DATE_OUTLIER_MIN_GAP_DAYS * 86_400 * 10**9, clean.DATE_OUTLIER_SPAN_SHARE * span)
    top = np.diff(values[n - k - 1 :])
    low_gaps = np.diff(values[: k + 1])
    if top.max() > min_gap:
        highest = int(values[n - k - 1 + int(np.argmax(top))])
    if low_gaps.max() > min_gap:
        lowest = int(values[int(np.argmax(low_gaps)) + 1])
    return lowest, highest


def test_date_bounds_from_counts_equal_the_rowwise_rule() -> None:
    rng = np.random.default_rng(0)
    day = 86_400 * 10**9
    for trial in range(400):
        n = int(rng.integers(1, 400))
        dense = rng.integers(0, int(rng.integers(1, 200)), n) * day // int(rng.choice([1, 24, 1440]))
        tails = rng.integers(-3, 4, int(rng.integers(0, 6))) * int(rng.integers(1, 400)) * day
        values = np.sort(np.concatenate([dense, dense[: len(tails)] + tails]).astype(np.int64))
        distinct, counts = np.unique(values, return_counts=True)
        assert _dense_bounds(distinct, counts) == _dense_bounds_rowwise(values), trial


def test_a_part_whose_path_looks_like_a_glob_is_read_as_that_one_file(tmp_path: Path) -> None:
    """DuckDB expands * ? [ { in a path: the engine reads such a part through a link, not its neighbours."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = retail_rows(300, seed=8)
    frame[schema.QUANTITY] = frame[schema.QUANTITY].astype(np.float64)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in ("dir*x", "dirZZx", "d[1]", "d{a,b}"):
        (tmp_path / name).mkdir()
        pq.write_table(table, tmp_path / name / "part.parquet")
    for name in ("dir*x", "d[1]", "d{a,b}"):
        source = Source.of_parts([tmp_path / name / "part.parquet"], name=name)
        with open_lines(source, engine="duckdb", today=TODAY) as opened:
            assert opened.cleaning.rows_in == len(frame), name
            expected = open_lines(source, engine="pandas", today=TODAY).cleaning
            assert opened.cleaning == expected


def test_text_an_engine_cannot_take_is_one_line() -> None:
    """A lone surrogate (not UTF-8) in DuckDB, or ids equal as text (1 and "1") in any engine: a DataError,
    not a traceback."""
    frame = retail_rows(200, seed=9)
    frame[schema.QUANTITY] = frame[schema.QUANTITY].astype(np.float64)
    odd = frame.copy()
    odd[schema.STOCK_CODE] = odd[schema.STOCK_CODE].cat.rename_categories(
        {odd[schema.STOCK_CODE].cat.categories[0]: "S\ud800"}
    )
    with pytest.raises(DataError, match=r"the DuckDB engine cannot read these rows: .*surrogate"):
        open_lines(Source.of_frame(odd), engine="duckdb", today=TODAY)
    mixed = frame.copy()
    ids = mixed[schema.CUSTOMER].astype(object).to_numpy()
    ids[0], ids[1] = 1, "1"
    mixed[schema.CUSTOMER] = pd.Categorical(ids)
    for engine in ENGINES:  # every engine, as the pandas cleaning (it counted two customers "1")
        with pytest.raises(DataError, match=r"column CustomerID holds 1 and '1', which are the same as text"):
            open_lines(Source.of_frame(mixed), engine=engine, today=TODAY)
    with pytest.raises(DataError, match=r"column CustomerID holds 1 and '1'"):
        clean_transactions(mixed, today=TODAY)
    numeric = frame.copy()  # ids of one type, numbers: accepted, one customer each
    numeric[schema.CUSTOMER] = pd.Categorical(np.arange(len(frame)) % 7)
    with open_lines(Source.of_frame(numeric), engine="pandas", today=TODAY) as opened:
        assert opened.cleaning.customers_out <= 7


@pytest.mark.parametrize("engine", ["pandas", *OTHERS])
def test_a_part_that_cannot_be_read_is_a_history_integrity_error(
    engine: str, scheduler: str, tmp_path: Path
) -> None:
    """A part gone, cut short (no footer) or corrupt inside (a page that does not decompress): the
    history's one-line HistoryIntegrityError naming the part, from every engine (DuckDB raised its own
    IOException or a pyarrow error before; Dask also logged its worker's traceback)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = retail_rows(3_000, seed=12)
    frame[schema.QUANTITY] = frame[schema.QUANTITY].astype(np.float64)
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), whole, compression="snappy")
    data = whole.read_bytes()
    (tmp_path / "short.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.parquet").write_bytes(data[:200] + b"\xff" * 3_000 + data[3_200:])
    (tmp_path / "footer.parquet").write_bytes(data[:-8] + b"\0\0\0\0PAR1")  # pyarrow's text ends in \n
    cases = {
        "gone.parquet": r"cannot read the history's part .*gone\.parquet \(",
        "short.parquet": r"cannot read the history's part .*short\.parquet \(",
        "corrupt.parquet": r"cannot read the history's part .*corrupt\.parquet \(",
        "footer.parquet": r"cannot read the history's part .*footer\.parquet \(.*\)$",
    }
    for name, message in cases.items():
        source = Source.of_parts([whole, tmp_path / name], name="history")
        with pytest.raises(HistoryIntegrityError, match=message) as caught:
            open_lines(source, engine=engine, today=TODAY, dask_scheduler=scheduler)
        assert "\n" not in str(caught.value), name
    with open_lines(Source.of_parts([whole], name="history"), engine=engine, dask_scheduler=scheduler) as ok:
        assert ok.cleaning.rows_in == len(frame)


def _with_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every 37th row repeated later (exact duplicates) and every 41st repeated with
    another Description (not a duplicate), as categoricals again."""
    twins = frame.iloc[::37]
    near = frame.iloc[::41].assign(**{schema.DESCRIPTION: "ANOTHER TEXT"})
    out = pd.concat([frame, twins, near], ignore_index=True)
    for name in (schema.INVOICE, schema.STOCK_CODE, schema.DESCRIPTION, schema.CUSTOMER, schema.COUNTRY):
        out[name] = out[name].astype(object).astype("category")
    out.attrs = dict(frame.attrs)
    return out


@pytest.mark.parametrize("shape", ["whole quantities", "fractional quantities, large prices"])
def test_duckdb_narrow_types_and_duplicate_passes_equal_pandas(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB stores Quantity as INTEGER and UnitPrice thousandths as INTEGER when every value allows it,
    DOUBLE and BIGINT otherwise, and finds duplicates in one pass per DUPLICATE_PASS_ROWS rows: each way
    gives pandas' results exactly (here 7 passes)."""
    import duckdb

    from clvdrift.engines import duckdb as engine

    frame = retail_rows(3_000, seed=21)
    frame[schema.QUANTITY] = frame[schema.QUANTITY].astype(np.float64)
    expected = {"row": "UINTEGER", "quantity": "INTEGER", "price": "INTEGER"}
    if shape != "whole quantities":
        rows = frame.index[::5]
        frame.loc[rows, schema.QUANTITY] = frame.loc[rows, schema.QUANTITY] + 0.5  # cancellations too
        frame.loc[frame.index[::11], schema.UNIT_PRICE] = 3_000_000.125  # × 1000 is past 2**31
        expected = {"row": "UINTEGER", "quantity": "DOUBLE", "price": "BIGINT"}
    frame = _with_duplicates(frame)
    con = duckdb.connect()
    con.register("raw_frame", frame.assign(_row=np.arange(len(frame)), q=frame[schema.QUANTITY]))
    con.execute(f'CREATE VIEW raw AS SELECT _row, q, "{schema.UNIT_PRICE}" AS p FROM raw_frame')
    narrow = engine._Narrow.of(con)
    assert {k: getattr(narrow, k) for k in expected} == expected
    monkeypatch.setattr(engine, "DUPLICATE_PASS_ROWS", 500)
    source = Source.of_frame(frame)
    cutoffs = ["2011-09-01", "2011-06-01"]
    reference = computed(source, "pandas", "", cutoffs)
    assert reference["report"].removed["exact_duplicate"] >= len(frame.iloc[:3_000:37]) // 2  # type: ignore[union-attr]
    assert_same(reference, computed(source, "duckdb", "", cutoffs), "duckdb")


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_part_with_other_columns_is_a_history_integrity_error(engine: str, tmp_path: Path) -> None:
    """A Parquet part whose columns are not the history's (one missing or misspelt, ids as numbers, dates
    as text, a decimal price) was read differently by pandas and DuckDB (nulls in one, the column in the
    other; a BinderException traceback): now each says which part and column, before reading a row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = retail_rows(500, seed=13)
    frame[schema.QUANTITY] = frame[schema.QUANTITY].astype(np.float64)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    position = table.schema.get_field_index
    odd = {
        "has no column Quantity": table.drop_columns([schema.QUANTITY]),
        "has no column Quantity,": table.rename_columns(
            [c if c != schema.QUANTITY else "quantity" for c in table.column_names]
        ),
        "has column CustomerID of type int64": table.set_column(
            position(schema.CUSTOMER), schema.CUSTOMER, pa.array(np.arange(len(frame)))
        ),
        "has column InvoiceDate of type string": table.set_column(
            position(schema.INVOICE_DATE),
            schema.INVOICE_DATE,
            pa.array(frame[schema.INVOICE_DATE].astype(str).to_numpy(dtype=object)),
        ),
        "has column UnitPrice of type decimal128": table.set_column(
            position(schema.UNIT_PRICE),
            schema.UNIT_PRICE,
            table.column(schema.UNIT_PRICE).cast(pa.decimal128(12, 3)),
        ),
    }
    whole = tmp_path / "whole.parquet"
    pq.write_table(table, whole)
    for number, (problem, part) in enumerate(odd.items()):
        path = tmp_path / f"odd-{number}.parquet"
        pq.write_table(part, path)
        with pytest.raises(HistoryIntegrityError, match=rf"part .*odd-{number}\.parquet: it {problem}"):
            open_lines(Source.of_parts([whole, path], name="history"), engine=engine, today=TODAY)
    with open_lines(Source.of_parts([whole], name="history"), engine=engine, today=TODAY) as opened:
        assert opened.cleaning.rows_in == len(frame)


def _recoded(frame: pd.DataFrame, name: str, values: list[object]) -> pd.DataFrame:
    out = frame.copy()
    codes = np.arange(len(out)) % len(values)
    out[name] = pd.Categorical.from_codes(codes, categories=pd.Index(values, dtype=object))
    return out


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("bool ids", r"column CustomerID holds False \(bool\), not text"),
        ("float32 ids", r"column CustomerID holds 1000000\.0 \(float\), not text"),
        ("object ids", r"column CustomerID is object, not categorical text"),
        ("Description 1 and '1'", r"column Description holds '1' and 1, which are the same as text"),
        ("timestamp stock codes", r"column StockCode holds Timestamp\('2011-01-01 00:00:00'\) \(Timestamp\)"),
    ],
)
def test_text_columns_the_engines_would_read_apart_are_refused_alike(case: str, message: str) -> None:
    """pandas and DuckDB spell non-text values differently (False / false, 1e+06 / 1000000.0) or compare
    them differently (1 and "1"): every engine refuses such a frame with the same line before it starts."""
    frame = retail_rows(200, seed=14)
    frame[schema.QUANTITY] = frame[schema.QUANTITY].astype(np.float64)
    if case == "bool ids":
        odd = _recoded(frame, schema.CUSTOMER, [False, True])
    elif case == "float32 ids":
        odd = frame.copy()
        odd[schema.CUSTOMER] = pd.Categorical(
            np.where(np.arange(len(frame)) % 2, 1e6, 2e6).astype(np.float32)
        )
    elif case == "object ids":
        odd = frame.assign(**{schema.CUSTOMER: frame[schema.CUSTOMER].astype(object)})
    elif case == "Description 1 and '1'":
        odd = frame.assign(**{schema.DESCRIPTION: [1 if i % 2 else "1" for i in range(len(frame))]})
    else:
        odd = _recoded(frame, schema.STOCK_CODE, [pd.Timestamp("2011-01-01"), pd.Timestamp("2011-01-02")])
    for engine in ENGINES:
        with pytest.raises(DataError, match=message):
            open_lines(Source.of_frame(odd), engine=engine, today=TODAY)
    ok = frame.copy()  # int64 and float64 ids are spelt alike by every engine: accepted
    ok[schema.CUSTOMER] = pd.Categorical(np.arange(len(frame)) % 9 * 1.5)
    with open_lines(Source.of_frame(ok), engine="duckdb", today=TODAY) as opened:
        assert opened.cleaning.customers_out <= 9
