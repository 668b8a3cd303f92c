"""Student IDs: check digits, G-codes, keyed pseudonyms, and no raw ID after validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import STUDENTS, clean_tables, write_source

from risk.data.ids import (
    DEMO_KEY,
    Pseudonymizer,
    id_key_from_env,
    id_numbers,
    is_valid_student_id,
    masked_id,
    pseudonym,
    pseudonyms,
    thai_check_digit,
    valid_student_id_mask,
)
from risk.data.validate import validate_sources
from risk.errors import MissingIdKeyError


def test_check_digit_worked_by_hand():
    # 1·13 + 1·12 + 0·11 + 3·10 + 7·9 + 0·8 + 0·7 + 1·6 + 2·5 + 3·4 + 4·3 + 5·2 = 168;
    # 168 mod 11 = 3; (11 − 3) mod 10 = 8.
    assert thai_check_digit("110370012345") == 8
    # 352 mod 11 = 0, so (11 − 0) mod 10 = 1: the check digit wraps.
    assert thai_check_digit("123456789012") == 1


@pytest.mark.parametrize("value", ["1103700123458", "1234567890121", "G123456789012", "G000000000000"])
def test_valid_ids(value):
    assert is_valid_student_id(value)


@pytest.mark.parametrize(
    "value",
    ["1103700123457", "1234567890120", "110370012345", "11037001234580", "110370012345X",
     "G12345678901", "g123456789012", "GG23456789012", "", None, 1103700123458],
)  # fmt: skip
def test_invalid_ids(value):
    assert not is_valid_student_id(value)


def test_vectorised_check_matches_scalar_check():
    values = np.array(["1103700123458", "1103700123457", None, "G123456789012", "abc"], dtype=object)
    assert valid_student_id_mask(values).tolist() == [is_valid_student_id(v) for v in values]
    # Many more: right and wrong check digits, G-codes, Thai digits, letters, lengths 12–14.
    rng = np.random.default_rng(4)
    alphabet = list("0123456789") * 6 + list("G๑x -")
    values = ["".join(rng.choice(alphabet, size=rng.integers(12, 15))) for _ in range(3000)]
    values += [first + str(thai_check_digit(first)) for first in (v[:12] for v in values if v[:12].isascii()
                                                                   and v[:12].isdigit())]
    values += ["G" + v[1:13] for v in values[:500]]
    found = [is_valid_student_id(v) for v in values]
    assert valid_student_id_mask(np.array(values, dtype=object)).tolist() == found
    assert 300 < sum(found) < len(values) - 300


def test_pseudonym_is_stable_for_a_key_and_differs_across_keys():
    a, b = b"key-one-0123456789", b"key-two-0123456789"
    assert pseudonym("1103700123458", a) == pseudonym("1103700123458", a)
    assert pseudonym("1103700123458", a) != pseudonym("1103700123458", b)
    assert pseudonym("1103700123458", a) != pseudonym("1234567890121", a)


def test_batch_pseudonyms_equal_single_ones():
    key = b"key-one-0123456789"
    ids = np.array(["1103700123458", "G123456789012", "1103700123458"], dtype=object)
    assert pseudonyms(ids, key).tolist() == [pseudonym(i, key) for i in ids]


def test_masked_id_shows_only_the_last_four():
    assert masked_id("1103700123458") == "•••••••••3458"


def test_no_key_without_demo_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("RISK_ID_KEY", raising=False)
    with pytest.raises(MissingIdKeyError, match="RISK_ID_KEY"):
        id_key_from_env()
    assert id_key_from_env(demo=True) == DEMO_KEY


def test_short_key_is_refused(monkeypatch):
    monkeypatch.setenv("RISK_ID_KEY", "short")
    with pytest.raises(MissingIdKeyError, match="too short"):
        id_key_from_env()


def test_no_raw_id_appears_in_any_validated_output(tmp_path: Path, id_key: bytes):
    tables = clean_tables()
    # A row with a broken check digit lands in quarantine: its ID must be masked there too.
    broken = tables["health"].iloc[[0]].assign(student_id=STUDENTS[0][:-1] + "0")
    tables["health"] = pd.concat([tables["health"], broken], ignore_index=True)
    out = tmp_path / "out"
    validate_sources(write_source(tables, tmp_path / "source"), out, key=id_key, progress=False)
    raw_ids = set(STUDENTS) | {STUDENTS[0][:-1] + "0"}
    written = list(out.rglob("*.parquet")) + list(out.rglob("*.json"))
    assert written
    for path in written:
        text = path.read_bytes() if path.suffix == ".json" else pq.read_table(path).to_pandas().to_csv().encode()
        for raw in raw_ids:
            assert raw.encode() not in text, f"raw ID found in {path}"


def test_id_numbers_are_exact_and_distinct_for_thai_ids_and_g_codes():
    values = pd.Series(["1103700123458", "G103700123458", "0103700123458", "110370012345", None, "G12345678901X"])
    assert id_numbers(values).tolist() == [1103700123458, 10**13 + 103700123458, 103700123458, -1, -1, -1]


def test_pseudonymizer_lookups_equal_hashing():
    key = b"key-one-0123456789"
    enrolled = pd.Series(["1103700123458", "G123456789012"])
    pseudonymize = Pseudonymizer(key)
    pseudonymize.remember(enrolled, pseudonyms(enrolled, key))
    pseudonymize.freeze()
    later = pd.Series(["G123456789012", "1234567890121", "bad", None, "1103700123458"])
    assert pseudonymize(later).tolist() == pseudonyms(later, key).tolist()
