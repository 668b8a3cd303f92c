"""Full retrain at scale (``risk train``), beside bare ``lightgbm.train`` on the same matrix in the same run.

1. A synthetic export of N students × T terms, generated once and validated once (both reused on a rerun).
2. One short ``risk train`` (few trees) that builds every feature point into the cache, as the
   previous term's retrain would have; the measured retrain then reuses them, as a real one does.
3. The measured full retrain: ``risk train --data … --quiet`` in a child process (wall time and
   peak RSS of the whole tree), its own clock split read back from its MLflow run.
4. The floor, in a child process of its own, before and after the retrain: the training matrix built
   with the package's ``build_samples`` from the cached features (not timed), then ``lgb.Dataset``
   construction plus ``lightgbm.train`` with the same params on the same fitting rows — only that is
   timed. The retrain is set beside the mean of the two, for as many rounds as it grew (its best
   iteration plus the early-stopping patience).

python bench/bench_train.py [--students N] [--terms T] [--national] [--quick] [--negative-share S]
  default     1,000,000 students × 4 terms, every training row kept (negative_share 1.0)
  --national  4,000,000 students × 4 terms, negatives down-sampled to 0.25 (weights 1/0.25) so
              the training matrix and its float64 copies stay well under 8 GiB
  --quick     100,000 students × 4 terms

Measured 2026-11-27, 1M × 4, quiet machine (load average 1.1 before the measured run, 1.7 after):
risk train 272 s (samples 15, boosting 197, calibration 37, evaluation 17, the rest 6), peak RSS 4,694 MB;
bare Dataset + lightgbm.train for the same 1,485 rounds on the same 3.22M fitting rows 183 s, 2,893 MB;
ratio 1.49 (boosting alone 1.08). The previous code in the same hour: 245 s against 143 s (1.71; a
stopping set of 520k rows, and samples read one row group at a time). What is left above the floor
is mostly scoring the 1.49M held-out rows (calibration and test) with the final model: ~33 s.
Warm-up (builds the 15 feature points): ~810 s.

Measured 2026-11-27 (later) with the compiled forest scoring the held-out rows, on an hour when the host
ran ~1.8x slower (the same bare floor took 337.9 s where it had taken 190.6): risk train 456.4 s (samples
25.2, boosting 372.6, calibration 25.0, evaluation 19.3, the rest 14.3; 1,405 trees), peak RSS 4,687 MB;
floor 337.9 s (measured after the retrain only); ratio 1.35. Boosting was 1.10x the floor there, where
200 rounds of each side by side ran 284 and 280 ms a round: the host's speed drifted between the two
runs. Hence the A-B-A floor above (a floor before and after the retrain, their mean), added after that
run and not yet run at 1M.

Measured 2026-11-27 (evening) with the A-B-A floor, 1M × 4, quiet but for ~2 minutes of unit tests of
mine during the first floor: risk train 305.9 s (samples 18.6, boosting 249.4, calibration 13.9,
evaluation 14.1, the rest 9.8; 1,405 trees), peak RSS 4,828 MB; floor before 3.4 + 293.4 s for 1,500
rounds (196 ms a round, slowed by those tests), after 3.6 + 237.2 s for 1,485 (160 ms a round); mean
267.3 s, ratio 1.14; against the faster floor alone (240.8 s) 1.27. Boosting 0.93x the mean floor,
1.04x the faster one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml
from common import BENCH_DATA, RISK, ROOT, Measured, ensure_validated, line, measure

NATIONAL = 4_000_000
NATIONAL_NEGATIVE_SHARE = 0.25
WARM_TREES = 20  # the warm-up run only has to build the feature cache


def bench_config(name: str, **overrides: dict[str, object]) -> Path:
    """configs/train.yaml with some sections' keys replaced, written under the bench data folder."""
    data = yaml.safe_load((ROOT / "configs" / "train.yaml").read_text(encoding="utf-8"))
    for section, values in overrides.items():
        data[section].update(values)
    path = BENCH_DATA / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def last_run(tracking: Path) -> tuple[dict[str, float], dict[str, str]]:
    """Metrics and params of the newest training run in the bench's MLflow store."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{tracking / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("dropout-risk")
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    return run.data.metrics, run.data.params


def floor_child(folder: Path, config: Path, rounds: int, out: Path) -> None:
    """(Child process) the training matrix from the feature cache, then bare Dataset + lightgbm.train, timed."""
    import lightgbm as lgb
    import numpy as np

    from risk.config import load_settings
    from risk.features.cache import DataFiles
    from risk.features.catalog import load_catalog
    from risk.models.booster import stopping_rows
    from risk.models.samples import build_samples, outcome_connection, term_labels
    from risk.models.settings import load_train_settings
    from risk.models.term_split import known_outcome_terms, sample_points, split_terms

    settings = load_settings(ROOT / "configs" / "risk.yaml")
    ts = load_train_settings(config)
    catalog = load_catalog(settings.resolve(settings.features.catalog))
    started = time.perf_counter()
    # The same rows as risk.models.train.train_model's training role, from the same cached points.
    con = outcome_connection(folder, settings)
    split = split_terms(known_outcome_terms(con), ts.split)
    labels = term_labels(con, split.train, settings)
    points = [p for t in split.train for p in sample_points(con, t, ts.samples.weeks, ts.samples.last_school_day)]
    train = build_samples(folder, points, labels, settings=settings, catalog=catalog,
                          inputs=DataFiles.scan(folder), seed=ts.samples.seed,
                          negative_share=ts.samples.negative_share, holdout=(ts.split.holdout_students, False))
    # The trainer fits on the students not held out for early stopping; so does the floor.
    fit = ~stopping_rows(train.meta["student_key"].to_numpy(), ts.split, ts.samples.seed)
    X, y = train.X[fit], train.y[fit]
    weight = (train.weight.astype(np.float64) * np.where(train.y == 1, ts.lightgbm.positive_weight, 1.0))[fit]
    categorical = [i for i, n in enumerate(train.names) if catalog.get(n).unit == "category"]
    matrix_seconds = time.perf_counter() - started
    del train
    params = {**ts.lightgbm.params, "metric": "binary_logloss"}
    started = time.perf_counter()
    dataset = lgb.Dataset(X, label=y, weight=weight, feature_name=catalog.names, categorical_feature=categorical,
                          params={"max_bin": params.get("max_bin", 255), "feature_pre_filter": False, "verbose": -1})
    dataset.construct()
    built = time.perf_counter() - started
    lgb.train(params, dataset, num_boost_round=rounds)
    seconds = time.perf_counter() - started
    out.write_text(json.dumps({"rows": int(len(y)), "features": int(X.shape[1]), "matrix_seconds": matrix_seconds,
                               "dataset_seconds": built, "floor_seconds": seconds, "rounds": rounds,
                               "train_seconds": seconds - built}), encoding="utf-8")


def bench(students: int, terms: int, negative_share: float) -> None:
    load = os.getloadavg()
    folder = ensure_validated(students, terms)
    tracking = BENCH_DATA / f"mlflow-train-{students}x{terms}"
    risk_args = ["--data", str(folder), "--tracking-dir", str(tracking), "--quiet"]
    warm_config = bench_config(f"train-warm-{negative_share}.yaml", samples={"negative_share": negative_share},
                               lightgbm={"max_trees": WARM_TREES, "early_stopping_rounds": WARM_TREES})
    warm = measure([*RISK, "train", *risk_args, "--config", str(warm_config)], quiet=True)
    warm_metrics, _ = last_run(tracking)
    config = bench_config(f"train-bench-{negative_share}.yaml", samples={"negative_share": negative_share})
    ts = yaml.safe_load(config.read_text(encoding="utf-8"))["lightgbm"]
    out = BENCH_DATA / f"train-floor-{students}x{terms}.json"

    def floor(rounds: int) -> tuple[dict[str, float], Measured]:
        child = measure([sys.executable, __file__, "--floor-child", str(folder), str(config), str(rounds), str(out)])
        return json.loads(out.read_text(encoding="utf-8")), child

    # The host's speed drifts (up to 1.7x within an hour here), so the floor is measured on both sides
    # of the retrain (A-B-A) and the retrain is set beside their mean. The first floor grows the most
    # rounds the config allows (the retrain's count is not known yet), the second as many as the
    # retrain grew; the ratio uses each floor's time a round times the retrain's rounds.
    floor_before, _ = floor(ts["max_trees"])
    load_before = os.getloadavg()
    run = measure([*RISK, "train", *risk_args, "--config", str(config)], quiet=True)
    load_after = os.getloadavg()
    metrics, params = last_run(tracking)
    best = int(params["trees"])
    rounds = min(best + ts["early_stopping_rounds"], ts["max_trees"])
    floor_after, floor_run = floor(rounds)
    per_round = [f["train_seconds"] / f["rounds"] for f in (floor_before, floor_after)]
    dataset = (floor_before["dataset_seconds"] + floor_after["dataset_seconds"]) / 2
    floor_seconds = dataset + rounds * sum(per_round) / 2

    print(f"\nfull retrain, {students:,} students × {terms} terms (negative_share {negative_share}; "
          f"terms {params['train_terms']} / {params['calibration_terms']} / {params['test_terms']})")
    print(f"  load average (1/5/15 min): at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}; before the measured run "
          f"{load_before[0]:.2f}; after {load_after[0]:.2f} (2 cores, shared)")
    print(f"  warm-up risk train ({WARM_TREES} trees, builds the feature cache): {warm.seconds:,.1f} s "
          f"(samples {warm_metrics.get('seconds.samples', float('nan')):,.1f} s), peak RSS {warm.peak_rss_mb:,.0f} MB")
    print(f"  rows: train {int(params['rows.train.rows']):,} ({int(params['rows.train.positives']):,} dropouts), "
          f"calibration {int(params['rows.calibration.rows']):,}, test {int(params['rows.test.rows']):,}; "
          f"{params['features']} features; {best} trees kept, {rounds} rounds grown")
    clock = {k.removeprefix("seconds."): v for k, v in metrics.items() if k.startswith("seconds.")}
    rest = run.seconds - sum(clock.values())
    print("  risk train clock: " + ", ".join(f"{k} {v:,.1f} s" for k, v in clock.items())
          + f", the rest (start-up, MLflow record and registry) {rest:,.1f} s")
    print(f"  stage table (each stage beside the floor: bare Dataset + lightgbm.train, {rounds} rounds, "
          f"{floor_seconds:,.1f} s):")
    for name, value in [*clock.items(), ("the rest", rest), ("risk train", run.seconds)]:
        print(f"    {name:<22} {value:>9,.1f} s  {value / floor_seconds:6.3f}x the floor")
    for when, f in (("before", floor_before), ("after", floor_after)):
        print(f"  floor {when} the retrain: {f['rows']:,} fitting rows × {f['features']} features; Dataset "
              f"{f['dataset_seconds']:,.1f} s + lightgbm.train {f['rounds']} rounds {f['train_seconds']:,.1f} s "
              f"({f['train_seconds'] / f['rounds'] * 1000:,.0f} ms a round; matrix from the cache, not timed: "
              f"{f['matrix_seconds']:,.1f} s)")
    print(f"  boosting alone (its Dataset included): {clock['boosting'] / floor_seconds:.3g}x the floor")
    print("  " + line("risk train", run.seconds, "s", f"bare Dataset + lightgbm.train, {rounds} rounds (mean of the "
                      "floors before and after)", floor_seconds))
    print(f"  peak RSS: risk train {run.peak_rss_mb:,.0f} MB, floor process {floor_run.peak_rss_mb:,.0f} MB "
          "(matrix building included); target < 8,192 MB")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--floor-child":
        folder, config, rounds, out = sys.argv[2:6]
        floor_child(Path(folder), Path(config), int(rounds), Path(out))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=1_000_000)
    parser.add_argument("--terms", type=int, default=4)
    parser.add_argument("--national", action="store_true", help="4,000,000 students × 4 terms")
    parser.add_argument("--quick", action="store_true", help="100,000 students × 4 terms")
    parser.add_argument("--negative-share", type=float, default=None,
                        help="samples.negative_share (default 1.0; 0.25 with --national)")
    args = parser.parse_args()
    students = NATIONAL if args.national else 100_000 if args.quick else args.students
    share = args.negative_share or (NATIONAL_NEGATIVE_SHARE if students >= NATIONAL else 1.0)
    BENCH_DATA.mkdir(parents=True, exist_ok=True)
    bench(students, args.terms, share)


if __name__ == "__main__":
    main()
