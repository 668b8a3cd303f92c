"""Continue a synthetic export by one term, with the help schools gave applied to its outcomes.

The closed loop: ``risk synth`` writes terms up to T (its truth holds T's dropout
probabilities but not T's outcome), ``risk term`` scores T and raises alerts,
schools act (:mod:`risk.data.synth.teachers`, or actions recorded in the store),
and :func:`continue_export` writes the export of terms up to T+1: the same world
rebuilt from the source's seed and shape (so every row before T's end is the
source's), T's end-of-term outcomes drawn with the planted relative effect of
each action applied (:mod:`risk.data.synth.help`), then T+1 by the generator's
own dynamics. With zero effect, or no actions, it is exactly ``risk synth`` with
one more term.

``truth.parquet`` keeps the generator's columns (keyed by the generator's own
student ID, as it always was) and adds, on term T's rows: ``p_dropout_untreated``,
``p_dropout_treated``, ``dropped_out_untreated``, ``dropped_out_treated`` (the
potential outcomes under one shared draw), ``alerted``, ``arm``, ``acted``,
``action`` (the code taken; for an alerted child not acted on, the one the reasons
suggested, to which the ``treated`` columns then refer) and ``planted_effect``.
``p_dropout`` and ``dropped_out`` are what happened. ``continue_report.json`` holds
the planted effects and the counts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from risk.data.contract import next_term, term_window
from risk.data.ids import pseudonyms
from risk.data.synth.config import SynthConfig
from risk.data.synth.engine import generate
from risk.data.synth.help import HelpHook
from risk.data.synth.report import SynthReport
from risk.data.synth.teachers import LoopError, TeacherModel, act_on_alerts, term_alerts
from risk.store import Store, pilot_arms, stored_actions

__all__ = ["ContinueReport", "LoopError", "combined_effect", "continue_export", "parse_effects", "plan_from_actions",
           "plan_from_alerts", "source_report"]

TRUTH_COLUMNS = ("alerted", "arm", "acted", "action", "planted_effect", "p_dropout_untreated", "p_dropout_treated",
                 "dropped_out_untreated", "dropped_out_treated")
# Stream purpose of the loop (teachers' choices); the help's draws have their own (help.HELP_STREAM).
LOOP_STREAM = 7


@dataclass(frozen=True)
class ContinueReport:
    """What :func:`continue_export` did: the term helped, the next one written, effects and counts."""

    source: str
    term: str
    next_term: str
    effects: dict[str, float]
    alerted: int
    acted: int
    acted_by_action: dict[str, int]
    dropouts_untreated: int  # among the acted-on students, in term ``term``
    dropouts_treated: int

    def summary_lines(self) -> list[str]:
        codes = ", ".join(f"{c} {n:,}" for c, n in sorted(self.acted_by_action.items())) or "none"
        return [f"continued {self.source} from {self.term} to {self.next_term}: {self.alerted:,} alerted, "
                f"{self.acted:,} helped ({codes})",
                f"planted effects: {self.effects or 'none'}; dropouts among the helped: {self.dropouts_untreated:,} "
                f"without help, {self.dropouts_treated:,} with it"]


def parse_effects(text: str) -> dict[str, float]:
    """``"home_visit=-0.3,learning_support=-0.2"`` -> ``{"home_visit": -0.3, ...}``; LoopError on bad input."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        code, sep, value = part.partition("=")
        try:
            effect = float(value)
        except ValueError:
            effect = float("nan")
        if not sep or not code.strip() or not -1.0 <= effect <= 1.0:
            raise LoopError(f"--effect {part!r} is not CODE=EFFECT with EFFECT a relative change from -1 to 1 "
                             "(home_visit=-0.3: a third less likely to drop out)")
        out[code.strip()] = effect
    return out


def combined_effect(codes: list[str], effects: dict[str, float]) -> float:
    """The relative effect of several actions together: the factors multiply (an unplanted code: 0)."""
    return float(np.prod([1.0 + effects.get(c, 0.0) for c in codes]) - 1.0)


def source_report(source: Path) -> SynthReport:
    """The run report of a synthetic export (``synth_report.json``); LoopError when it is not one."""
    path = Path(source) / "synth_report.json"
    if not path.is_file() or not (Path(source) / "truth.parquet").is_file():
        raise LoopError(f"{source} is not an export written by risk synth (no synth_report.json and truth.parquet)")
    return SynthReport.model_validate_json(path.read_text(encoding="utf-8"))


def continue_export(source: Path, out: Path, *, help_plan: pd.DataFrame, effects: dict[str, float], key: bytes,
                    seed: int, config: SynthConfig, progress: bool = False) -> ContinueReport:
    """Write ``out``: the export of ``source`` continued by one term, the help of ``help_plan`` applied.

    Parameters
    ----------
    source : an export written by ``risk synth`` (clean style), with its truth
    out : a new folder (not ``source``); rewritten like ``risk synth`` rewrites its folder
    help_plan : one row per alerted or helped student of the source's last term: student_key
        (pseudonym under ``key``), code (str: the action, or several joined by ``+``; "" none), acted (bool),
        and optionally arm and alerted (default True). As :func:`risk.data.synth.teachers.act_on_alerts` returns, or actions
        read back from a store.
    effects : planted relative effect per action code (a code not named: 0)
    key : the pseudonym key the store was filled with
    seed : the loop's seed (the help's draws); the world's seed is the source's
    config : the generator settings the source was written with
    """
    src = source_report(source)
    if Path(out).resolve() == Path(source).resolve():
        raise LoopError("--out must be another folder than the source (the source stays as it was)")
    term = src.terms[-1]
    plan = _plan_by_student(Path(source), term, help_plan, effects, key)
    hook = HelpHook(term, plan, [src.seed, seed], config)
    generate(Path(out), students=src.students, terms=len(src.terms) + 1, seed=src.seed, config=config,
             last_term=next_term(term), progress=progress, hook=hook)
    potential = hook.potential_outcomes()
    _check_same_world(Path(source), term, potential)
    _write_truth(Path(out), term, potential.merge(plan, on="student_id", how="left"))
    report = _report(str(source), term, plan, potential, effects)
    (Path(out) / "continue_report.json").write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    return report


def plan_from_alerts(source: Path, store: Store, *, key: bytes, model: TeacherModel, action_texts: dict[str, str],
                     seed: int, arms: dict[str, str] | None = None) -> pd.DataFrame:
    """The teacher model's help for the alerts the store holds for the source's last term (see
    :func:`risk.data.synth.teachers.act_on_alerts`; the selection reads the source's hidden truth).
    ``arms``: school_id -> arm; default: the term's pilot plan in the store (wait-list schools never act)."""
    src = source_report(source)
    term = src.terms[-1]
    truth = pq.read_table(Path(source) / "truth.parquet", columns=["student_id", "term", "p_dropout"],
                          filters=[("term", "=", term)]).to_pandas()
    risk = pd.Series(truth["p_dropout"].to_numpy(), index=pseudonyms(truth["student_id"].to_numpy(), key))
    rng = np.random.default_rng([src.seed, LOOP_STREAM, seed])
    return act_on_alerts(term_alerts(store, term), risk, action_texts, term, model, rng,
                         _arms(store, term, arms))


def plan_from_actions(source: Path, store: Store, *, arms: dict[str, str] | None = None) -> pd.DataFrame:
    """The actions the store holds dated inside the source's last term (acted on), and the term's alerted
    students without one (not acted on, no action: their ``treated`` outcome is their own), as a help plan."""
    term = source_report(source).terms[-1]
    first, last = term_window(term)
    taken = stored_actions(store, since=first)
    taken = taken[pd.to_datetime(taken["acted_on"]).dt.date <= last] if len(taken) else taken
    alerts = term_alerts(store, term)
    acted = pd.DataFrame({"student_key": taken.get("student_key", pd.Series([], dtype="int64")).astype("int64"),
                          "school_id": taken.get("school_id", pd.Series([], dtype=str)),
                          "code": taken.get("code", pd.Series([], dtype=str)), "acted": True})
    acted["alerted"] = acted["student_key"].isin(alerts["student_key"])
    idle = alerts.loc[~alerts["student_key"].isin(acted["student_key"]), ["student_key", "school_id"]]
    plan = pd.concat([acted, idle.assign(code="", acted=False, alerted=True)], ignore_index=True)
    return plan.assign(arm=plan["school_id"].map(_arms(store, term, arms) or {}))


def _arms(store: Store, term: str, arms: dict[str, str] | None) -> dict[str, str] | None:
    """The arms given, else those of the term's pilot plan in the store; None when there is no pilot."""
    if arms is not None:
        return arms
    planned = pilot_arms(store, term)
    return dict(zip(planned["school_id"], planned["arm"], strict=True)) if len(planned) else None


def _plan_by_student(source: Path, term: str, help_plan: pd.DataFrame, effects: dict[str, float],
                     key: bytes) -> pd.DataFrame:
    """The help plan keyed by the generator's student ID, one row per student, with its combined effect."""
    ids = pq.read_table(source / "truth.parquet", columns=["student_id", "term"],
                        filters=[("term", "=", term)])["student_id"].to_pylist()
    by_key = pd.Series(ids, index=pseudonyms(np.asarray(ids, dtype=object), key))
    if help_plan.empty:
        return pd.DataFrame({"student_id": pd.Series([], dtype=str), "acted": pd.Series([], dtype=bool),
                             "arm": [], "action": pd.Series([], dtype=str), "effect": pd.Series([], dtype=float),
                             "alerted": pd.Series([], dtype=bool), "planted_effect": pd.Series([], dtype=float)})
    plan = help_plan.copy()
    plan["student_id"] = plan["student_key"].astype("int64").map(by_key)
    unknown = int(plan["student_id"].isna().sum())
    if unknown:
        raise LoopError(f"{unknown} students of the actions are not enrolled in {term} of the source (another "
                         "export, or another pseudonym key?)")
    plan = plan.assign(arm=plan.get("arm"), alerted=plan.get("alerted", True), acted=plan["acted"].astype(bool),
                       code=plan["code"].fillna("").astype(str))
    # A student acted on: the actions taken; else the one the reasons suggest (if any).
    plan = plan[plan["acted"] == plan.groupby("student_id")["acted"].transform("max")]
    plan = plan.groupby("student_id", sort=True).agg(
        acted=("acted", "max"), arm=("arm", "first"), alerted=("alerted", "max"),
        action=("code", lambda c: "+".join(sorted({x for v in c for x in v.split("+") if x}))))
    plan["effect"] = [combined_effect(a.split("+"), effects) if a else 0.0 for a in plan["action"]]
    plan["action"] = plan["action"].where(plan["action"] != "", None)
    return plan.reset_index().assign(planted_effect=lambda f: f["effect"])


def _check_same_world(source: Path, term: str, potential: pd.DataFrame) -> None:
    """The rebuilt term must be the source's: same students, same untreated probabilities."""
    before = pq.read_table(source / "truth.parquet", columns=["student_id", "term", "p_dropout"],
                           filters=[("term", "=", term)]).to_pandas().sort_values("student_id")
    again = potential.sort_values("student_id")
    same = (len(before) == len(again) and (before["student_id"].to_numpy() == again["student_id"].to_numpy()).all()
            and np.allclose(before["p_dropout"].to_numpy(), again["p_dropout_untreated"].to_numpy()))
    if not same:
        raise LoopError(f"rebuilding {source} did not give its term {term} back: was it written with these "
                         "generator settings (--config) by this version of risk synth?")


def _write_truth(out: Path, term: str, term_rows: pd.DataFrame) -> None:
    """Add the loop's columns to ``out/truth.parquet`` (null outside ``term``; on ``term``, every student)."""
    path = out / "truth.parquet"
    truth = pq.read_table(path)
    rows = term_rows.assign(term=term, alerted=term_rows["alerted"].fillna(False).astype(bool),
                            acted=term_rows["acted"].fillna(False).astype(bool),
                            planted_effect=term_rows["planted_effect"].fillna(0.0))
    keys = pd.DataFrame({"student_id": truth["student_id"].to_pylist(), "term": truth["term"].to_pylist()})
    joined = keys.merge(rows[["student_id", "term", *TRUTH_COLUMNS]], on=["student_id", "term"], how="left")
    schema = {"alerted": pa.bool_(), "arm": pa.string(), "acted": pa.bool_(), "action": pa.string()}
    for name in TRUTH_COLUMNS:
        values = joined[name].astype(object).where(joined[name].notna(), None).tolist()
        kind = schema.get(name, pa.bool_() if name.startswith("dropped") else pa.float64())
        truth = truth.append_column(name, pa.array(values, type=kind))
    pq.write_table(truth, path, compression="zstd")


def _report(source: str, term: str, plan: pd.DataFrame, potential: pd.DataFrame,
            effects: dict[str, float]) -> ContinueReport:
    acted = plan[plan["acted"].astype(bool)]
    helped = potential[potential["student_id"].isin(acted["student_id"])]
    return ContinueReport(
        source=source, term=term, next_term=next_term(term), effects=effects, alerted=int(plan["alerted"].sum()),
        acted=len(acted), acted_by_action={str(k): int(v) for k, v in acted["action"].value_counts().items()},
        dropouts_untreated=int(helped["dropped_out_untreated"].sum()),
        dropouts_treated=int(helped["dropped_out_treated"].sum()))
