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

    Each distinct value is checked once: an attendance chunk holds a million rows
    but only a few thousand students.

    Returns
    -------
    mask : ndarray of bool, shape (n,)
    """
    codes, uniques = pd.factorize(_as_series(values), use_na_sentinel=True)
    valid = _valid_distinct(np.asarray(uniques, dtype=object))
    return np.where(codes >= 0, valid[np.maximum(codes, 0)] if len(valid) else False, False)


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
    hashed = np.fromiter((pseudonym(str(u), key) for u in uniques), dtype=np.int64, count=len(uniques))
    return hashed[codes]


def masked_id(student_id: str) -> str:
    """Display hint a teacher can recognise: all but the last four characters masked."""
    if not isinstance(student_id, str) or len(student_id) < 4:
        return "•" * 9
    return "•" * (len(student_id) - 4) + student_id[-4:]


_G_OFFSET = 10**13  # G-codes after every 13-digit number, so the two never meet


def id_numbers(values: pd.Series) -> np.ndarray:
    """Each ID as an exact int64 (13 digits as they are; ``G`` + 12 digits as 10¹³ + digits), -1 otherwise.

    Used only to look IDs up quickly inside one validation run; never written.
    """
    arr = pa.array(values.fillna(""), type=pa.string())
    thirteen = pc.equal(pc.utf8_length(arr), 13)
    digits = pc.and_(thirteen, pc.utf8_is_digit(arr))
    tail = pc.utf8_slice_codeunits(arr, 1)
    gcode = pc.and_(pc.and_(thirteen, pc.starts_with(arr, "G")), pc.utf8_is_digit(tail))
    numbers = np.full(len(arr), -1, dtype=np.int64)
    digit_mask = digits.to_numpy(zero_copy_only=False)
    g_mask = gcode.to_numpy(zero_copy_only=False)
    if digit_mask.any():
        numbers[digit_mask] = pc.cast(arr.filter(digits), pa.int64()).to_numpy()
    if g_mask.any():
        numbers[g_mask] = pc.cast(tail.filter(gcode), pa.int64()).to_numpy() + _G_OFFSET
    return numbers


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
        """Pseudonyms of ``ids`` (shape (n,), int64)."""
        numbers = id_numbers(ids)
        position = self._known.get_indexer(numbers) if len(self._known) else np.full(len(ids), -1)
        found = (position >= 0) & (numbers >= 0)
        out = np.empty(len(ids), dtype=np.int64)
        out[found] = self._keys[position[found]]
        if not found.all():
            out[~found] = pseudonyms(ids[~found], self.key)
        return out

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
