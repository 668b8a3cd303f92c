"""ID checks read from the strings' bytes agree with the one-value rule, whatever form the column takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from risk.data.ids import (
    Pseudonymizer,
    id_numbers,
    is_valid_student_id,
    masked_id,
    masked_ids,
    pseudonym,
    pseudonyms,
    thai_check_digit,
    valid_student_id_mask,
)


def _number(value: object) -> int:
    """The reference form of :func:`id_numbers`, one value at a time."""
    if not isinstance(value, str) or len(value) != 13 or not value.isascii():
        return -1
    if value.isdigit():
        return int(value)
    if value[0] == "G" and value[1:].isdigit():
        return 10**13 + int(value[1:])
    return -1


def _values() -> list[object]:
    rng = np.random.default_rng(9)
    alphabet = list("0123456789") * 6 + list("G๑xé -")
    values: list[object] = ["".join(rng.choice(alphabet, size=rng.integers(11, 15))) for _ in range(4000)]
    values += [v[:12] + str(thai_check_digit(v[:12])) for v in values if isinstance(v, str) and len(v) >= 12 and v[:12].isdigit()
               and v[:12].isascii()]
    values += ["G" + v[1:13] for v in values[:400]] + [None, "", "G", "๑๒๓๔๕๖๗๘๙๐๑๒๓", "1234567890๑๒"]
    order = rng.permutation(len(values))
    return [values[i] for i in order]


def test_mask_and_numbers_match_the_scalar_rules_on_every_kind_of_column():
    values = _values()
    expected_valid = [is_valid_student_id(v) for v in values]
    expected_numbers = [_number(v) for v in values]
    arrow = pd.Series(values, dtype="str")  # Arrow-backed, as the reader makes it
    columns = [arrow, np.array(values, dtype=object), pd.Series(values, dtype=object), arrow.iloc[700:],
               pa.chunked_array([pa.array(values[:100]), pa.array(values[100:])])]
    for column in columns:
        start = 700 if column is columns[3] else 0
        assert valid_student_id_mask(column).tolist() == expected_valid[start:]
        assert id_numbers(column if not isinstance(column, pa.ChunkedArray) else pd.Series(values)).tolist() == \
            expected_numbers[start:]
    assert 300 < sum(expected_valid) < len(values) - 300


def test_not_text_values_are_invalid_ids():
    assert valid_student_id_mask(np.array([1103700123458, None, "1103700123458"], dtype=object)).tolist() == \
        [False, False, True]
    assert valid_student_id_mask(pd.Series([None, None])).tolist() == [False, False]
    assert valid_student_id_mask(pd.Series([], dtype="str")).tolist() == []


def test_pseudonymizer_agrees_with_hashing_on_a_mixed_column():
    key = b"speed-key-0123456789"
    values = pd.Series(_values(), dtype="str")
    known = Pseudonymizer(key)
    known.remember(values.iloc[::3], pseudonyms(values.iloc[::3], key))
    known.freeze()
    assert known(values).tolist() == pseudonyms(values, key).tolist()


def test_masked_ids_match_the_one_value_rule():
    values = _values() + ["abc", "abcd", "ก๑๒๓๔", "x"]
    for column in (pd.Series(values, dtype="str"), pd.Series(values, dtype=object).iloc[3:]):
        expected = [masked_id(v) for v in column]
        masked = masked_ids(column)
        assert masked.tolist() == expected
        assert masked.index.equals(column.index)


def test_runs_of_one_id_get_each_row_its_own_answer():
    # As an export lists attendance: each student's rows side by side, so IDs are checked
    # and looked up once per run; invalid values of different text in one run, and a
    # run of 13 spaces beside runs of shorter values, must still be answered row by row.
    key = b"speed-key-0123456789"
    # Neighbours that differ only in their last bytes (read 8 at a time, these are the ones to miss).
    neighbours = [f"11037001{n:04d}" for n in range(1, 6)]
    neighbours = [v + str(thai_check_digit(v)) for v in neighbours] + ["1103700100017", "G110370010001"]
    values = _values() + [" " * 13, "  ", None, "G", "", "x" * 13] + neighbours
    lengths = np.random.default_rng(3).integers(1, 200, size=len(values))
    column = pd.Series(np.repeat(np.array(values, dtype=object), lengths), dtype="str")
    assert valid_student_id_mask(column).tolist() == [is_valid_student_id(v) for v in column]
    assert id_numbers(column).tolist() == [_number(v) for v in column]
    known = Pseudonymizer(key)
    known.remember(column.iloc[::5], pseudonyms(column.iloc[::5], key))
    known.freeze()
    assert known(column).tolist() == [pseudonym(v if isinstance(v, str) else "", key) for v in column]
    assert known(column.iloc[37:]).tolist() == pseudonyms(column.iloc[37:], key).tolist()
