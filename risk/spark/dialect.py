"""The feature SQL of :mod:`risk.features`, compiled for Spark SQL by explicit, named rewrites.

There is one definition of every feature: the DuckDB SQL the domain modules write
(:func:`risk.features.build.feature_plan`). Spark SQL 4 runs most of it as it is;
what it does not run, or runs with another meaning, is rewritten here, one named
rewrite per construct (:data:`REWRITES`), each tested on its own and all of them
held to DuckDB's numbers by the parity tests over every feature kind. Nothing is
left to a general translator's guess (sqlglot turns ``isodow`` Sunday-first).

A construct the rewrites do not know fails loudly (:func:`to_spark` checks that no
DuckDB-only spelling is left), so a new domain module cannot slip past unported.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from risk.errors import RiskError

__all__ = ["REWRITES", "SparkDialectError", "call_args", "rewrite_calls", "to_spark"]


class SparkDialectError(RiskError):
    """Feature SQL holds a construct the Spark rewrites do not know."""


def _scan(sql: str) -> list[tuple[int, str]]:
    """(position, character) of every character outside quoted text ('...' with '' escapes)."""
    out, quoted, i = [], False, 0
    while i < len(sql):
        ch = sql[i]
        if ch == "'":
            if quoted and i + 1 < len(sql) and sql[i + 1] == "'":
                i += 2
                continue
            quoted = not quoted
        elif not quoted:
            out.append((i, ch))
        i += 1
    return out


def _outside_quotes(sql: str) -> list[bool]:
    mask = [False] * len(sql)
    for i, _ in _scan(sql):
        mask[i] = True
    return mask


def _closing(sql: str, opening: int) -> int:
    """Index of the bracket closing the unquoted one at ``opening`` (round or square), quoted text skipped.

    Scans only the call itself, so rewriting every call of a large query stays linear in its length.
    """
    depth, quoted, i = 0, False, opening
    while i < len(sql):
        ch = sql[i]
        if quoted:
            if ch == "'" and i + 1 < len(sql) and sql[i + 1] == "'":
                i += 1  # '' is a quote inside quoted text
            elif ch == "'":
                quoted = False
        elif ch == "'":
            quoted = True
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise SparkDialectError(f"unbalanced brackets in feature SQL near: {sql[opening:opening + 60]!r}")


def call_args(inner: str) -> list[str]:
    """The top-level, comma-separated arguments of a call's inside (brackets and quotes respected)."""
    mask = _outside_quotes(inner)
    args, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        if not mask[i]:
            continue
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(inner[start:i].strip())
            start = i + 1
    args.append(inner[start:].strip())
    return [a for a in args if a]


def rewrite_calls(sql: str, name: str, rewrite: Callable[[list[str]], str]) -> str:
    """Every call ``name(...)`` (not in quotes, any case) replaced by ``rewrite(arguments)``, innermost first."""
    pattern = re.compile(rf"\b{re.escape(name)}\s*\(", re.IGNORECASE)
    mask = _outside_quotes(sql)
    starts = [m for m in pattern.finditer(sql) if mask[m.start()]]
    # From the last call back: a call's arguments (later in the text) are rewritten before it,
    # and text before a rewritten call keeps its positions (so ``mask`` still holds for each start).
    for match in reversed(starts):
        opening = match.end() - 1
        closing = _closing(sql, opening)
        sql = sql[:match.start()] + rewrite(call_args(sql[opening + 1:closing])) + sql[closing + 1:]
    return sql


def _list_items(literal: str) -> list[str]:
    literal = literal.strip()
    if not (literal.startswith("[") and literal.endswith("]")):
        raise SparkDialectError(f"expected a list literal [..], found {literal[:60]!r}")
    return call_args(literal[1:-1])


def list_position(sql: str) -> str:
    """``list_position([a, b], x)`` → ``nullif(array_position(array(a, b), x), 0)``.

    DuckDB gives NULL for a value not in the list; Spark's ``array_position`` gives 0.
    """
    def rewrite(args: list[str]) -> str:
        items, value = args
        return f"nullif(array_position(array({', '.join(_list_items(items))}), {value}), 0)"
    return rewrite_calls(sql, "list_position", rewrite)


def isodow(sql: str) -> str:
    """``isodow(d)`` (1 Monday … 7 Sunday) → ``((dayofweek(d) + 5) % 7) + 1`` (Spark's dayofweek is 1 Sunday)."""
    return rewrite_calls(sql, "isodow", lambda args: f"(((dayofweek({args[0]}) + 5) % 7) + 1)")


def date_diff(sql: str) -> str:
    """``date_diff('day', a, b)`` → ``datediff(b, a)`` (whole days from a to b; Spark puts the end first)."""
    def rewrite(args: list[str]) -> str:
        part, start, end = args
        if part.strip().lower() != "'day'":
            raise SparkDialectError(f"date_diff by {part} has no Spark rewrite (only 'day')")
        return f"datediff({end}, {start})"
    return rewrite_calls(sql, "date_diff", rewrite)


def map_literal(sql: str) -> str:
    """``map([k1, k2], [v1, v2])`` → ``map(k1, v1, k2, v2)`` (Spark's map takes keys and values in turn).

    Looking up a missing key gives NULL in both, with ANSI mode off (see :mod:`risk.spark.session`).
    """
    def rewrite(args: list[str]) -> str:
        if len(args) != 2 or not args[0].lstrip().startswith("["):
            return "map(" + ", ".join(args) + ")"  # already Spark's form
        keys, values = _list_items(args[0]), _list_items(args[1])
        if len(keys) != len(values):
            raise SparkDialectError("a map literal with unequal keys and values")
        return "map(" + ", ".join(f"{k}, {v}" for k, v in zip(keys, values, strict=True)) + ")"
    return rewrite_calls(sql, "map", rewrite)


_NUMBER = r"(?:\d+(?:\.\d+)?)"
_NAME = r"(?:[A-Za-z_][\w.]*)"


def power(sql: str) -> str:
    """``a ^ b`` → ``power(a, b)``: ``^`` is DuckDB's power and Spark's bitwise XOR.

    ``a`` is a bracketed expression, a name or a number; ``b`` a number or a name.
    """
    while True:
        mask = _outside_quotes(sql)
        carets = [i for i, ch in enumerate(sql) if ch == "^" and mask[i]]
        if not carets:
            return sql
        at = carets[0]
        right = re.match(rf"\s*({_NUMBER}|{_NAME})", sql[at + 1:])
        left_end = len(sql[:at].rstrip())
        if right is None or left_end == 0:
            raise SparkDialectError(f"cannot rewrite '^' near {sql[max(0, at - 40):at + 40]!r}")
        if sql[left_end - 1] == ")":
            left_start = _opening(sql, left_end - 1, mask)
        else:
            name = re.search(rf"({_NUMBER}|{_NAME})$", sql[:left_end])
            if name is None:
                raise SparkDialectError(f"cannot rewrite '^' near {sql[max(0, at - 40):at + 40]!r}")
            left_start = name.start()
        stop = at + 1 + right.end()
        sql = f"{sql[:left_start]}power({sql[left_start:left_end]}, {right.group(1)}){sql[stop:]}"


def _opening(sql: str, closing: int, mask: list[bool]) -> int:
    depth = 0
    for i in range(closing, -1, -1):
        if not mask[i]:
            continue
        if sql[i] == ")":
            depth += 1
        elif sql[i] == "(":
            depth -= 1
            if depth == 0:
                return i
    raise SparkDialectError("unbalanced brackets before '^'")


_DECIMAL = re.compile(r"(?<![\w.])(\d+\.\d+)(?![\w.])")


def double_literals(sql: str) -> str:
    """``1.0`` → ``1.0D``: Spark reads a decimal point as DECIMAL and keeps it through ``avg`` (10 features
    then differ in the 6th digit); DuckDB's averages and divisions run in DOUBLE."""
    mask = _outside_quotes(sql)
    return _DECIMAL.sub(lambda m: m.group(1) + "D" if mask[m.start()] else m.group(1), sql)


# In the order applied: calls first (their arguments may hold literals), the literals last.
REWRITES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("list_position", list_position),
    ("isodow", isodow),
    ("date_diff", date_diff),
    ("map_literal", map_literal),
    ("power", power),
    ("double_literals", double_literals),
)
# DuckDB spellings that must not survive the rewrites.
_LEFTOVERS = re.compile(r"\b(list_position|isodow|date_diff|list_contains|read_parquet|EXCLUDE|QUALIFY)\b|\^|\[",
                        re.IGNORECASE)


def _is_leftover(sql: str, match: re.Match) -> bool:
    """A ``[`` after a name or a closing bracket is a subscript, which both read alike; any other is a list."""
    if match.group(0) != "[":
        return True
    before = sql[:match.start()].rstrip()
    word = re.search(r"(\w+)$", before)
    if word and word.group(1).upper() in _KEYWORDS:
        return True
    return not before or not (before[-1].isalnum() or before[-1] in "_)]")


_KEYWORDS = frozenset({"SELECT", "AS", "IN", "THEN", "ELSE", "WHEN", "AND", "OR", "NOT", "BY", "ON", "IS", "CASE",
                       "WHERE", "HAVING", "DISTINCT", "RETURN"})


def to_spark(sql: str) -> str:
    """DuckDB feature SQL as Spark SQL; raises :class:`SparkDialectError` on a construct left unported.

    ``who_z`` stays as it is: :mod:`risk.spark.session` registers it as a vectorised pandas UDF.
    """
    for _, rewrite in REWRITES:
        sql = rewrite(sql)
    mask = _outside_quotes(sql)
    left = [m.group(0) for m in _LEFTOVERS.finditer(sql) if mask[m.start()] and _is_leftover(sql, m)]
    if left:
        raise SparkDialectError(f"feature SQL holds DuckDB-only {sorted(set(left))} with no Spark rewrite")
    return sql
