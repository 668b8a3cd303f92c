"""Synthetic student identifiers: unique Thai national IDs and DMC G-codes.

An ID is a pure function of a global counter, so chunks never collide and a run
is reproducible. The counter is scrambled by an affine bijection modulo 10^11
(10^12 for G-codes), which keeps IDs unique while making them look unordered.
Counter ranges are disjoint by purpose: enrolled students, orphan rows and
ghost enrollments (:data:`ORPHAN_BASE`, :data:`GHOST_BASE`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CHUNK_STRIDE", "GHOST_BASE", "ORPHAN_BASE", "broken_ids", "g_codes", "thai_ids"]

# Counter layout: chunk k owns [k * CHUNK_STRIDE, (k + 1) * CHUNK_STRIDE).
CHUNK_STRIDE = 10_000_000
ORPHAN_BASE = 50_000_000_000
GHOST_BASE = 60_000_000_000
_WEIGHTS = np.arange(13, 1, -1, dtype=np.int64)


def _scramble(counter: np.ndarray, modulus: int, a_hi: int, a_lo: int, shift: int) -> np.ndarray:
    """(counter * (a_hi * 10^6 + a_lo) + shift) mod modulus without int64 overflow."""
    c = counter.astype(np.int64) % modulus
    return ((c * a_hi) % modulus * 1_000_000 + c * a_lo + shift) % modulus


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers) % 10


def _as_text(codes: np.ndarray) -> np.ndarray:
    """(n, 13) array of code points → (n,) array of 13-character strings."""
    return np.ascontiguousarray(codes.astype(np.uint32)).view("U13").ravel()


def thai_ids(counter: np.ndarray, first_digit: np.ndarray) -> np.ndarray:
    """13-digit Thai IDs with a valid check digit, unique for distinct counters.

    Parameters
    ----------
    counter : int64 array of shape (n,), values in [0, 10^11)
    first_digit : int array of shape (n,), the ID's type digit (1 for most children)
    """
    body = _scramble(counter, 10**11, 79_193, 4_001, 31_415_926_535)
    digits = np.empty((counter.shape[0], 13), dtype=np.int64)
    digits[:, 0] = first_digit
    digits[:, 1:12] = _digits(body, 11)
    digits[:, 12] = (11 - (digits[:, :12] * _WEIGHTS).sum(axis=1) % 11) % 10
    return _as_text(digits + ord("0"))


def g_codes(counter: np.ndarray) -> np.ndarray:
    """DMC G-codes (``G`` + 12 digits) for students without Thai nationality."""
    body = _scramble(counter, 10**12, 61_357, 9_007, 271_828_182_845)
    codes = np.empty((counter.shape[0], 13), dtype=np.int64)
    codes[:, 0] = ord("G")
    codes[:, 1:] = _digits(body, 12) + ord("0")
    return _as_text(codes)


def broken_ids(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invalid versions of valid IDs: a wrong check digit (mostly), a dropped digit, or a letter typo.

    Every result fails :func:`risk.data.ids.valid_student_id_mask`.
    """
    n = ids.shape[0]
    codes = np.ascontiguousarray(ids.astype("U13")).view(np.uint32).reshape(n, 13).copy()
    how = rng.choice(3, size=n, p=[0.7, 0.15, 0.15])
    thai = codes[:, 0] != ord("G")
    # Wrong check digit for Thai IDs; for G-codes a lowercase g.
    check = codes[:, 12] - ord("0")
    wrong = (check + rng.integers(1, 10, size=n)) % 10 + ord("0")
    codes[:, 12] = np.where(thai & (how == 0), wrong, codes[:, 12])
    codes[:, 0] = np.where(~thai & (how == 0), ord("g"), codes[:, 0])
    # A letter O typed for a digit.
    pos = rng.integers(1, 12, size=n)
    rows = np.flatnonzero(how == 1)
    codes[rows, pos[rows]] = ord("O")
    out = _as_text(codes)
    # A dropped digit: 12 characters.
    short = how == 2
    out = out.astype(object)
    out[short] = np.array([s[:12] for s in out[short]], dtype=object)
    return out.astype(str)
