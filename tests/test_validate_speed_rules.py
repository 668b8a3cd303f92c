"""The row pass's direct check evaluation (risk.data.checks) and pandera's engine quarantine the same rows alike.

The schema's checks are the one definition of each rule; the validator calls them
itself for speed. Here an export with a planted bad value of every row rule (the
corruptions of test_validate, plus a synthetic export with the generator's injected
errors) is validated both ways, and the validated tables and quarantines must match.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import clean_tables, write_source
from test_validate import corruptions

import risk.data.row_pass as row_pass
from risk.data.contract import TABLE_ORDER, TABLES
from risk.data.quarantine import row_failures, split_chunk
from risk.data.rule_codes import RULES
from risk.data.schemas import References, build_schema
from risk.data.synth import SynthConfig, generate
from risk.data.validate import validate_sources
from risk.data.values import typed_frame

KEY = b"speed-test-key-0123456789"
CONFIG = Path(__file__).resolve().parent.parent / "configs" / "synth.yaml"
# Rules found by the duplicate pass, not by the schema.
NOT_ROW_RULES = {"duplicate", "duplicate_key"}
_BOOL_AS_INT = r"\b(enrolled_that_term|school_day) = 0:"


def _planted(folder: Path) -> Path:
    tables = clean_tables()
    planted = corruptions()
    # A birth date after the data window (it crashed the validator: its check named no rule).
    planted["enrollments"].append(("bad_date", planted["enrollments"][-1][1] | {
        "student_id": "1103700200193", "birth_date": dt.date(2031, 1, 1)}))
    for name, rows in planted.items():
        extra = pd.DataFrame([row for _, row in rows])
        if name == "grades":  # CSV: credits may hold text
            extra["credits"] = extra["credits"].astype(object)
        tables[name] = pd.concat([tables[name], extra], ignore_index=True)
    return write_source(tables, folder)


def _synthetic(folder: Path) -> Path:
    config = SynthConfig.from_yaml(CONFIG).model_copy(update={"chunk_size": 200})
    generate(folder, students=400, terms=2, seed=3, config=config, progress=False)
    return folder


def _both_ways(source: Path, out: Path, monkeypatch: pytest.MonkeyPatch,
               chunk_rows: int) -> tuple[Path, Path]:
    direct = out / "direct"
    validate_sources(source, direct, key=KEY, progress=False, buckets=4, chunk_rows=chunk_rows)
    with monkeypatch.context() as patch:
        patch.setattr(row_pass, "row_failures", functools.partial(row_failures, engine="pandera"))
        validate_sources(source, out / "pandera", key=KEY, progress=False, buckets=4, chunk_rows=chunk_rows)
    return direct, out / "pandera"


def _read(folder: Path) -> pd.DataFrame:
    files = sorted(folder.rglob("*.parquet"))
    frame = pd.concat([pd.read_parquet(f).assign(_part=str(f.parent.relative_to(folder))) for f in files],
                      ignore_index=True)
    return frame.sort_values(sorted(c for c in frame.columns if c != "_part")).reset_index(drop=True)


def _assert_same_store(direct: Path, pandera: Path) -> set[str]:
    """Validated tables and quarantines equal; returns the rules the quarantine holds."""
    rules: set[str] = set()
    for name in TABLE_ORDER:
        pd.testing.assert_frame_equal(_read(direct / name), _read(pandera / name), check_dtype=False)
        quarantine = direct / "quarantine" / name
        if quarantine.is_dir():
            ours, theirs = _read(quarantine), _read(pandera / "quarantine" / name)
            # pandera writes a failing bool as 0 when another check's failures in the chunk are numbers
            # (its failure cases share one column); the value is False either way.
            theirs["detail"] = theirs["detail"].str.replace(_BOOL_AS_INT, r"\1 = False:", regex=True)
            pd.testing.assert_frame_equal(ours.drop(columns="_part"), theirs.drop(columns="_part"),
                                          check_dtype=False)
            rules |= {r for joined in ours["rules"] for r in joined.split(";")}
    return rules


def _schema_rules() -> set[str]:
    """Every rule a check of the schemas (with every reference known) can give."""
    refs = References(school_ids=frozenset({"x"}), terms=frozenset({"2567-1"}), window=(pd.Timestamp(2020, 1, 1),
                      pd.Timestamp(2025, 1, 1)), enrolled=pd.Index([1]), school_days=pd.Index([1]),
                      enrollment_keys=pd.Index([1]), enrollment_school=np.array([1]))
    found = set()
    for name in TABLE_ORDER:
        schema = build_schema(TABLES[name], refs)
        found |= {c.error or c.name for col in schema.columns.values() for c in col.checks}
        found |= {c.error or c.name for c in schema.checks}
    return found


def test_every_row_rule_is_planted_and_quarantined_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    direct, pandera = _both_ways(_planted(tmp_path / "source"), tmp_path, monkeypatch, chunk_rows=7)
    rules = _assert_same_store(direct, pandera)
    # Every rule the schemas hold was planted, so a rule the two engines judge differently shows.
    assert _schema_rules() - rules == set()
    assert {"missing_required", "bad_type"} <= rules
    assert rules - NOT_ROW_RULES <= set(RULES)


def test_synthetic_errors_are_quarantined_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    direct, pandera = _both_ways(_synthetic(tmp_path / "source"), tmp_path, monkeypatch, chunk_rows=20_000)
    rules = _assert_same_store(direct, pandera)
    assert len(rules) > 8


def test_a_wrong_dtype_is_reported_as_a_bug_by_both():
    table = TABLES["health"]
    frame, bad = typed_frame(pa.table({"student_id": ["1103700123451"], "measured_on": ["2024-06-03"],
                                       "weight_kg": [30.0], "height_cm": [140.0]}), table)
    frame["weight_kg"] = frame["weight_kg"].astype(str)
    schema = build_schema(table, References())
    for engine in ("direct", "pandera"):
        with pytest.raises(RuntimeError, match="schema/reader mismatch"):
            row_failures(schema, frame, bad, engine=engine)


def test_empty_and_null_values_give_the_same_reasons():
    table = TABLES["enrollments"]
    rows = pa.table({name: pa.array([None, None, "x"], pa.string()) for name in table.column_names})
    frame, bad = typed_frame(rows, table)
    frame.insert(0, "student_key", np.arange(3, dtype=np.int64))
    schema = build_schema(table, References(school_ids=frozenset({"1040100001"}), terms=frozenset({"2567-1"})))
    ours = split_chunk(frame, row_failures(schema, frame, bad))[1]
    theirs = split_chunk(frame, row_failures(schema, frame, bad, engine="pandera"))[1]
    pd.testing.assert_frame_equal(ours, theirs)
    assert len(ours) == 3
