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

from risk.errors import MissingIdKeyError

__all__ = [
    "DEMO_KEY",
    "ID_KEY_ENV",
    "MissingIdKeyError",
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


def is_valid_student_id(value: object) -> bool:
    """True for a 13-digit Thai ID with a correct check digit, or a G-code (G + 12 digits)."""
    if not isinstance(value, str):
        return False
    return bool(valid_student_id_mask(np.array([value], dtype=object))[0])


def valid_student_id_mask(values: np.ndarray | Iterable[object]) -> np.ndarray:
    """Vectorised :func:`is_valid_student_id` over an array of strings (None / NaN are invalid).

    Each distinct value is checked once: an attendance chunk holds a million rows
    but only a few thousand students.

    Returns
    -------
    mask : ndarray of bool, shape (n,)
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(values, dtype=object)), use_na_sentinel=True)
    valid = _valid_distinct(np.asarray(uniques, dtype=object))
    return np.where(codes >= 0, valid[np.maximum(codes, 0)] if len(valid) else False, False)


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
    digest = hmac.new(key, student_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def pseudonyms(values: np.ndarray | Iterable[str], key: bytes) -> np.ndarray:
    """Pseudonyms of many IDs, hashing each distinct ID once (missing IDs hash as "").

    Returns
    -------
    keys : ndarray of int64, shape (n,)
    """
    series = pd.Series(np.asarray(values, dtype=object)).fillna("")
    codes, uniques = pd.factorize(series)
    hashed = np.fromiter((pseudonym(str(u), key) for u in uniques), dtype=np.int64, count=len(uniques))
    return hashed[codes]


def masked_id(student_id: str) -> str:
    """Display hint a teacher can recognise: all but the last four characters masked."""
    if not isinstance(student_id, str) or len(student_id) < 4:
        return "•" * 9
    return "•" * (len(student_id) - 4) + student_id[-4:]
