"""Honesty of ``risk impact`` over many seeds of the REAL closed loop (issue 30's acceptance).

Unlike ``bench_impact.py`` (a light simulator), every seed here runs the engine itself:

Built once (nothing in it depends on the seed), timed, under ``BENCH_DATA``:
``risk synth`` of a world (``--students``, ``--students-per-school`` sets how many
schools), ``risk split-export``, ``risk validate`` of the early terms, ``risk term`` of
the term before the pilot (so past flagged students' dropout and ICC are known to the
plan), and ``risk term`` of the pilot term (validate, features, train, promote, score,
alerts). Scores and alerts do not depend on the plan: both arms are scored and their
alerts stored alike, and the wait-list hides alerts only when they are read
(:mod:`risk.store.pilot`), so the pilot term is scored once, not once a seed.

Per seed, on copies of the store and the validated folder, with the functions the CLI
calls: ``risk pilot plan --seed s`` (:func:`risk.impact.plan.plan_pilot`, stored without
MLflow); the teacher model acting on the alerts alert-now schools were shown and
``risk synth --continue ... --seed s`` (:func:`plan_from_alerts`,
:func:`continue_export`), ``risk actions import`` of the actions it took; ``risk
split-export`` and ``risk validate`` (CLI) of the next term; ``risk impact``
(:func:`term_outcomes`, :func:`estimate_impact`). The truth comes from the next
export's ``truth.parquet``:

* **ITT**: over the alert-now arm's flagged students (with a known outcome), the mean of
  ``acted · (p_dropout_treated − p_dropout_untreated)``: the change the alerts made in their
  dropout probability (the wait-list arm's would-be actions are never drawn; randomisation
  makes the alert arm's mean an unbiased stand-in for all flagged students'). Relative: over
  their mean ``p_dropout_untreated``.
* **IV**: the same mean over flagged students of alert-now schools that acted.
* **per action** c: over the students the per-action estimate uses (flagged, alert-now, asked for help),
  the mean of ``effect_c · p`` where ``p`` is the probability without c, the rest as it was.

Three scenarios, the same seeds: ``make demo-pilot``'s planted effects (``--effect``), a
strong effect on every action the alerts mostly suggest (``--strong-effect``: the demo's
effect changes so few flagged children's dropout that no pilot of this size could detect
it, so detection against predicted power is tested here), and zero effect. The teacher
model selects on each child's true risk (selection 1.0, as ``risk synth``'s default;
``--selection`` another, whose scenarios are named ``<name>-sel<value>``), so the naive
acted-vs-not difference is biased; printed beside AIPW's error, per action estimated. The AIPW
adjusts for the score and the features the pilot term was scored on (``risk impact`` given the
settings; ``--from-frames`` joins them to frames kept before the frame held them).
The predicted power is ``risk pilot plan``'s design (its past flagged base rate and ICC,
the schools' sizes times the flagged share) at the true relative ITT, averaged over seeds.

Usage::

    python bench/bench_pilot_loop.py                       # 20 seeds x 3 scenarios
    python bench/bench_pilot_loop.py --seeds 2 --quick     # a small world, to time a seed
    python bench/bench_pilot_loop.py --scenarios planted --selection 3   # teachers choosing more sharply
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import BENCH_DATA, RISK, ROOT, measure  # noqa: E402

from risk.config import load_settings  # noqa: E402
from risk.data.actions_import import read_action_file  # noqa: E402
from risk.data.export_split import split_export  # noqa: E402
from risk.data.ids import DEMO_KEY, pseudonyms  # noqa: E402
from risk.data.synth import TeacherModel, actions_file, continue_export, parse_effects  # noqa: E402
from risk.data.synth.config import SynthConfig  # noqa: E402
from risk.data.synth.continue_term import plan_from_alerts  # noqa: E402
from risk.impact.design import ALERT_NOW, ARMS, power_for_effect  # noqa: E402
from risk.impact.features import FEATURE_PREFIX, scored_features  # noqa: E402
from risk.impact.outcomes import TermOutcomes, term_outcomes  # noqa: E402
from risk.impact.plan import plan_pilot  # noqa: E402
from risk.impact.run import estimate_impact  # noqa: E402
from risk.scoring.settings import load_scoring_settings  # noqa: E402
from risk.store import PlanRecord, import_actions, open_store, write_pilot  # noqa: E402

TERMS = ["2567-1", "2567-2", "2568-1", "2568-2", "2569-1"]
PAST, PAST_AS_OF = "2568-2", "2026-01-23"   # scored so the plan's base rate and ICC are of flagged students
PILOT, PILOT_AS_OF, NEXT = "2569-1", "2026-07-24", "2569-2"
STRATA = ["province", "size"]
# Strong enough for 480 schools to detect it about half the time: the actions the alerts suggest most keep 95% of
# the dropouts they are given to.
STRONG = "home_visit=-0.95,cct_referral=-0.95,counselling=-0.95,learning_support=-0.95,travel_support=-0.95"


def build_base(args: argparse.Namespace) -> Path:
    """The world, validated and scored up to the pilot term: built once per size, reused after."""
    base = BENCH_DATA / f"pilot-loop-{args.students}x{len(TERMS)}-pps{args.students_per_school:g}"
    if (base / "base.done").exists():
        print(f"base reused: {base}")
        return base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    config = base / "synth.yaml"
    config.write_text((ROOT / "configs" / "synth.yaml").read_text(encoding="utf-8").replace(
        "students_per_school: 110 ", f"students_per_school: {args.students_per_school:g} "), encoding="utf-8")
    if f"students_per_school: {args.students_per_school:g} " not in config.read_text(encoding="utf-8"):
        raise SystemExit("configs/synth.yaml no longer says students_per_school: 110; update the bench")
    steps = [("synth", ["synth", "--out", base / "source", "--students", args.students, "--terms", len(TERMS),
                        "--seed", 7, "--last-term", PILOT, "--config", config, "--quiet"]),
             ("split-export", ["split-export", base / "source", base / "exports"])]
    steps += [(f"validate {t}", ["validate", base / "exports" / t, base / "validated", "--demo", "--quiet"])
              for t in TERMS[:-2]]
    steps += [(f"term {PAST}", ["term", "--source", base / "exports" / PAST, "--as-of", PAST_AS_OF,
                                "--store", base, "--demo", "--quiet"]),
              (f"term {PILOT}", ["term", "--source", base / "exports" / PILOT, "--as-of", PILOT_AS_OF,
                                 "--store", base, "--demo", "--quiet"])]
    for name, argv in steps:
        run = measure([*RISK, *map(str, argv)], quiet=True)
        print(f"base {name}: {run.seconds:,.1f} s, peak RSS {run.peak_rss_mb:,.0f} MB", flush=True)
    (base / "base.done").write_text("ok\n", encoding="utf-8")
    return base


def runs_of(base: Path) -> Path:
    """Where the seeds of a world run, and keep their frames: beside the world, one folder per size."""
    return base.with_name(f"{base.name}-runs")


def plan_and_act(base: Path, work: Path, seed: int, effects: dict[str, float], selection: float) -> dict:
    """Copy the store and the validated folder, draw the plan, let the teachers act, write the next term."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work.parent / "frames").mkdir(exist_ok=True)
    shutil.copy2(base / "risk.db", work / "risk.db")
    shutil.copytree(base / "validated", work / "validated")
    store = open_store(f"sqlite:///{(work / 'risk.db').resolve()}")
    policy = load_settings(ROOT / "configs" / "risk.yaml").labels
    plan = plan_pilot(store, work / "validated", term=PILOT, share=0.5, strata=STRATA, seed=seed, policy=policy)
    write_pilot(store, plan.record, plan.assignment)
    scoring = load_scoring_settings(ROOT / "configs" / "scoring.yaml")
    texts = {t.en: code for code, t in scoring.actions.items() if code in scoring.action_codes}
    decisions = plan_from_alerts(base / "source", store, key=DEMO_KEY, model=TeacherModel(selection=selection),
                                 action_texts=texts,
                                 seed=seed)
    continue_export(base / "source", work / "next", help_plan=decisions, effects=effects, key=DEMO_KEY, seed=seed,
                    config=SynthConfig.from_yaml(base / "synth.yaml"))
    actions_file(decisions, work / "next" / "actions.csv")
    read = read_action_file(work / "next" / "actions.csv", DEMO_KEY, scoring.action_codes)
    imported = import_actions(store, read.clean)
    if len(read.quarantined) or imported.stored != read.rows:
        raise SystemExit(f"seed {seed}: {read.rows} actions, {imported.stored} stored")
    # The next term's export as schools send it: its own rows only (split with the term before it, which
    # takes every earlier row and is not validated again).
    split_export(work / "next", work / "next-exports", [PILOT, NEXT])
    measure([*RISK, "validate", str(work / "next-exports" / NEXT), str(work / "validated"), "--demo", "--quiet"],
            quiet=True)
    return {"store": store, "policy": policy, "plan": plan}


def truth_rows(frame: pd.DataFrame, truth_path: Path, keep: Path) -> pd.DataFrame:
    """The frame ``risk impact`` read, with each student's truth beside it (``p_now``: the dropout probability with
    the help given); written to ``keep`` for re-estimating offline (pseudonyms only)."""
    truth = pq.read_table(truth_path, columns=["student_id", "term", "p_dropout_untreated", "p_dropout_treated",
                                               "acted", "action"], filters=[("term", "=", PILOT)]).to_pandas()
    truth = truth.rename(columns={"acted": "truth_acted", "action": "truth_action"})
    truth["student_key"] = pseudonyms(truth["student_id"].to_numpy(dtype=object), DEMO_KEY).astype("int64")
    rows = frame.merge(truth.drop(columns=["student_id", "term"]), on="student_key", how="left",
                       validate="one_to_one")
    if rows["p_dropout_untreated"].isna().any():
        raise SystemExit(f"{int(rows['p_dropout_untreated'].isna().sum())} students of the pilot are not in truth")
    acted = rows["truth_acted"].fillna(False).astype(bool).to_numpy()
    rows["p_now"] = np.where(acted, rows["p_dropout_treated"].to_numpy(float), rows["p_dropout_untreated"])
    rows = rows.drop(columns=["p_dropout_treated"])
    keep.parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(keep)
    return rows


def loop_truth(rows: pd.DataFrame, effects: dict[str, float], codes: list[str]) -> dict[str, float]:
    """The true ITT (absolute, relative), IV and per-action effects of the frame's students (module docstring)."""
    acted = rows["truth_acted"].fillna(False).astype(bool).to_numpy()
    p0, p_now = rows["p_dropout_untreated"].to_numpy(float), rows["p_now"].to_numpy(float)
    change = p_now - p0
    flagged_now = (rows["flagged"] & (rows["arm"] == ALERT_NOW)).to_numpy()
    acting = rows["school_id"].map(rows[flagged_now].groupby("school_id")["acted"].max()).fillna(0).to_numpy() > 0
    out = {"truth": float(change[flagged_now].mean()),
           "truth_relative": float(change[flagged_now].mean() / p0[flagged_now].mean()),
           "truth_iv": float(change[flagged_now & acting].mean()) if (flagged_now & acting).any() else np.nan}
    seen = flagged_now & rows["score"].notna().to_numpy()
    if rows["alerted"].any():  # as risk impact's per-action frame: those asked for help (or helped)
        seen &= ((rows["alerted"] == 1) | (rows["acted"] == 1)).to_numpy()
    taken = rows["truth_action"].fillna("").str.split("+")
    for code in codes:
        effect = effects.get(code, 0.0)
        has = np.array([acted[i] and code in taken.iat[i] for i in range(len(rows))])
        without = np.where(has, p_now / (1.0 + effect), p_now)
        out[f"{code}:truth"] = float((effect * without)[seen].mean())
    return out


def covers(estimate: pd.Series, value: float) -> bool:
    return bool(estimate["ci_low"] <= value <= estimate["ci_high"])


def action_errors(est: pd.DataFrame, truth: dict[str, float], codes: list[str]) -> dict[str, float]:
    """Per action estimated: the naive and AIPW errors against the truth, in proportion and in their own SEs."""
    row = {}
    for code in codes:
        if (("action_naive", code) in est.index) and (("action_adjusted", code) in est.index):
            naive, aipw, target = est.loc[("action_naive", code)], est.loc[("action_adjusted", code)], truth[f"{code}:truth"]
            row |= {f"{code}:truth": target, f"{code}:naive_error": naive["estimate"] - target,
                    f"{code}:naive_z": (naive["estimate"] - target) / naive["se"],
                    f"{code}:naive_covered": covers(naive, target),
                    f"{code}:aipw_error": aipw["estimate"] - target,
                    f"{code}:aipw_z": (aipw["estimate"] - target) / aipw["se"],
                    f"{code}:aipw_closer": abs(aipw["estimate"] - target) < abs(naive["estimate"] - target),
                    f"{code}:aipw_covered": covers(aipw, target)}
    return row


def indexed(estimates: pd.DataFrame) -> pd.DataFrame:
    return estimates.set_index(["estimand", estimates["action_code"].fillna("")])


def design(plan) -> tuple:
    """What the plan's power rests on: schools, flagged students a school, past flagged base rate, ICC, the MDE."""
    return (len(plan.population), plan.population["size"].to_numpy(float) * plan.baseline.flagged_share,
            plan.baseline.base_rate, plan.baseline.icc.icc, plan.mde)


def seed_row(est: pd.DataFrame, rows: pd.DataFrame, effects: dict[str, float], codes: list[str]) -> dict:
    """One seed's estimates against its truth: ITT coverage and detection, IV, per action."""
    row = loop_truth(rows, effects, codes)
    itt, rel, ri = est.loc[("itt", "")], est.loc[("itt_relative", "")], est.loc[("itt_randomisation", "")]
    row |= {"estimate": itt["estimate"], "se": itt["se"], "covered": covers(itt, row["truth"]),
            "covered_relative": covers(rel, row["truth_relative"]), "covered_ri": covers(ri, row["truth"]),
            "covered_zero": covers(itt, 0.0), "covered_zero_ri": covers(ri, 0.0), "detected": not covers(itt, 0.0),
            "flagged": int(rows["flagged"].sum()), "acted": int(rows["acted"].sum())}
    if ("complier_iv", "") in est.index:
        row["covered_iv"] = covers(est.loc[("complier_iv", "")], row["truth_iv"])
    return row | action_errors(est, row, codes)


def one_seed(base: Path, seed: int, effects: dict[str, float], args: argparse.Namespace, scenario: str) -> dict:
    """One closed loop: the estimates of ``risk impact`` beside the truth; also the plan's design inputs."""
    started = time.perf_counter()
    work = runs_of(base) / f"{scenario}-{seed}"
    made = plan_and_act(base, work, seed, effects, args.selection)
    outcomes = term_outcomes(made["store"], work / "validated", PILOT, made["policy"],
                             settings=load_settings(ROOT / "configs" / "risk.yaml"))
    result = estimate_impact(outcomes, permutations=args.permutations, seed=seed)
    est = indexed(result.estimates)
    frame = outcomes.frame[outcomes.frame["arm"].isin(ARMS)]
    codes = sorted(set(result.estimates["action_code"].dropna()) - set(ARMS))
    rows = truth_rows(frame, work / "next" / "truth.parquet", work.parent / "frames" / f"{work.name}.parquet")
    row = seed_row(est, rows, effects, codes) | {"seed": seed, "design": design(made["plan"])}
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"  {scenario} seed {seed}: ITT {row['estimate']:+.4f} (SE {row['se']:.4f}) truth {row['truth']:+.4f}"
          f" covered {row['covered']} | {time.perf_counter() - started:.0f} s", flush=True)
    return row


def from_frames(base: Path, scenarios: dict[str, dict[str, float]], args: argparse.Namespace) -> dict:
    """Each scenario's seed rows again, with the current code, from the frames the loops kept: ``risk impact``'s
    input frame and the truth beside it (the estimates are a function of the frame and the seed)."""
    store = open_store(f"sqlite:///{(base / 'risk.db').resolve()}")
    planned = plan_pilot(store, base / "validated", term=PILOT, share=0.5, strata=STRATA, seed=0,
                         policy=load_settings(ROOT / "configs" / "risk.yaml").labels)  # read only: not stored
    plan = PlanRecord(pilot_id="kept", term=PILOT, share=0.5, strata=STRATA, seed=0, created_at=dt.datetime(2026, 5, 1))
    codes_known = set(load_scoring_settings(ROOT / "configs" / "scoring.yaml").action_codes)
    # Frames kept before risk impact read the features lack them: the pilot term's scored point is the same for
    # every seed (the plan changes nothing the scores read), so it is read once from the world.
    scored = scored_features(store, base / "validated", PILOT, load_settings(ROOT / "configs" / "risk.yaml"))
    runs = {}
    for name, effects in scenarios.items():
        rows = []
        for path in sorted((runs_of(base) / "frames").glob(f"{name}-*.parquet")):
            label, seed = path.stem.rsplit("-", 1)
            if label != name or int(seed) >= args.seeds:
                continue
            seed = int(seed)
            kept = pd.read_parquet(path)
            if scored.frame is not None and not any(c.startswith(FEATURE_PREFIX) for c in kept.columns):
                kept = kept.merge(scored.frame, on="student_key", how="left")
            codes = sorted(codes_known & set(kept.columns))
            features = [c for c in kept.columns if c.startswith(FEATURE_PREFIX)]
            outcomes = TermOutcomes(term=PILOT, frame=kept, plan=plan, action_codes=codes, features=features,
                                    feature_note=scored.note if features else "")
            result = estimate_impact(outcomes, permutations=args.permutations, seed=seed)
            estimated = sorted(set(result.estimates["action_code"].dropna()) - set(ARMS))
            rows.append(seed_row(indexed(result.estimates), kept, effects, estimated)
                        | {"seed": seed, "design": design(planned)})
        if rows:
            runs[name] = pd.DataFrame(rows)
    return runs


def share(values: pd.Series) -> str:
    """A proportion with its binomial SE and count."""
    values = values.dropna().astype(bool)
    p = float(values.mean())
    return f"{p:.3f} ± {np.sqrt(p * (1 - p) / len(values)):.3f} ({int(values.sum())}/{len(values)})"


def report_design(planted: pd.DataFrame) -> None:
    """What ``risk pilot plan`` said it could detect (the same every seed but for the draw)."""
    n_schools, sizes, base_rate, icc, mde = planted["design"].iloc[0]
    print(f"\nplan (risk pilot plan): {n_schools} schools, ~{sizes.mean():.1f} flagged students a school, past flagged"
          f" base rate {base_rate:.4f}, ICC {icc:.4f}; MDE at 80% power {mde.relative_change:+.1%}"
          f" ({mde.absolute_change:+.4f}), design effect {mde.design_effect:.2f}")


def report_effect(frame: pd.DataFrame, effects: dict[str, float]) -> None:
    """Coverage of the true ITT and the detection rate beside the plan's power at the true relative ITT."""
    n_schools, sizes, base_rate, icc, _ = frame["design"].iloc[0]
    relative = float(frame["truth_relative"].mean())
    predicted = power_for_effect(n_schools, sizes, 0.5, base_rate, icc, relative)
    print(f"planted effects {effects}: true ITT {frame['truth'].mean():+.4f} ({relative:+.1%} relative;"
          f" SD over seeds {frame['truth'].std():.4f}), estimate mean {frame['estimate'].mean():+.4f},"
          f" mean SE {frame['se'].mean():.4f}, SD of estimates {frame['estimate'].std():.4f}")
    print(f"  clustered 95% CI covers truth     {share(frame['covered'])}   (wanted >= 0.90)")
    print(f"  relative 95% CI covers truth      {share(frame['covered_relative'])}")
    print(f"  randomisation CI covers truth     {share(frame['covered_ri'])}")
    if "covered_iv" in frame:
        print(f"  complier (IV) CI covers truth     {share(frame['covered_iv'])}")
    print(f"  detected (CI excludes 0)          {share(frame['detected'])}   predicted power {predicted:.3f}")


def report_null(null: pd.DataFrame) -> None:
    print(f"zero effect: true ITT {null['truth'].mean():+.4f}, estimate mean {null['estimate'].mean():+.4f},"
          f" mean SE {null['se'].mean():.4f}, SD of estimates {null['estimate'].std():.4f}")
    print(f"  clustered 95% CI covers 0         {share(null['covered_zero'])}   (wanted >= 0.90)")
    print(f"  randomisation CI covers 0         {share(null['covered_zero_ri'])}")


def report_actions(frame: pd.DataFrame, title: str) -> None:
    """Per action estimated: the naive difference's bias beside AIPW's, in the seeds' own SEs and over the seeds."""
    print(f"per action, {title}; error = estimate - truth, proportion;"
          " bias/SE: the mean error over its standard error across seeds")
    codes = sorted(c.split(":")[0] for c in frame.columns if c.endswith(":naive_error"))
    for code in codes:
        naive, aipw = frame[f"{code}:naive_error"].dropna(), frame[f"{code}:aipw_error"].dropna()
        over = lambda e: e.mean() / (e.std() / np.sqrt(len(e))) if len(e) > 1 else np.nan  # noqa: E731
        print(f"  {code:16s} {len(naive):2d} seeds, truth {frame[f'{code}:truth'].mean():+.4f}:"
              f" naive bias {naive.mean():+.4f} (mean z {frame[f'{code}:naive_z'].mean():+.2f}, bias/SE {over(naive):+.1f},"
              f" CI covers {share(frame[f'{code}:naive_covered'])});"
              f" AIPW bias {aipw.mean():+.4f} (mean z {frame[f'{code}:aipw_z'].mean():+.2f}, bias/SE {over(aipw):+.1f},"
              f" CI covers {share(frame[f'{code}:aipw_covered'])}); AIPW closer {share(frame[f'{code}:aipw_closer'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--students", type=int, default=24_000)
    parser.add_argument("--students-per-school", type=float, default=50.0,
                        help="sets the number of schools (configs/synth.yaml: 110)")
    parser.add_argument("--effect", default="home_visit=-0.3,learning_support=-0.2",
                        help="the planted scenario (make demo-pilot's)")
    parser.add_argument("--strong-effect", default=STRONG,
                        help="a second planted scenario, strong enough for the power to be tested ('' skips it)")
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="a small world (6,000 students, 120 schools)")
    parser.add_argument("--keep", action="store_true", help="keep each seed's folder")
    parser.add_argument("--scenarios", default="planted,strong,zero", help="which to run, comma-separated")
    parser.add_argument("--selection", type=float, default=1.0,
                        help="the teacher model's selection on true risk (log-odds per SD; its default 1.0); "
                             "another value names the scenarios <name>-sel<value>")
    parser.add_argument("--from-frames", action="store_true",
                        help="no loop: the figures again from the frames kept by earlier runs (one process a "
                             "scenario can share the cores: --scenarios zero, then --from-frames)")
    args = parser.parse_args()
    if args.quick:
        args.students = 6_000
    scenarios = {"planted": parse_effects(args.effect)}
    if args.strong_effect:
        scenarios["strong"] = parse_effects(args.strong_effect)
    scenarios["zero"] = dict.fromkeys(scenarios["planted"], 0.0)
    suffix = "" if args.selection == 1.0 else f"-sel{args.selection:g}"
    scenarios = {name + suffix: effects for name, effects in scenarios.items()}
    started = time.perf_counter()
    base = build_base(args)
    built = time.perf_counter()
    if args.from_frames:
        runs = from_frames(base, scenarios, args)
    else:
        chosen = [name.strip() + suffix for name in args.scenarios.split(",") if name.strip()]
        runs = {name: pd.DataFrame([one_seed(base, s, scenarios[name], args, name) for s in range(args.seeds)])
                for name in chosen}
    if not runs:
        raise SystemExit("no seeds to report")
    first = next(iter(runs.values()))
    report_design(first)
    for name in ("planted" + suffix, "strong" + suffix):
        if name in runs:
            report_effect(runs[name], scenarios[name])
    if "zero" + suffix in runs:
        report_null(runs["zero" + suffix])
    for name, frame in runs.items():
        report_actions(frame, f"{name} scenario (teachers select on true risk, {args.selection:g})")
    loops = time.perf_counter() - built
    done = "re-estimated from the kept frames in" if args.from_frames else "loops"
    print(f"\n{args.seeds} seeds x {len(runs)} scenarios, {args.students:,} students: base {built - started:.0f} s, "
          f"{done} {loops:.0f} s ({loops / (len(runs) * args.seeds):.1f} s a seed)")


if __name__ == "__main__":
    main()
