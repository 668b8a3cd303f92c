"""The synthetic generator: reproducible, contract-true outside the manifest, calibrated."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from risk.data.contract import GRADE_LEVELS, TABLES, term_start, term_window
from risk.data.ids import valid_student_id_mask
from risk.data.synth import SynthConfig, SynthReport, generate
from risk.data.synth.mess import short_be_year

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "synth.yaml"
ARROW_TYPES = {"id": pa.string(), "text": pa.string(), "term": pa.string(), "date": pa.date32(),
               "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}  # fmt: skip


@pytest.fixture(scope="module")
def config() -> SynthConfig:
    return SynthConfig.from_yaml(CONFIG)


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory, config: SynthConfig) -> tuple[Path, SynthReport]:
    out = tmp_path_factory.mktemp("messy")
    return out, generate(out, students=3000, terms=4, seed=11, config=config, progress=False)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, config: SynthConfig) -> tuple[Path, SynthReport]:
    out = tmp_path_factory.mktemp("clean")
    return out, generate(out, students=20_000, terms=4, seed=5, config=config.clean(), progress=False)


def _hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != "synth_report.json"}


def read_table(out: Path, table: str) -> pd.DataFrame:
    """All part files of a table, with ``_file`` and ``_row`` (data row within the file)."""
    frames = []
    for path in sorted((out / table).glob("part-*")):
        if path.suffix == ".csv":
            types = {c.name: ARROW_TYPES[c.kind] for c in TABLES[table].columns}
            data = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types=types, strings_can_be_null=True)).to_pandas()
        else:
            data = pq.read_table(path).to_pandas()
        data["_file"] = str(path.relative_to(out))
        data["_row"] = np.arange(len(data))
        frames.append(data)
    return pd.concat(frames, ignore_index=True)


def manifest_mask(frame: pd.DataFrame, manifest: pd.DataFrame, table: str) -> np.ndarray:
    bad = manifest[manifest["table"] == table]
    key = frame["_file"] + ":" + frame["_row"].astype(str)
    return key.isin(bad["file"] + ":" + bad["row"].astype(str)).to_numpy()


# --- reproducibility ------------------------------------------------------------------------


def test_same_seed_gives_identical_files(tmp_path: Path, config: SynthConfig) -> None:
    a = generate(tmp_path / "a", students=1500, terms=3, seed=3, config=config, progress=False)
    b = generate(tmp_path / "b", students=1500, terms=3, seed=3, config=config, progress=False)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    assert a.rows == b.rows and a.injected == b.injected


def test_different_seed_gives_different_files(tmp_path: Path, config: SynthConfig) -> None:
    generate(tmp_path / "a", students=1500, terms=3, seed=3, config=config, progress=False)
    generate(tmp_path / "b", students=1500, terms=3, seed=4, config=config, progress=False)
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.startswith(("enrollments", "attendance_daily", "truth")))


def test_chunks_are_independent_of_chunk_count_of_other_runs(tmp_path: Path, config: SynthConfig) -> None:
    """Two chunks: each part file exists and the report counts two chunks."""
    small = config.model_copy(update={"chunk_size": 800})
    report = generate(tmp_path, students=1500, terms=2, seed=3, config=small, progress=False)
    assert report.chunks == 2
    assert sorted(p.name for p in (tmp_path / "attendance_daily").iterdir()) == ["part-00000.parquet",
                                                                              "part-00001.parquet"]


# --- layout and contract ------------------------------------------------------------------------


def test_every_table_has_the_contract_columns_and_types(messy: tuple[Path, SynthReport], config: SynthConfig) -> None:
    out, _ = messy
    for name, table in TABLES.items():
        parts = sorted((out / name).glob("part-*"))
        assert parts, name
        csv = name in config.csv_tables
        assert all(p.suffix == (".csv" if csv else ".parquet") for p in parts)
        if csv:
            header = parts[0].read_text(encoding="utf-8").splitlines()[0]
            assert header.replace('"', "").split(",") == list(table.column_names)
        else:
            schema = pq.read_schema(parts[0])
            assert schema.names == list(table.column_names)
            for column in table.columns:
                assert schema.field(column.name).type == ARROW_TYPES[column.kind], (name, column.name)


def test_report_is_written_and_counts_rows(messy: tuple[Path, SynthReport]) -> None:
    out, report = messy
    assert SynthReport.model_validate_json((out / "synth_report.json").read_text()) == report
    assert report.rows["attendance_daily"] == pq.ParquetFile(
        out / "attendance_daily/part-00000.parquet").metadata.num_rows
    assert report.summary_lines() and all(isinstance(x, str) for x in report.summary_lines())


def test_reported_error_counts_match_the_manifest(messy: tuple[Path, SynthReport]) -> None:
    out, report = messy
    manifest = pd.read_parquet(out / "_injected.parquet")
    counts = manifest.groupby(["table", "kind"]).size()
    for (table, kind), n in counts.items():
        assert report.injected[table][kind] == n
    for table, rows in report.rows.items():
        share = (manifest["table"] == table).sum() / rows
        assert share == pytest.approx(report.injected_share[table], abs=1e-5)
    big = ("attendance_daily", "grades", "health", "assistance")
    assert all(0.003 < report.injected_share[t] < 0.007 for t in big)
    assert not manifest.duplicated(["file", "row"]).any(), "a row carries one fault only"


def test_clean_switch_injects_nothing(clean: tuple[Path, SynthReport]) -> None:
    out, report = clean
    assert pd.read_parquet(out / "_injected.parquet").empty
    assert report.clean and all(not v for v in report.injected.values())


def test_injected_rows_are_really_broken(messy: tuple[Path, SynthReport]) -> None:
    out, _ = messy
    manifest = pd.read_parquet(out / "_injected.parquet")
    att = read_table(out, "attendance_daily")
    bad = manifest_mask(att, manifest, "attendance_daily")
    kinds = manifest[manifest.table == "attendance_daily"].rename(columns={"file": "_file", "row": "_row"})
    att_kind = att[["_file", "_row"]].merge(kinds[["_file", "_row", "kind"]], how="left")["kind"]
    ids = att["student_id"].to_numpy()
    invalid = (att_kind == "invalid_id").to_numpy()
    assert invalid.any() and not valid_student_id_mask(ids[invalid]).any()
    weekend = (att_kind == "not_a_school_day").to_numpy()
    assert weekend.any() and (pd.to_datetime(att.loc[weekend, "date"]).dt.day_of_week >= 5).all()
    short_year = (att_kind == "bad_date").to_numpy()
    assert short_year.any() and (pd.to_datetime(att.loc[short_year, "date"]).dt.year.between(1960, 1975)).all()
    dup = (att_kind == "duplicate").to_numpy()
    cols = list(TABLES["attendance_daily"].column_names)
    originals = att.loc[~bad, cols].drop_duplicates()
    copies = att.loc[dup, cols].merge(originals, how="left", indicator=True)
    assert dup.any() and (copies["_merge"] == "both").all()


def _window(out: Path) -> tuple[dt.date, dt.date]:
    cal = read_table(out, "calendar")
    # Injected bad dates are two-digit Buddhist-Era years read as 19xx: not days of the calendar.
    ok = cal["date"].notna() & (pd.to_datetime(cal["date"]).dt.year >= 1990)
    days = pd.to_datetime(cal.loc[ok, "date"])
    return (days.min() - pd.Timedelta(days=365)).date(), (days.max() + pd.Timedelta(days=183)).date()


def _violations(frame: pd.DataFrame, table: str, window: tuple[dt.date, dt.date]) -> dict[str, int]:
    """Count of rows breaking each single-table rule of the contract."""
    found: dict[str, int] = {}
    for col in TABLES[table].columns:
        s = frame[col.name]
        empty = s.isna() | (s.astype(str) == "")
        if col.required:
            found[f"{col.name} missing"] = int(empty.sum())
        present = s[~empty]
        if col.kind == "id":
            found[f"{col.name} invalid"] = int((~valid_student_id_mask(present.to_numpy())).sum())
        if col.allowed is not None:
            found[f"{col.name} not allowed"] = int((~present.isin(col.allowed)).sum())
        if col.pattern is not None:
            found[f"{col.name} pattern"] = int((~present.astype(str).str.fullmatch(col.pattern)).sum())
        if col.minimum is not None or col.maximum is not None:
            v = present.astype(float)
            lo = -np.inf if col.minimum is None else col.minimum
            hi = np.inf if col.maximum is None else col.maximum
            found[f"{col.name} range"] = int(((v < lo) | (v > hi)).sum())
            if col.step:
                found[f"{col.name} step"] = int((~np.isclose(v / col.step, np.round(v / col.step))).sum())
        if col.kind == "date":
            d = pd.to_datetime(present).dt.date
            lo = dt.date(1990, 1, 1) if col.name == "birth_date" else window[0]
            found[f"{col.name} window"] = int(((d < lo) | (d > window[1])).sum())
    return {k: v for k, v in found.items() if v}


def test_rows_outside_the_manifest_obey_every_contract_rule(messy: tuple[Path, SynthReport]) -> None:
    out, _ = messy
    manifest = pd.read_parquet(out / "_injected.parquet")
    window = _window(out)
    clean = {}
    for table in TABLES:
        frame = read_table(out, table)
        clean[table] = frame[~manifest_mask(frame, manifest, table)]
        assert _violations(clean[table], table, window) == {}, table
        key = list(TABLES[table].unique_key) or list(TABLES[table].column_names)
        assert not clean[table].duplicated(key).any(), f"{table}: duplicate key among clean rows"

    schools = clean["schools"]
    assert (schools["district_code"].str[:2] == schools["province_code"]).all()
    known = set(schools["school_id"])
    cal = clean["calendar"]
    assert cal["school_id"].isin(known).all()
    for term, days in cal.groupby("term")["date"]:
        lo, hi = term_window(term)
        assert days.between(lo, hi).all(), term

    enr = clean["enrollments"]
    assert enr["school_id"].isin(known).all() and enr["term"].isin(set(cal["term"])).all()
    starts = enr["term"].map(lambda t: pd.Timestamp(term_start(t)))
    age = (starts - pd.to_datetime(enr["birth_date"])).dt.days / 365.25
    assert age.between(3, 22.999).all()
    enrolled = set(enr["student_id"])
    for table in ("attendance_daily", "grades", "household", "health", "behaviour", "assistance"):
        assert clean[table]["student_id"].isin(enrolled).all(), f"{table}: orphan among clean rows"


def test_attendance_only_on_open_days_of_the_students_school(messy: tuple[Path, SynthReport]) -> None:
    out, _ = messy
    manifest = pd.read_parquet(out / "_injected.parquet")
    att = read_table(out, "attendance_daily")
    att = att[~manifest_mask(att, manifest, "attendance_daily")]
    enr = read_table(out, "enrollments")
    enr = enr[~manifest_mask(enr, manifest, "enrollments")]
    cal = read_table(out, "calendar")
    cal = cal[~manifest_mask(cal, manifest, "calendar")]
    date = pd.to_datetime(att["date"])
    att_term = np.where(date.dt.month.between(5, 10), (date.dt.year + 543).astype(str) + "-1",
                        (date.dt.year + 543 - (date.dt.month <= 4)).astype(str) + "-2")
    joined = pd.DataFrame({"student_id": att["student_id"].to_numpy(), "term": att_term,
                           "date": att["date"].to_numpy()}).merge(
        enr[["student_id", "term", "school_id"]], on=["student_id", "term"], how="left")
    assert joined["school_id"].notna().all()
    open_days = set(zip(cal["school_id"], cal["date"], strict=True))
    assert all(pair in open_days for pair in zip(joined["school_id"], joined["date"], strict=True))


# --- realism --------------------------------------------------------------------------------------


def test_calendar_has_95_to_100_school_days_a_term_without_weekends(messy: tuple[Path, SynthReport]) -> None:
    out, _ = messy
    cal = pq.read_table(out / "calendar/part-00000.parquet").to_pandas()
    manifest = pd.read_parquet(out / "_injected.parquet")
    cal = cal[~manifest_mask(cal.assign(_file="calendar/part-00000.parquet", _row=np.arange(len(cal))),
                             manifest, "calendar")]
    per = cal.groupby(["school_id", "term"]).size()
    assert 94 <= per.mean() <= 101
    assert (pd.to_datetime(cal["date"]).dt.day_of_week < 5).all()
    assert not pd.to_datetime(cal["date"]).isin(pd.to_datetime(["2025-12-05", "2026-01-01"])).any()


def test_dropout_shape_matches_the_published_pattern(clean: tuple[Path, SynthReport]) -> None:
    _, report = clean
    for year, rates in report.dropout_rate_by_year.items():
        assert 0.025 < rates["overall"] < 0.055, year
        top = sorted(GRADE_LEVELS, key=rates.get)[-2:]
        assert set(top) == {"P6", "M3"}, (year, top)
    assert report.share_m3 > report.share_p6 > 0.1
    assert 0.35 < report.share_m3 + report.share_p6 < 0.6
    assert max(report.mid_term_dropout_rate.values()) < 0.004


def test_oracle_auc_is_realistic_not_trivial(clean: tuple[Path, SynthReport]) -> None:
    _, report = clean
    assert report.oracle_auc is not None and 0.85 <= report.oracle_auc <= 0.92


def test_truth_covers_every_enrollment_and_leaves_the_last_term_open(clean: tuple[Path, SynthReport]) -> None:
    out, report = clean
    con = duckdb.connect()
    truth = f"read_parquet('{out}/truth.parquet')"
    enr = f"read_parquet('{out}/enrollments/*.parquet')"
    assert con.execute(f"SELECT count(*) FROM {truth}").fetchone()[0] == report.rows["enrollments"]
    last = report.terms[-1]
    nulls = con.execute(f"SELECT count(*) FILTER (dropped_out IS NULL), count(*) FILTER (term = '{last}') "
                        f"FROM {truth}").fetchone()
    assert nulls[0] == nulls[1] > 0
    # Realised dropout = not enrolled anywhere next term (and not an M6 graduate or deceased).
    mismatch = con.execute(f"""
        WITH t AS (SELECT *, row_number() OVER () AS i FROM {truth} WHERE dropped_out IS NOT NULL),
        nxt AS (SELECT student_id, term FROM {enr})
        SELECT count(*) FROM t
        WHERE dropped_out <> (NOT deceased AND (dropped_mid_term OR NOT (grade_level = 'M6' AND term LIKE '%-2')) AND NOT EXISTS (
            SELECT 1 FROM nxt WHERE nxt.student_id = t.student_id AND nxt.term =
              CASE WHEN t.term LIKE '%-1' THEN replace(t.term, '-1', '-2')
                   ELSE CAST(CAST(left(t.term, 4) AS INT) + 1 AS VARCHAR) || '-1' END))
    """).fetchone()[0]
    assert mismatch == 0


def test_students_under_80_percent_attendance_get_ms(clean: tuple[Path, SynthReport]) -> None:
    out, _ = clean
    con = duckdb.connect()
    rows = con.execute(f"""
        WITH a AS (
            SELECT student_id,
                   CASE WHEN month(date) BETWEEN 5 AND 10 THEN CAST(year(date) + 543 AS VARCHAR) || '-1'
                        ELSE CAST(year(date) + 543 - CAST(month(date) <= 4 AS INT) AS VARCHAR) || '-2' END AS term,
                   avg(CAST(status IN ('present', 'late') AS DOUBLE)) AS rate
            FROM read_parquet('{out}/attendance_daily/*.parquet') GROUP BY ALL),
        g AS (SELECT student_id, term, avg(CAST(grade = 'มส' AS DOUBLE)) AS ms
              FROM read_csv('{out}/grades/*.csv', all_varchar = true)
              WHERE left(subject_code, 1) <> 'ก' GROUP BY ALL)
        SELECT rate < 0.8 AS low, avg(ms), count(*) FROM a JOIN g USING (student_id, term) GROUP BY ALL
    """).fetchall()
    by = {low: (ms, n) for low, ms, n in rows}
    assert by[True][1] > 20 and by[True][0] > 0.8
    assert by[False][0] == 0


def test_ids_are_unique_thai_ids_or_g_codes(clean: tuple[Path, SynthReport]) -> None:
    out, _ = clean
    enr = pq.read_table(out / "enrollments/part-00000.parquet", columns=["student_id", "nationality",
                                                                         "birth_date"]).to_pandas()
    ids = enr["student_id"].drop_duplicates()
    assert valid_student_id_mask(ids.to_numpy()).all()
    g = enr["student_id"].str.startswith("G")
    assert (g == (enr["nationality"] == "other")).all()
    assert 0.005 < g.mean() < 0.03
    assert (enr.loc[~g, "student_id"].str[0] == "1").mean() > 0.9


def test_household_income_sits_around_the_cct_line(clean: tuple[Path, SynthReport]) -> None:
    out, _ = clean
    hh = pq.read_table(out / "household/part-00000.parquet").to_pandas()
    per_capita = hh["monthly_income_baht"] / hh["household_size"]
    assert 1800 < per_capita.median() < 3600
    assert {"extremely_poor", "poor"} <= set(hh["cct_status"])
    assert (hh["lives_with"] == "grandparents").mean() > 0.15


def test_growth_is_plausible_for_a_ten_year_old(clean: tuple[Path, SynthReport]) -> None:
    out, _ = clean
    con = duckdb.connect()
    height, weight = con.execute(f"""
        SELECT median(h.height_cm), median(h.weight_kg)
        FROM read_parquet('{out}/health/*.parquet') h
        JOIN (SELECT DISTINCT student_id, birth_date FROM read_parquet('{out}/enrollments/*.parquet')) e
        USING (student_id)
        WHERE date_diff('day', e.birth_date, h.measured_on) / 365.25 BETWEEN 10 AND 11
    """).fetchone()
    assert 130 < height < 142 and 25 < weight < 36


def test_a_two_digit_buddhist_era_year_is_read_as_19xx_keeping_day_and_month() -> None:
    def days(iso: str) -> int:
        return int((np.datetime64(iso) - np.datetime64("1970-01-01")).astype(np.int64))

    # 2024 is 2567 BE: typed "67", read as 1967; 1967 has no 29 February.
    got = (short_be_year(np.array([days("2024-06-16"), days("2024-02-29"), days("2025-01-02")]))
           + np.datetime64("1970-01-01", "D")).astype(str)
    assert list(got) == ["1967-06-16", "1967-02-28", "1968-01-02"]


def _next_term_sql(term: str) -> str:
    return (f"CASE WHEN {term} LIKE '%-1' THEN replace({term}, '-1', '-2') "
            f"ELSE CAST(CAST(left({term}, 4) AS INT) + 1 AS VARCHAR) || '-1' END")


def test_a_transferred_student_found_next_term_is_at_another_school(clean: tuple[Path, SynthReport]) -> None:
    out, _ = clean
    enr = f"read_parquet('{out}/enrollments/*.parquet')"
    same, moved = duckdb.connect().execute(f"""
        SELECT count(*) FILTER (a.school_id = b.school_id), count(*)
        FROM {enr} a JOIN {enr} b ON b.student_id = a.student_id AND b.term = {_next_term_sql('a.term')}
        WHERE a.status = 'transferred'
    """).fetchone()
    assert moved > 100 and same == 0


def test_attendance_stops_at_a_mid_term_dropout(clean: tuple[Path, SynthReport]) -> None:
    out, _ = clean
    after, dropouts = duckdb.connect().execute(f"""
        WITH d AS (SELECT e.student_id, e.status_date FROM read_parquet('{out}/enrollments/*.parquet') e
                   JOIN read_parquet('{out}/truth.parquet') t USING (student_id, term)
                   WHERE t.dropped_mid_term)
        SELECT (SELECT count(*) FROM read_parquet('{out}/attendance_daily/*.parquet') a JOIN d USING (student_id)
                WHERE a.date >= d.status_date), (SELECT count(*) FROM d)
    """).fetchone()
    assert dropouts > 10 and after == 0


def test_a_config_error_names_the_section(tmp_path: Path) -> None:
    from risk.data.synth import SynthConfigError

    broken = CONFIG.read_text(encoding="utf-8").replace("  rate: 0.005", "  rate: lots")
    path = tmp_path / "synth.yaml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(SynthConfigError, match=r"mess\.rate"):
        SynthConfig.from_yaml(path)
    with pytest.raises(SynthConfigError, match="does not exist"):
        SynthConfig.from_yaml(tmp_path / "missing.yaml")
