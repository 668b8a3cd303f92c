"""Honesty benchmark of the impact estimates (issue 30) over many simulated pilots.

Each seed is one pilot term of ``--schools`` schools (risk.impact.simulate): half
get alerts (stratified by province), acting schools' teachers act on flagged
children with selection (more on children whose risk they see, ``x2``, recorded,
and a little on risk nobody recorded), and each action multiplies dropout
probability by 1 + its planted effect. The truth is exact for each sample.

Printed, over the seeds:

* **planted effect**: how often the pilot's 95% CIs (clustered, relative,
  randomisation inference) and the complier CI (IV) cover the true effect, and
  how often the clustered CI excludes 0 against the power the plan predicts
  (base rate, ICC and flagged students per school from past terms without alerts);
* **no effect**: how often the CIs cover 0;
* **selection**: per action, the mean error of the naive acted-vs-not difference
  and of the AIPW estimate, the naive error in its own SEs, how often AIPW is
  closer and how often its CI covers the truth; once with some selection on risk
  nobody recorded (AIPW cannot remove that part), once with selection only on
  what the data records.

Usage::

    python bench/bench_impact.py                 # 40 seeds, 400 schools (a few minutes)
    python bench/bench_impact.py --seeds 20 --schools 400 --permutations 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from risk.impact.actions import per_action_effects  # noqa: E402
from risk.impact.design import icc_from_past_terms, minimum_detectable_effect, power_for_effect  # noqa: E402
from risk.impact.estimate import complier_effect, intention_to_treat  # noqa: E402
from risk.impact.simulate import simulate_pilot  # noqa: E402

EFFECTS = {"home_visit": -0.3, "learning_support": -0.1}
TEACHERS = {"school_act_share": 0.6, "act_rate": 0.5, "selection": 1.5, "hidden_selection": 0.3}
FEATURES = ["x1", "x2"]


def plan_inputs(schools: int, students: float, terms: int) -> tuple[np.ndarray, float, float]:
    """Flagged students per school, base rate and ICC from past terms without alerts."""
    frames = []
    for term in range(terms):
        world = simulate_pilot(schools, students, effects={}, seed=100_000 + term).students
        frames.append(world.loc[world["flagged"], ["school_id", "dropped_out"]].assign(term=str(term)))
    past = pd.concat(frames)
    counts = past.groupby(["term", "school_id"]).size().to_numpy()
    return counts, float(past["dropped_out"].mean()), icc_from_past_terms(past).icc


def one_pilot(seed: int, args: argparse.Namespace, effects: dict[str, float]) -> dict[str, float]:
    """Estimates against the truth for one simulated pilot."""
    world = simulate_pilot(args.schools, args.students, effects=effects, seed=seed, **TEACHERS)
    students, truth = world.students, world.truth
    itt = intention_to_treat(students, permutations=args.permutations, seed=seed)
    row = {"truth": truth.itt_absolute, "truth_relative": truth.itt_relative,
           "covered": itt.absolute.covers(truth.itt_absolute),
           "covered_relative": itt.relative.covers(truth.itt_relative),
           "covered_ri": itt.randomisation.covers(truth.itt_absolute),
           "covered_zero": itt.absolute.covers(0.0), "covered_zero_ri": itt.randomisation.covers(0.0),
           "detected": not itt.absolute.covers(0.0),
           "covered_iv": complier_effect(students).covers(truth.complier_absolute)}
    row |= action_errors(world, effects, seed, "")
    # The same pilot with selection only on what the data records: AIPW should be unbiased.
    seen_only = simulate_pilot(args.schools, args.students, effects=effects, seed=seed,
                               **(TEACHERS | {"hidden_selection": 0.0}))
    return row | action_errors(seen_only, effects, seed, "seen_only:")


def action_errors(world, effects: dict[str, float], seed: int, prefix: str) -> dict[str, float]:
    """Naive and AIPW errors against the true per-action effects among alerted students of acting schools."""
    students, row = world.students, {}
    alerted = students[students["flagged"] & (students["acted_school"] == 1)]
    for result in per_action_effects(alerted, list(effects), FEATURES, seed=seed):
        target = world.truth.action_ate[result.action]
        key = f"{prefix}{result.action}"
        row |= {f"{key}:naive_error": result.naive.estimate - target,
                f"{key}:naive_z": (result.naive.estimate - target) / result.naive.se,
                f"{key}:aipw_error": result.adjusted.estimate - target,
                f"{key}:aipw_closer": abs(result.adjusted.estimate - target)
                < abs(result.naive.estimate - target),
                f"{key}:aipw_covered": result.adjusted.covers(target)}
    return row


def share(values: pd.Series) -> str:
    """A proportion with its binomial SE."""
    p = float(values.mean())
    return f"{p:.3f} ± {np.sqrt(p * (1 - p) / len(values)):.3f}"


def report(planted: pd.DataFrame, null: pd.DataFrame, predicted_power: float, mde) -> None:
    print(f"\nplan: MDE {mde.absolute_change:+.4f} ({mde.relative_change:+.1%}), design effect "
          f"{mde.design_effect:.2f}, ICC {mde.icc:.4f}, base rate {mde.base_rate:.4f}, "
          f"{mde.mean_students:.1f} flagged/school (CV {mde.cv_students:.2f})")
    print(f"planted effect: ITT {planted['truth'].mean():+.4f} ({planted['truth_relative'].mean():+.1%})"
          f" over {len(planted)} seeds")
    print(f"  clustered 95% CI covers truth     {share(planted['covered'])}")
    print(f"  relative 95% CI covers truth      {share(planted['covered_relative'])}")
    print(f"  randomisation CI covers truth     {share(planted['covered_ri'])}")
    print(f"  complier (IV) CI covers truth     {share(planted['covered_iv'])}")
    print(f"  detected (CI excludes 0)          {share(planted['detected'])}"
          f"   predicted power {predicted_power:.3f}")
    print(f"no effect over {len(null)} seeds")
    print(f"  clustered 95% CI covers 0         {share(null['covered_zero'])}")
    print(f"  randomisation CI covers 0         {share(null['covered_zero_ri'])}")
    for prefix, title in (("", f"selection on recorded x2 ({TEACHERS['selection']}) and hidden risk "
                                 f"({TEACHERS['hidden_selection']})"), ("seen_only:", "selection on x2 only")):
        print(f"{title}, per action (planted-effect seeds); error = estimate - truth, proportion")
        for action in EFFECTS:
            key = f"{prefix}{action}"
            naive, aipw = planted[f"{key}:naive_error"], planted[f"{key}:aipw_error"]
            beyond = (planted[f"{key}:naive_z"] > 2)
            print(f"  {action:17s} naive bias {naive.mean():+.4f} ({planted[f'{key}:naive_z'].mean():+.1f} SE,"
                  f" >2 SE in {share(beyond)})  AIPW bias {aipw.mean():+.4f} (SD {aipw.std():.4f})"
                  f"  AIPW closer {share(planted[f'{key}:aipw_closer'])}"
                  f"  AIPW CI covers {share(planted[f'{key}:aipw_covered'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--schools", type=int, default=400)
    parser.add_argument("--students", type=float, default=150, help="mean enrolment per school")
    parser.add_argument("--permutations", type=int, default=2000)
    args = parser.parse_args()
    started = time.perf_counter()
    counts, base_rate, icc = plan_inputs(args.schools, args.students, terms=10)
    mde = minimum_detectable_effect(args.schools, counts, 0.5, base_rate, icc)
    planted = pd.DataFrame([one_pilot(seed, args, EFFECTS) for seed in range(args.seeds)])
    null = pd.DataFrame([one_pilot(10_000 + seed, args, dict.fromkeys(EFFECTS, 0.0))
                         for seed in range(args.seeds)])
    predicted = power_for_effect(args.schools, counts, 0.5, base_rate, icc,
                                 float(planted["truth_relative"].mean()))
    report(planted, null, predicted, mde)
    print(f"\n{args.seeds} seeds x 2 scenarios, {args.schools} schools: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
