"""The online feature path of the scoring service: one builder per validated folder, many calls.

:class:`OnlineFeatureBuilder` loads what every call shares once: the schools and
the calendar (as in-memory DuckDB tables, with each school's days cached as they
are asked for), the past dropout rates of each term asked for (cached), the
payload rules, and the feature plan of each ``as_of``.

A payload takes one of two ways, both giving batch's vector and leaving out the same
records by the same rules:

- **fast** (nearly every payload, bad records and all):
  :class:`risk.online.payload_fast.CleanPayloads` checks every record in one pass
  of plain Python, leaving out the bad ones with their rule, and
  :class:`risk.online.rowwise.RowEvaluator` computes the catalog on the valid
  ones' arrays (a few milliseconds, where the way below costs ~100 ms however small
  the payload);
- **full**: the rare payload the fast pass cannot be sure of (padded text, a date
  Arrow might read, records of another student: see its module docstring) is
  checked as batch checks it (:mod:`risk.online.payload`: bad records left out,
  each with its rule), its valid records registered on this thread's cursor and
  the SQL plan of :func:`risk.features.build.feature_plan` run as one statement for
  all such payloads of a call.

Only the fallbacks the design expects send a payload the full way (a
:class:`~risk.online.payload_fast.Deferred` of the fast checks, a
:class:`~risk.online.rowwise.NeedsSql` of the evaluator); each is counted and
logged by reason (:mod:`risk.online.fallbacks`). Any other exception of the fast
way is a bug and propagates.

The service calls it from a thread pool: DuckDB cursors are not shared between
threads, and DuckDB releases the GIL while a query runs.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from risk.config import Settings
from risk.data.contract import term_start
from risk.data.schemas import References
from risk.data.validate import WINDOW_AFTER, WINDOW_BEFORE
from risk.data.versions import schools_in_force
from risk.errors import ContractError
from risk.features.base import AsOf
from risk.features.build import FeaturePlan, feature_plan
from risk.features.catalog import Catalog
from risk.features.context_rates import open_validated
from risk.features.sources import REFERENCE_TABLES, STUDENT_TABLES, connect
from risk.logs import get_logger
from risk.online.fallbacks import fell_back
from risk.online.payload import CheckedBatch, CheckedPayload, PayloadRules, Rejected
from risk.online.payload_fast import CleanPayloads, Deferred
from risk.online.rowwise import NeedsSql, RowEvaluator, RowReferences

__all__ = ["DisplayHint", "OnlineFeatureBuilder", "OnlineFeatures"]

log = get_logger(__name__)


@dataclass(frozen=True)
class DisplayHint:
    """What a teacher recognises a student by (never the whole ID): enrollment of the term of ``as_of``."""

    id_hint: str
    grade_level: str
    classroom: str | None
    sex: str | None
    school_id: str


@dataclass(frozen=True)
class OnlineFeatures:
    """One student's feature vector at ``as_of``.

    ``values`` has shape (n_features,), float64, NaN where data is missing, in
    the order of ``names`` (the catalog's enabled features). ``rejected`` lists
    the payload records left out, with their rule.
    """

    student_key: int
    as_of: dt.date
    term: str
    school_id: str
    names: tuple[str, ...]
    values: np.ndarray
    hint: DisplayHint
    rejected: tuple[Rejected, ...]


class OnlineFeatureBuilder:
    """Feature vectors of single students from payloads, against one validated folder and catalog.

    Create it with :meth:`load` once (the service keeps it); :meth:`features` is
    safe to call from many threads at once.
    """

    def __init__(self, *, con: duckdb.DuckDBPyConnection, rules: PayloadRules, catalog: Catalog,
                 validated: Path, settings: Settings, key: bytes) -> None:
        self.con = con
        self.rules = rules
        self.catalog = catalog
        self.validated = validated
        self.settings = settings
        self.key = key
        self._lock = threading.Lock()
        self._local = threading.local()
        self._plans: dict[dt.date, FeaturePlan] = {}
        self._rates: set[str] = set()
        self._calendars: dict[str, dict[str, np.ndarray]] = {}  # school → term → its open days, sorted
        self._rate_maps: dict[str, dict[str, tuple[float, float]]] = {}
        self._evaluators: dict[dt.date, RowEvaluator] = {}
        self._schools = {row["school_id"]: row for row in con.execute("SELECT * FROM ref_schools").df().to_dict("records")}
        self.clean = CleanPayloads(rules.refs, self._calendar)
        self.references = RowReferences(school=self._schools.get, calendar=self._calendar, rates=self._rate_map)

    @classmethod
    def load(cls, validated: Path, *, catalog: Catalog, settings: Settings, key: bytes) -> OnlineFeatureBuilder:
        """Read the reference tables of ``validated`` into memory and build the payload rules."""
        for name in REFERENCE_TABLES:
            if not any((validated / name).glob("*.parquet")):
                raise ContractError(f"{validated / name} holds no validated {name}: run `risk validate` first")
        con = connect(threads=1, memory_limit=settings.data.duckdb_memory_limit)
        # Calendar rows sorted by school: a call reads its schools' row groups only.
        con.execute("SET preserve_insertion_order = true")
        # One row per school, its latest version: the service scores the present.
        schools = schools_in_force(sorted((validated / "schools").glob("*.parquet")))
        con.execute(f"CREATE TABLE ref_schools AS {schools}")
        con.execute(f"CREATE TABLE ref_calendar AS SELECT * FROM read_parquet('{validated}/calendar/*.parquet') "
                    "ORDER BY school_id, date")
        con.execute("SET preserve_insertion_order = false")
        span = con.execute("SELECT min(date), max(date) FROM ref_calendar").fetchone()
        refs = References(
            school_ids=frozenset(r[0] for r in con.execute("SELECT school_id FROM ref_schools").fetchall()),
            terms=frozenset(r[0] for r in con.execute("SELECT DISTINCT term FROM ref_calendar").fetchall()),
            window=(span[0] - WINDOW_BEFORE, span[1] + WINDOW_AFTER) if span[0] else None,
        )
        builder = cls(con=con, rules=PayloadRules(refs, lambda _: np.empty(0, np.int64)), catalog=catalog,
                      validated=validated, settings=settings, key=key)
        builder.rules.school_days = builder._school_days
        return builder

    def features(self, tables: dict[str, list[dict[str, Any]]], as_of: dt.date) -> OnlineFeatures:
        """The feature vector of the student in ``tables`` at ``as_of``.

        Raises ContractError when nothing scorable is left: no valid enrollment,
        the student not enrolled at ``as_of``, or records of several students.
        """
        (result,) = self.features_many([tables], as_of)
        if isinstance(result, ContractError):
            raise result
        return result

    def features_many(self, payloads: Sequence[Mapping[str, list[dict[str, Any]]]], as_of: dt.date, *,
                      fast: bool = True) -> list[OnlineFeatures | ContractError]:
        """The feature vectors of many students' payloads at ``as_of``.

        Clean payloads take the fast way (see the module docstring; ``fast=False``
        sends every payload the full way, as the parity tests compare). The rest
        are checked together, one pass per table (:meth:`PayloadRules.check_many`;
        each payload's bad records left out with their rule); their valid records
        are registered together and the plan runs once. Features are per student,
        so a student's vector does not depend on who shares the call; two payloads
        of the same student go to separate statements.

        Returns one item per payload, in order: its features, or the ContractError
        saying why nothing of it can be scored.
        """
        out: list[Any] = self.features_fast(payloads, as_of) if fast else [None] * len(payloads)
        full = [i for i, item in enumerate(out) if item is None or isinstance(item, Deferred)]
        if full:
            for i, result in zip(full, self.features_full([payloads[i] for i in full], as_of), strict=True):
                out[i] = result
        return out  # type: ignore[return-value]

    def features_fast(self, payloads: Sequence[Mapping[str, Any]],
                      as_of: dt.date) -> list[OnlineFeatures | ContractError | Deferred]:
        """The fast way alone: per payload its features (or why it has none), or why the full way must decide."""
        point = AsOf(as_of)
        return [self._fast(payload, point) for payload in payloads]

    def _fast(self, payload: Mapping[str, Any], point: AsOf) -> OnlineFeatures | ContractError | Deferred:
        """The payload's features by the fast way (or why it has none), or why it must take the full way."""
        checked = self.clean.check(payload, self.key)
        if isinstance(checked, Deferred):
            fell_back(checked.reason)
            return checked
        try:
            found = self._evaluator(point).evaluate(checked.records)
        except NeedsSql as exc:  # the one case the evaluator leaves to SQL; any other exception is a bug
            fell_back(exc.reason)
            return Deferred(exc.reason)
        if found is None:
            return ContractError(f"the student is not enrolled at {point.date} (term {point.term}): nothing to score")
        cohort, values = found
        hint = DisplayHint(checked.id_hint, str(cohort["grade_level"]), _text(cohort.get("classroom")),
                           _text(cohort["sex"]), str(cohort["school_id"]))
        return OnlineFeatures(checked.student_key, point.date, str(cohort["term"]), str(cohort["school_id"]),
                              tuple(self.catalog.names), values, hint, checked.rejected)

    def features_full(self, payloads: Sequence[Mapping[str, list[dict[str, Any]]]],
                      as_of: dt.date) -> list[OnlineFeatures | ContractError]:
        """The full way: batch's checks, then the SQL plan as one statement for all the payloads' valid records."""
        point = AsOf(as_of)
        out: list[OnlineFeatures | ContractError | CheckedPayload] = list(self.rules.check_many(payloads, self.key))
        batches: dict[int, tuple[CheckedBatch, list[int]]] = {}
        for i, item in enumerate(out):
            if isinstance(item, CheckedPayload):
                batches.setdefault(id(item.batch), (item.batch, []))[1].append(i)
        for batch, members in batches.values():
            rows = self._rows(point, batch)
            hints = _hints(batch.frames["enrollments"], point.term)
            for i in members:
                out[i] = self._result(out[i], rows.get(out[i].student_key), hints, point)
        return out  # type: ignore[return-value]

    def _evaluator(self, point: AsOf) -> RowEvaluator:
        evaluator = self._evaluators.get(point.date)
        if evaluator is None:
            evaluator = RowEvaluator(self.catalog, point, self.references)
            with self._lock:
                if len(self._evaluators) > 64:  # a service asks about today; old dates need not stay
                    self._evaluators.clear()
                self._evaluators[point.date] = evaluator
        return evaluator

    def _rows(self, point: AsOf, batch: CheckedBatch) -> dict[int, tuple]:
        """The plan's row of each student of ``batch`` (students enrolled at ``point`` only)."""
        cursor = self._cursor()
        for name in STUDENT_TABLES:
            cursor.register(name, pa.Table.from_pandas(batch.frames[name], preserve_index=False))
        return {row[0]: row for row in cursor.execute(self._statement(cursor, point)).fetchall()}

    def _statement(self, cursor: duckdb.DuckDBPyConnection, point: AsOf) -> duckdb.Statement:
        """The plan of ``point`` parsed once per thread (parsing the ~18 KB statement cost ~12 ms a call).

        The text is the same for every call of a date: the calendar is cut to the
        batch's schools by a subquery, not a literal list. A parsed statement is
        bound afresh by each execute, so it reads the views registered for this call.
        (Not PREPARE: a prepared plan may keep reading the Arrow tables registered
        when it was bound.)
        """
        parsed: dict[dt.date, duckdb.Statement] = self._local.parsed
        statement = parsed.get(point.date)
        if statement is None:
            if len(parsed) >= 16:  # a service asks about today; old dates need not stay
                parsed.clear()
            (statement,) = cursor.extract_statements(self._plan(point).as_one_statement((
                ("schools", "SELECT * FROM ref_schools"),
                ("calendar", "SELECT * FROM ref_calendar WHERE school_id IN (SELECT school_id FROM enrollments)"),
                ("context_rates", f"SELECT * FROM {self._rates_table(point)}"),
            )))
            parsed[point.date] = statement
        return statement

    def _result(self, checked: CheckedPayload, row: tuple | None, hints: Mapping[int, DisplayHint],
                point: AsOf) -> OnlineFeatures | ContractError:
        if row is None:
            return ContractError(f"the student is not enrolled at {point.date} (term {point.term}): nothing to score")
        values = np.array([np.nan if v is None else v for v in row[4:]], dtype=np.float64)
        return OnlineFeatures(checked.student_key, point.date, row[2], row[3], tuple(self.catalog.names), values,
                              hints[checked.student_key], checked.rejected)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor: its registered payload views and parsed plans are its own."""
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._local.cursor = self.con.cursor()
            self._local.parsed = {}
        return cursor

    def _plan(self, point: AsOf) -> FeaturePlan:
        plan = self._plans.get(point.date)
        if plan is None:
            plan = feature_plan(point, self.catalog)
            with self._lock:
                if len(self._plans) > 64:  # a service asks about today; old dates need not stay
                    self._plans.clear()
                self._plans[point.date] = plan
        return plan

    def _rates_table(self, point: AsOf) -> str:
        """The past dropout rates for the term of ``point``, as a table (computed or read from cache once)."""
        name = "ref_rates_" + point.term.replace("-", "_")
        if name in self._rates:
            return name
        with self._lock:
            if name not in self._rates:
                source = open_validated(self.validated, point, self.settings, threads=1)
                rates = source.execute("SELECT * FROM context_rates").df()
                source.close()
                self.con.register("_rates", rates)
                self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _rates")
                self.con.unregister("_rates")
                self._rates.add(name)
                log.info("context rates loaded", term=point.term, schools=len(rates))
        return name

    def _school_days(self, schools: list[str]) -> np.ndarray:
        """Open days of ``schools`` as the validator codes them (school_code * 100_000 + days since 1970)."""
        codes = [int(school) * 100_000 + np.concatenate([_NO_DAYS, *self._terms_of(school).values()]).astype(np.int64)
                 for school in schools]
        return np.concatenate(codes) if codes else np.empty(0, np.int64)

    def _terms_of(self, school: str) -> dict[str, np.ndarray]:
        """The school's open days by term, sorted (``datetime64[D]``): read from the calendar once per school."""
        terms = self._calendars.get(school)
        if terms is None:
            days = self._cursor().execute("SELECT term, date FROM ref_calendar WHERE school_id = ? ORDER BY date",
                                          [school]).fetchnumpy()
            dates = np.asarray(days["date"]).astype("datetime64[D]")
            term_of = np.asarray(days["term"], dtype=object)
            terms = {t: dates[term_of == t] for t in set(term_of.tolist())}
            with self._lock:
                if len(self._calendars) > 50_000:
                    self._calendars.clear()
                self._calendars[school] = terms
        return terms

    def _calendar(self, school: str, term: str) -> np.ndarray:
        return self._terms_of(school).get(term, _NO_DAYS)

    def _rate_map(self, term: str) -> dict[str, tuple[float, float]]:
        """The past dropout rates of ``term`` by school: (school_rate, district_rate)."""
        rates = self._rate_maps.get(term)
        if rates is None:
            table = self._rates_table(AsOf(term_start(term)))
            rows = self._cursor().execute(f"SELECT school_id, school_rate, district_rate FROM {table}").fetchall()
            rates = {school: (_number(a), _number(b)) for school, a, b in rows}
            self._rate_maps[term] = rates
        return rates


_NO_DAYS = np.empty(0, dtype="datetime64[D]")


def _number(value: object) -> float:
    return np.nan if value is None else float(value)


def _hints(enrollments: pd.DataFrame, term: str) -> dict[int, DisplayHint]:
    """Each student's display hint from their first valid enrollment of ``term``."""
    now = enrollments[(enrollments["term"] == term).to_numpy()].drop_duplicates("student_key")
    return {int(key): DisplayHint(str(hint), str(grade), _text(room), _text(sex), str(school))
            for key, hint, grade, room, sex, school in zip(now["student_key"], now["id_hint"], now["grade_level"],
                                                           now["classroom"], now["sex"], now["school_id"], strict=True)}


def _text(value: object) -> str | None:
    return None if value is None or pd.isna(value) else str(value)
