"""Student identifiers: Thai national IDs, DMC G-codes and keyed pseudonyms.

A Thai national ID has 13 digits; the last is a check digit over the first 12
(weights 13..2, check = (11 - sum mod 11) mod 10). A student without Thai
nationality is registered by DMC with a G-code: ``G`` and 12 digits.

Raw IDs must not travel past validation (Thai PDPA). They become a keyed
pseudonym: the first 8 bytes of HMAC-SHA256(key, id) as a signed 64-bit integer.
An integer joins fast in DuckDB over hundreds of millions of attendance rows;
at 64 bits the chance of any collision among 10 million students is ~3e-6.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from risk.errors import MissingIdKeyError

__all__ = [
    "DEMO_KEY",
    "ID_KEY_ENV",
    "MissingIdKeyError",
    "Pseudonymizer",
    "id_numbers",
    "id_key_from_env",
    "is_valid_student_id",
    "masked_id",
    "masked_ids",
    "pseudonym",
    "pseudonyms",
    "thai_check_digit",
    "valid_student_id_mask",
]

ID_KEY_ENV = "RISK_ID_KEY"
# A fixed key so that the demo and tests run with nothing set. It is public, so
# pseudonyms made with it protect nothing: every use of it is logged loudly.
DEMO_KEY = b"risk-DEMO-KEY-not-for-real-data"
_WEIGHTS = np.arange(13, 1, -1, dtype=np.int64)  # 13..2


def id_key_from_env(demo: bool = False) -> bytes:
    """Return the pseudonym key from ``RISK_ID_KEY``, or the demo key when ``demo``.

    Raises
    ------
    MissingIdKeyError
        When the variable is unset (or shorter than 16 characters) and ``demo`` is false.
    """
    value = os.environ.get(ID_KEY_ENV, "")
    if value:
        if len(value) < 16:
            raise MissingIdKeyError(
                f"{ID_KEY_ENV} is too short ({len(value)} characters): use at least 16 random characters."
            )
        return value.encode("utf-8")
    if demo:
        return DEMO_KEY
    raise MissingIdKeyError(
        f"set {ID_KEY_ENV} to a secret of at least 16 characters, "
        "or pass --demo to use the labelled, public demo key (synthetic data only)."
    )


def thai_check_digit(first12: str) -> int:
    """Check digit of a Thai national ID from its first 12 digits."""
    total = sum(int(d) * w for d, w in zip(first12, range(13, 1, -1), strict=True))
    return (11 - total % 11) % 10


_DIGITS = frozenset("0123456789")


def is_valid_student_id(value: object) -> bool:
    """True for a 13-digit Thai ID with a correct check digit, or a G-code (G + 12 digits).

    The rule of :func:`valid_student_id_mask` for one value, in plain Python: the
    service checks one ID a request, where building a pandas array cost ~1 ms.
    """
    if not isinstance(value, str) or len(value) != 13:
        return False
    if value[0] == "G":
        return all(c in _DIGITS for c in value[1:])
    return all(c in _DIGITS for c in value) and thai_check_digit(value[:12]) == int(value[12])


def valid_student_id_mask(values: np.ndarray | Iterable[object]) -> np.ndarray:
    """Vectorised :func:`is_valid_student_id` over an array of strings (None / NaN are invalid).

    Read from the strings' bytes, 13 at a row (:func:`_id_bytes`): no Python object
    and no hashing per row.

    Returns
    -------
    mask : ndarray of bool, shape (n,)
    """
    text = _as_text(values)
    if text is None:  # values that are not all text: each distinct one checked as it is
        codes, uniques = pd.factorize(_as_series(values), use_na_sentinel=True)
        valid = _valid_distinct(np.asarray(uniques, dtype=object))
        return np.where(codes >= 0, valid[np.maximum(codes, 0)] if len(valid) else False, False)
    thirteen, digits = _id_bytes(text)
    runs = _runs(thirteen, digits)
    if runs is not None:  # a student's rows side by side: each run of one ID checked once
        heads, lengths = runs
        return np.repeat(_valid_rows(thirteen[heads], digits[heads]), lengths)
    return _valid_rows(thirteen, digits)


def _valid_rows(thirteen: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """The ID rule over :func:`_id_bytes`'s rows."""
    rest_digits = (digits[:, 1:] <= 9).all(axis=1)
    gcode = thirteen & (digits[:, 0] == _G) & rest_digits
    thai = thirteen & (digits[:, 0] <= 9) & rest_digits
    columns = np.ascontiguousarray(digits.T)  # one row per position: whole-column arithmetic, no (n, 13) int64
    total = np.zeros(len(digits), dtype=np.int64)
    for position, weight in enumerate(_WEIGHTS):
        total += columns[position].astype(np.int64) * weight
    check = (11 - total % 11) % 10
    return gcode | (thai & (check == columns[12]))


_G = ord("G") - ord("0")  # 'G' as _id_bytes gives it
# Runs are used when there are at most this share as many runs as rows (attendance: ~1 in 100).
_RUN_SHARE = 0.25


def _runs(thirteen: np.ndarray, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Runs of equal rows of :func:`_id_bytes`: the first row of each and their lengths; None when most rows differ.

    Exports list a student's rows together (a term of attendance is ~100 rows), so an ID
    rule or a lookup taken once per run and repeated over it gives each row its own answer
    for a hundredth of the work. Rows are compared 8 bytes at a time (bytes 0–7 and 5–12).
    """
    n = len(digits)
    if n < 2:
        return None
    low = np.ndarray((n,), dtype=np.uint64, buffer=digits, offset=0, strides=(13,))
    high = np.ndarray((n,), dtype=np.uint64, buffer=digits, offset=5, strides=(13,))
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(low[1:], low[:-1], out=starts[1:])
    starts[1:] |= high[1:] != high[:-1]
    starts[1:] |= thirteen[1:] != thirteen[:-1]
    heads = np.flatnonzero(starts)
    if len(heads) > _RUN_SHARE * n:
        return None
    return heads, np.diff(heads, append=n)


def _as_text(values: object) -> pa.StringArray | pa.LargeStringArray | None:
    """``values`` as one Arrow string array (zero-copy from an Arrow-backed column), or None when not all text."""
    try:
        if isinstance(values, pd.Series):
            values = values.array
        arr = pa.array(values, from_pandas=True) if not isinstance(values, pa.Array | pa.ChunkedArray) else values
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_null(arr.type):
        return pa.array([None] * len(arr), pa.string())
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    return arr


def _id_bytes(text: pa.StringArray | pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Which values are 13 bytes long, and those bytes minus ``'0'`` (shape (n, 13), uint8).

    A digit is then 0–9 and anything else larger (bytes below ``'0'`` wrap around);
    a 13-byte value with a non-ASCII character has a byte above 127, so it is no ID.
    Other values (and nulls) are replaced by 13 spaces first, so that every row is
    13 contiguous bytes of one buffer.
    """
    n = len(text)
    thirteen = pc.fill_null(pc.equal(pc.binary_length(text), 13), False)
    mask = thirteen.to_numpy(zero_copy_only=False)
    if n and not mask.all():
        text = pc.if_else(thirteen, text, pa.scalar(" " * 13, text.type))
    if not n:
        return mask, np.zeros((0, 13), dtype=np.uint8)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64 if pa.types.is_large_string(text.type) else np.int32)
    first, last = int(offsets[text.offset]), int(offsets[text.offset + n])
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8)[first:last]
    return mask, data.reshape(n, 13) - np.uint8(ord("0"))


def _as_series(values: pd.Series | np.ndarray | Iterable[object]) -> pd.Series:
    # A column stays as it is (factorising Arrow strings needs no Python objects per row).
    return values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))


def _valid_distinct(arr: np.ndarray) -> np.ndarray:
    n = arr.shape[0]
    # One character more than an ID holds, so that a 14-character value is not cut to 13.
    text = np.array(["" if not isinstance(v, str) else v for v in arr], dtype="U14")
    ok_len = np.char.str_len(text) == 13
    # View the fixed-width unicode array as code points: shape (n, 14); the 14th is empty.
    codes = text.view(np.uint32).reshape(n, 14)[:, :13] if n else np.zeros((0, 13), dtype=np.uint32)
    digits = codes.astype(np.int64) - ord("0")
    is_digit = (digits >= 0) & (digits <= 9)
    gcode = ok_len & (codes[:, 0] == ord("G")) & is_digit[:, 1:].all(axis=1)
    thai = ok_len & is_digit.all(axis=1)
    check = (11 - (digits[:, :12] * _WEIGHTS).sum(axis=1) % 11) % 10
    thai &= check == digits[:, 12]
    return thai | gcode


def pseudonym(student_id: str, key: bytes) -> int:
    """Keyed pseudonym of one ID: a signed 64-bit integer, stable for a key."""
    digest = hmac.digest(key, student_id.encode("utf-8"), hashlib.sha256)
    return int.from_bytes(digest[:8], "big", signed=True)


def pseudonyms(values: pd.Series | np.ndarray | Iterable[str], key: bytes) -> np.ndarray:
    """Pseudonyms of many IDs, hashing each distinct ID once (missing IDs hash as "").

    Returns
    -------
    keys : ndarray of int64, shape (n,)
    """
    codes, uniques = pd.factorize(_as_series(values).fillna(""))
    # pseudonym() for each: the digest's first 8 bytes, big-endian and signed, without a Python int each.
    digests = b"".join([hmac.digest(key, str(u).encode("utf-8"), hashlib.sha256)[:8] for u in uniques])
    return np.frombuffer(digests, dtype=">i8").astype(np.int64)[codes]


def masked_id(student_id: str) -> str:
    """Display hint a teacher can recognise: all but the last four characters masked."""
    if not isinstance(student_id, str) or len(student_id) < 4:
        return "•" * 9
    return "•" * (len(student_id) - 4) + student_id[-4:]


def masked_ids(values: pd.Series) -> pd.Series:
    """:func:`masked_id` of every value of a text column, as whole-column string operations (same index)."""
    if not pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        return pd.Series([masked_id(v) for v in values], index=values.index, dtype="str")
    text = values.fillna("")
    lengths = text.str.len().to_numpy()
    prefix = {k: "•" * max(k - 4, 0) for k in np.unique(lengths).tolist()}
    masked = pd.Series([prefix[k] for k in prefix], dtype="str").iloc[np.searchsorted(list(prefix), lengths)]
    masked = masked.set_axis(values.index) + text.str[-4:]
    return masked.where(lengths >= 4, "•" * 9)


_G_OFFSET = 10**13  # G-codes after every 13-digit number, so the two never meet


def id_numbers(values: pd.Series) -> np.ndarray:
    """Each ID as an exact int64 (13 digits as they are; ``G`` + 12 digits as 10¹³ + digits), -1 otherwise.

    Used only to look IDs up quickly inside one validation run; never written.
    """
    text = _as_text(values)
    if text is None:
        text = pa.array([v if isinstance(v, str) else None for v in values], pa.string())
    return _numbers(*_id_bytes(text))


def _numbers(thirteen: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """:func:`id_numbers` over :func:`_id_bytes`'s rows."""
    rest_digits = (digits[:, 1:] <= 9).all(axis=1)
    thai = thirteen & (digits[:, 0] <= 9) & rest_digits
    gcode = thirteen & (digits[:, 0] == _G) & rest_digits
    columns = np.ascontiguousarray(digits.T)
    # 'G' counts as the leading 10: G-codes come after every 13-digit number (_G_OFFSET).
    number = np.where(gcode, _G_OFFSET // 10**12, columns[0].astype(np.int64))
    for position in range(1, 13):
        number = number * 10 + columns[position]
    return np.where(thai | gcode, number, -1)


class Pseudonymizer:
    """Pseudonyms for a validation run: IDs seen in enrollments are looked up, others hashed.

    Attendance repeats the same students hundreds of millions of times; looking up
    an integer form of the ID in a hash index is ~100× faster than HMAC per row.
    """

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._known = pd.Index(np.empty(0, dtype=np.int64))
        self._keys = np.empty(0, dtype=np.int64)

    def __call__(self, ids: pd.Series) -> np.ndarray:
        """Pseudonyms of ``ids`` (shape (n,), int64); a missing ID gets the pseudonym of ``""``.

        IDs are looked up by their integer form; those not known (or not IDs) are hashed.
        """
        text = _as_text(ids)
        runs = None
        if text is not None and len(self._known):
            thirteen, digits = _id_bytes(text)
            runs = _runs(thirteen, digits)
        if runs is None:
            found, keys = self._looked_up(id_numbers(ids))
        else:  # one lookup per run of the same ID (see _runs)
            heads, lengths = runs
            found, keys = (np.repeat(a, lengths) for a in self._looked_up(_numbers(thirteen[heads], digits[heads])))
        if not found.all():
            keys[~found] = pseudonyms(ids[~found], self.key)
        return keys

    def _looked_up(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which ``numbers`` are known, and their pseudonyms (unset where not known)."""
        position = self._known.get_indexer(numbers) if len(self._known) else np.full(len(numbers), -1)
        found = (position >= 0) & (numbers >= 0)
        keys = np.empty(len(numbers), dtype=np.int64)
        keys[found] = self._keys[position[found]]
        return found, keys

    def remember(self, ids: pd.Series, keys: np.ndarray) -> None:
        """Keep (ID, pseudonym) pairs for lookups once :meth:`freeze` is called."""
        numbers = id_numbers(ids)
        ok = numbers >= 0
        self._pending.append((numbers[ok], keys[ok]))

    def take_remembered(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Hand over the pairs remembered since the last freeze (from a worker process)."""
        pending, self._pending = self._pending, []
        return pending

    def absorb(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Take pairs remembered by another process."""
        self._pending.extend(pairs)

    def freeze(self) -> None:
        """Build the lookup index from everything remembered so far."""
        if not self._pending:
            return
        numbers = np.concatenate([self._known.to_numpy(), *(n for n, _ in self._pending)])
        keys = np.concatenate([self._keys, *(k for _, k in self._pending)])
        numbers, first = np.unique(numbers, return_index=True)
        self._known, self._keys, self._pending = pd.Index(numbers), keys[first], []
