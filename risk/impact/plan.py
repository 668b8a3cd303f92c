"""A randomised wait-list pilot made from the data: ``risk pilot plan``'s work.

Reads the validated folder and the store, draws the plan with
:func:`risk.impact.design.assign_schools`, says what it can detect, and records it in the
store and MLflow. Steps:

1. :func:`pilot_population` — the schools in force at the pilot term's start that enrol
   students in it, with their strata columns and student counts (``size``).
2. :func:`past_baseline` — the dropout rate and school-level ICC of past terms (up to
   ``past_terms`` before the pilot term whose next term's register is in the data): among
   students *flagged* (at_risk or problem) by a finished scoring run of the term when the
   store holds scores of those terms (the pilot compares flagged students), else among all
   *enrolled* students (labels only), which the output says. The base rate comes from those
   terms of the pilot term's semester when there are any (dropout peaks at a year's end, the
   second semester), the ICC from all of them; the output names the terms.
3. :func:`plan_pilot` — the draw and its minimum detectable effect (nothing is written).
4. :func:`record_plan` — one MLflow run (params, metrics, the assignment as CSV of school
   ids and arms, no student data) and the plan in the store, which refuses a second plan
   for the term unless ``replace``.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from dataclasses import replace as with_changes
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from risk.data.contract import parse_term, term_start
from risk.errors import ConfigError, ContractError
from risk.features.sources import connect, view_validated
from risk.impact.design import (
    ALERT_NOW,
    WAIT_LIST,
    DetectableEffect,
    IccEstimate,
    assign_schools,
    icc_from_past_terms,
    minimum_detectable_effect,
)
from risk.labels import LabelPolicy, dropout_labels
from risk.models.tracking import TrackingError
from risk.store import (
    PilotExistsError,
    PlanRecord,
    Store,
    flagged_students,
    pilot_plan,
    write_pilot,
)

__all__ = ["PILOT_EXPERIMENT", "STRATA", "Baseline", "PilotPlanResult", "past_baseline", "pilot_population",
           "plan_lines", "plan_pilot", "record_plan", "semester_base_rate"]

PILOT_EXPERIMENT = "dropout-risk-pilots"
# What --stratify may name: the schools table's columns (in force at the term's start), and
# ``size``, the school's enrolled students in the term (bucketed into OBEC's size classes).
STRATA = {"province": "province_code", "district": "district_code", "region": "region", "area": "area",
          "affiliation": "affiliation"}


@dataclass(frozen=True)
class Baseline:
    """Past dropout of the students a pilot compares.

    ``basis`` is ``"flagged"`` (students at_risk or problem in a finished run of the term)
    or ``"enrolled"`` (every enrolled student: no scores of those terms are stored);
    ``flagged_share`` is the basis's share of the enrolled students with a known outcome
    (1.0 for ``enrolled``); ``base_rate`` is a proportion, from ``rate_terms``: the ``terms`` of the pilot
    term's semester, or all ``terms`` when none is (``same_semester`` says which).
    """

    basis: str
    terms: list[str]
    base_rate: float
    icc: IccEstimate
    flagged_share: float
    rate_terms: list[str] = field(default_factory=list)
    same_semester: bool = False


@dataclass(frozen=True)
class PilotPlanResult:
    """A drawn plan: the record to store, each school's arm, and what the plan can detect.

    ``assignment``: ``school_id``, ``arm``, ``stratum``. ``mde`` is None when no past term
    gives a base rate (``note`` says why).
    """

    record: PlanRecord
    assignment: pd.DataFrame
    population: pd.DataFrame
    baseline: Baseline | None
    mde: DetectableEffect | None
    note: str | None = None
    replaced: PlanRecord | None = None


def _terms_enrolled(con: duckdb.DuckDBPyConnection) -> list[str]:
    terms = [row[0] for row in con.execute("SELECT DISTINCT term FROM enrollments").fetchall()]
    return sorted(terms, key=parse_term)


def pilot_population(con: duckdb.DuckDBPyConnection, term: str) -> pd.DataFrame:
    """One row per school enrolling students in ``term``: ``school_id``, the :data:`STRATA` names, ``size``.

    ``con`` has views over the validated folder with ``schools`` in force at the term's
    start. ``size`` counts the school's enrolled students in the term. Raises ContractError
    when no student is enrolled in the term.
    """
    columns = ", ".join(f"s.{column} AS {name}" for name, column in STRATA.items())
    frame = con.execute(f"""
        SELECT s.school_id, {columns}, count(DISTINCT e.student_key) AS size
        FROM enrollments e JOIN schools s ON s.school_id = e.school_id
        WHERE e.term = $term GROUP BY ALL ORDER BY s.school_id""", {"term": term}).df()
    if frame.empty:
        known = ", ".join(_terms_enrolled(con)) or "none"
        raise ContractError(f"No student is enrolled in term {term} in the validated data (terms there: {known}); "
                            "validate the term's export first (risk validate, or risk term).")
    return frame


def _labelled(con: duckdb.DuckDBPyConnection, terms: list[str], policy: LabelPolicy) -> pd.DataFrame:
    """``term``, ``student_key``, ``school_id``, ``dropped_out`` (0/1) of students with a known outcome."""
    labels = pd.concat([dropout_labels(con, t, policy) for t in terms], ignore_index=True)
    con.register("_pilot_labels", labels.loc[labels["dropped_out"].notna(), ["term", "student_key", "dropped_out"]])
    try:
        # The school of the term's enrollment: a student has one per term (the contract's grain).
        frame = con.execute("""
            SELECT l.term, l.student_key, any_value(e.school_id) AS school_id,
                   CAST(any_value(l.dropped_out) AS BIGINT) AS dropped_out
            FROM _pilot_labels l JOIN enrollments e ON e.student_key = l.student_key AND e.term = l.term
            GROUP BY l.term, l.student_key""").df()
    finally:
        con.unregister("_pilot_labels")
    return frame.astype({"student_key": "int64", "dropped_out": "int64"})


def past_baseline(con: duckdb.DuckDBPyConnection, store: Store, term: str, policy: LabelPolicy,
                  past_terms: int = 4) -> Baseline | None:
    """Base rate and ICC from up to ``past_terms`` terms before ``term`` (see the module docstring).

    None when no earlier term has a known outcome (its next term's register is not in the data).
    """
    earlier = [t for t in _terms_enrolled(con) if parse_term(t) < parse_term(term)][-past_terms:]
    labelled = _labelled(con, earlier, policy) if earlier else pd.DataFrame()
    if labelled.empty:
        return None
    flagged = flagged_students(store, sorted(set(labelled["term"])))
    basis, share, outcomes = "enrolled", 1.0, labelled
    if len(flagged):
        scored = labelled[labelled["term"].isin(set(flagged["term"]))]
        outcomes = scored.merge(flagged[["term", "student_key"]], on=["term", "student_key"])
        basis, share = "flagged", len(outcomes) / len(scored)
    if outcomes.empty:
        return None
    rate, rate_terms, same = semester_base_rate(outcomes, term)
    return Baseline(basis=basis, terms=sorted(set(outcomes["term"]), key=parse_term), base_rate=rate,
                    icc=icc_from_past_terms(outcomes[["school_id", "term", "dropped_out"]]), flagged_share=share,
                    rate_terms=rate_terms, same_semester=same)


def semester_base_rate(outcomes: pd.DataFrame, term: str) -> tuple[float, list[str], bool]:
    """Past dropout (proportion) of the rows of ``outcomes`` (``term``, ``dropped_out`` 0/1) in ``term``'s semester,
    the terms it came from, and True; with no row of that semester, of all rows, all their terms, and False.

    A semester's dropout is its own: most children leave at a school year's end (semester 2), few mid-year.
    """
    semester = parse_term(term)[1]
    same = outcomes[[parse_term(t)[1] == semester for t in outcomes["term"]]]
    rated = same if len(same) else outcomes
    return float(rated["dropped_out"].mean()), sorted(set(rated["term"]), key=parse_term), bool(len(same))


def _detectable(population: pd.DataFrame, baseline: Baseline | None, share: float,
                power: float) -> tuple[DetectableEffect | None, str | None]:
    """The plan's MDE, or None and why not."""
    if baseline is None:
        return None, "no term before the pilot term has a known outcome (its next term's register) in the data"
    if not 0.0 < baseline.base_rate < 1.0:
        return None, f"the past dropout rate of {baseline.basis} students is {baseline.base_rate:.0%}"
    students = population["size"].to_numpy(dtype=float) * baseline.flagged_share
    icc = min(baseline.icc.icc, 0.999) if not math.isnan(baseline.icc.icc) else 0.0
    return minimum_detectable_effect(len(population), students, share, baseline.base_rate, icc, power=power), None


def plan_pilot(store: Store, validated: Path, *, term: str, share: float, strata: list[str], seed: int,
               policy: LabelPolicy, replace: bool = False, past_terms: int = 4, power: float = 0.8) -> PilotPlanResult:
    """Draw the pilot of ``term`` from the validated folder and the store; nothing is written.

    Raises PilotExistsError (before any work) when the term has a plan and ``replace`` is false;
    ConfigError for a bad term, share or stratum; ContractError when the term has no students.
    """
    try:
        parse_term(term)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not 0.0 < share < 1.0:
        raise ConfigError(f"share must be between 0 and 1 (exclusive), got {share}")
    unknown = [name for name in strata if name not in STRATA and name != "size"]
    if unknown:
        raise ConfigError(f"stratify: {unknown[0]!r} is not one of {', '.join([*STRATA, 'size'])}")
    standing = pilot_plan(store, term)
    if standing is not None and not replace:
        raise PilotExistsError.of(standing)
    con = connect()
    try:
        view_validated(con, validated, as_of=term_start(term))
        population = pilot_population(con, term)
        baseline = past_baseline(con, store, term, policy, past_terms)
    finally:
        con.close()
    assignment = assign_schools(population, share, strata, seed)
    mde, note = _detectable(population, baseline, share, power)
    record = PlanRecord(
        pilot_id=uuid.uuid4().hex, term=term, share=float(share), strata=list(strata), seed=int(seed),
        created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
        outcome_basis=None if baseline is None else baseline.basis,
        base_rate=None if baseline is None else baseline.base_rate, icc=None if baseline is None else baseline.icc.icc,
        mde_relative=None if mde is None or math.isnan(mde.relative_change) else mde.relative_change)
    return PilotPlanResult(record=record, assignment=assignment, population=population, baseline=baseline, mde=mde,
                           note=note, replaced=standing)


def _experiment_id(name: str, tracking_dir: Path) -> str:
    """The experiment's id; made with its artifacts under ``tracking_dir`` when MLflow is a local SQLite file."""
    client = MlflowClient()
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    local = mlflow.get_tracking_uri().startswith("sqlite:")
    return client.create_experiment(name, artifact_location=(tracking_dir.resolve() / "mlartifacts").as_uri()
                                    if local else None)


def record_plan(store: Store, result: PilotPlanResult, *, tracking_dir: Path, experiment: str = PILOT_EXPERIMENT,
                replace: bool = False) -> PilotPlanResult:
    """Log the plan as one MLflow run (tracking already configured), then store it with that run's id.

    Returns the result with ``record.mlflow_run_id`` set. A store refusal (PilotExistsError, a
    StoreError) ends the MLflow run as failed and propagates; nothing is stored then.
    """
    plan = result.record
    try:
        experiment_id = _experiment_id(experiment, tracking_dir)
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"pilot-{plan.term}") as run:
            mlflow.log_params({"term": plan.term, "share": plan.share, "strata": ",".join(plan.strata) or "none",
                               "seed": plan.seed, "pilot_id": plan.pilot_id, "n_schools": len(result.assignment)})
            mlflow.log_metrics(_metrics(result))
            mlflow.set_tags({"pilot_id": plan.pilot_id, "outcome_basis": plan.outcome_basis or "none",
                             "replaces": result.replaced.pilot_id if result.replaced else ""})
            # School ids, arms and strata only: nothing about any student.
            mlflow.log_text(result.assignment[["school_id", "arm", "stratum"]].to_csv(index=False), "assignment.csv")
            recorded = with_changes(plan, mlflow_run_id=run.info.run_id)
            write_pilot(store, recorded, result.assignment, replace=replace)
    except MlflowException as exc:
        raise TrackingError(f"MLflow at {mlflow.get_tracking_uri()} cannot record the plan: {exc.message}") from exc
    return with_changes(result, record=recorded)


def _metrics(result: PilotPlanResult) -> dict[str, float]:
    arms = result.assignment["arm"].value_counts()
    metrics = {"n_alert_now": float(arms.get(ALERT_NOW, 0)), "n_wait_list": float(arms.get(WAIT_LIST, 0)),
               "students": float(result.population["size"].sum())}
    if result.baseline is not None:
        metrics |= {"base_rate": result.baseline.base_rate, "icc": result.baseline.icc.icc}
    if result.mde is not None and not math.isnan(result.mde.relative_change):
        metrics |= {"mde_relative": result.mde.relative_change, "mde_absolute": result.mde.absolute_change,
                    "design_effect": result.mde.design_effect, "power": result.mde.power}
    return metrics


def plan_lines(result: PilotPlanResult) -> list[str]:
    """What ``risk pilot plan`` prints: the draw, where the baseline came from, and the MDE."""
    plan, arms = result.record, result.assignment["arm"].value_counts()
    strata = ", ".join(plan.strata) or "none"
    lines = [f"pilot {plan.pilot_id}: term {plan.term}, {len(result.assignment):,} schools "
             f"({int(result.population['size'].sum()):,} students): {arms.get(ALERT_NOW, 0):,} alert now, "
             f"{arms.get(WAIT_LIST, 0):,} wait-list (alerts from the next term); share {plan.share:g}, "
             f"strata {strata} ({result.assignment['stratum'].nunique():,}), seed {plan.seed}"]
    if result.replaced is not None:
        lines.append(f"replaces pilot {result.replaced.pilot_id} (seed {result.replaced.seed}), kept as replaced")
    lines += _baseline_lines(result.baseline)
    lines.append(_mde_line(result))
    return lines


def _baseline_lines(baseline: Baseline | None) -> list[str]:
    if baseline is None:
        return []
    whom = ("flagged (at-risk or problem) students' dropout, from the scores stored for past terms"
            if baseline.basis == "flagged" else
            "all enrolled students' dropout, from the labels (no scores are stored for past terms)")
    icc = baseline.icc
    rate_terms = ", ".join(baseline.rate_terms or baseline.terms)
    which = ("the pilot term's semester" if baseline.same_semester
             else "no past term of the pilot term's semester, so all of them")
    return [f"base rate and ICC from {whom}: terms {', '.join(baseline.terms)}, {icc.n_students:,} students in "
            f"{icc.n_schools:,} schools; base rate {baseline.base_rate:.1%} from terms {rate_terms} ({which}), "
            f"school-level ICC {icc.icc:.3f} from all"]


def _mde_line(result: PilotPlanResult) -> str:
    mde = result.mde
    if mde is None:
        return f"minimum detectable effect: not computed, {result.note}"
    if np.isnan(mde.relative_change):
        return (f"minimum detectable effect: none at {mde.power:.0%} power; even no dropout at all in alert schools "
                "would not be detected reliably with these schools")
    whom = "flagged students'" if result.baseline and result.baseline.basis == "flagged" else "enrolled students'"
    return (f"minimum detectable effect ({mde.power:.0%} power, {mde.alpha:.0%} two-sided): a fall of "
            f"{-mde.absolute_change * 100:.2f} percentage points in {whom} dropout ({mde.relative_change:+.0%} "
            f"relative, from {mde.base_rate:.1%}); ~{mde.mean_students:,.1f} such students per school, "
            f"design effect {mde.design_effect:.2f}")
