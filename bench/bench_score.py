"""Explained batch scoring at national scale (``risk score``), beside its floor and a naive path, in the same run.

1. A validated export of N students (``validated-Nx2`` of the other benches, else bench_train's ``Nx4``,
   else a new N × 2 terms), and a champion: trained on a smaller export with the same catalog
   (M students × 4 terms, for a temporal split) and promoted, once; reused on a rerun.
2. The measured run: ``risk score --as-of <ten weeks into the last term> --data … --store sqlite:///…``
   (wall time and peak RSS of the process tree), on a fresh store.
3. ``risk features`` for the same as_of, rebuilt and timed in this run (its matrix is the model floor's
   input; no earlier run's time is reused).
4. The floor: the fastest known way to do each part of the same work, in the same run (bench/floors.py):
   the features by one plain DuckDB group-by per table over the same validated Parquet (per-student
   aggregates comparable to the builders', without the point-in-time plumbing), then in a child process
   the model part by the faster of the compiled forest and ``booster.predict`` for the probabilities plus
   the faster of the TreeSHAP tables and ``pred_contrib`` for the flagged rows' SHAP values.
5. Peers, printed beside the floor: the old floor (bare ``booster.predict`` on the whole matrix plus
   ``pred_contrib`` on the flagged: more work than the scorer's model step, so a ratio against it flatters
   risk score), ``risk features`` + each model floor, and the naive path on a uniform sample of rows:
   ``shap.TreeExplainer(booster).shap_values`` on every row plus per-row Python reason building (sort the
   row's contributions, format the catalog's texts in both languages), extrapolated to N.

Figures dated before 2026-12-07 below are against the old floor (predict + pred_contrib), and the
"features + floor" ones used a features time that could come from an earlier run.

python bench/bench_score.py [--students N] [--quick] [--model-students M] [--sample R] [--champion-from DIR]
  default          4,000,000 students; champion from 200,000 × 4 terms; naive sample 20,000 rows
  --quick          200,000 students; champion from 50,000 × 4 terms
  --champion-from  the challenger registered in DIR (bench_train's data/bench/mlflow-train-1000000x4,
                   for example), promoted in a copy of that store, instead of training one

Measured 2026-11-26 at 1M students (bench_train's 1M × 4 export; the 4M run did not fit the session),
champion from 50k × 4 (227 trees), 2 shared cores at load average 2.7–3.4: risk score 125 s, peak RSS
1,954 MB, 192,109 flagged explained; floor 21 s (predict 4.7 + pred_contrib 16.2), ratio 6.0; with the
56 s of risk features added to the floor, 1.6; naive (features + TreeExplainer + Python reasons on
every row, extrapolated from 20k) 173 s, ratio 0.72.

Measured 2026-11-27, 200k students (validated-200000x4, its own 525-tree champion; ``--students 200000
--model-students 200000 --sample 5000``): risk score 22.2 s, 875 MB; floor 4.0 s (5.6×: at this model
size the features, 9.3 s, outweigh the model); risk features + floor 13.3 s (1.7×); naive 31.0 s (0.72×).
Reading the next bucket's features while this one is scored took the run from 24.1 to 20.5 s (A/B).
At 4M (4M × 2 export validated in 605 s; the same champion; ``--students 4000000 --model-students 200000
--sample 5000``): risk score 333 s, 5,151 MB; floor 89.8 s (predict 23.9 + pred_contrib on 738,525 flagged
65.9), ratio 3.7; risk features (124 s) + floor 1.56; naive 553 s + features, ratio 0.49.

Measured 2026-11-27 at 4M with a national-size champion (``--students 4000000 --champion-from
data/bench/mlflow-train-1000000x4 --sample 5000``: bench_train's 1M × 4 challenger, 1,405 trees), quiet
machine: risk score 595.8 s (6,712 students/s), peak RSS 5,065 MB, 764,411 flagged explained; floor
277.0 s (predict on 4M 86.8 + pred_contrib on the flagged 190.2), ratio 2.15; risk features (130.7 s)
+ floor 1.46; naive (TreeExplainer + Python reasons, 2,588 rows/s, extrapolated) + features 1,676 s,
ratio 0.36. By subtraction, ~188 s is neither features nor the model: reason texts, Parquet parts,
the store, alerts, drift and summaries. The ratio to the floor falls as the model grows (3.7 with 525
trees), since the features cost the same for any model.

Measured 2026-11-27 (later) with the compiled forest (risk.models.forest) predicting the probabilities,
same command and champion, on an hour when the host ran ~1.8x slower (booster.predict 152.8 s where it
had taken 86.8, pred_contrib 376.8 where 190.2, risk features 332.6 where 130.7): risk score 1,172.8 s,
peak RSS 5,338 MB; floor 529.6 s, ratio 2.21; features + floor 1.36 (was 1.46); naive + features 0.30.
The forest on the same 4M rows: 42.6 s, 3.6x faster than booster.predict, the same probabilities bit
for bit. The features slowed 2.5x against the floor's 1.8x, so the ratio to the floor did not fall.

Measured 2026-11-27 (evening), same command and champion (the 1M retrain's 1,405 trees, retrained that
hour), quiet machine, with the TreeSHAP tables explaining the flagged and the writer thread: risk score
350.5 s (11,408 students/s), peak RSS 5,393 MB, 764,411 flagged explained; floor 335.5 s (predict 100.8
+ pred_contrib 234.6), ratio 1.04; features + floor 0.66; naive + features 0.20. The tables on the
flagged rows: 13.1 s, 17.9x faster than pred_contrib, largest difference 3.1e-14 log-odds; the forest
26.2 s, 3.8x booster.predict, bit for bit. risk features alone took 193.5 s: the features are now most
of risk score's time.

Measured 2026-12-07 at 1M (``--students 1000000``: the 1M × 2 export, the 525-tree champion from 200k × 4),
against the same-work floor, load average 2.0 before the run, 3.4 after, 3.9 at the floors' end: risk score
144.6 s, peak RSS 2,126 MB, 191,390 flagged explained; floor 19.2 s (DuckDB aggregates 13.0 + compiled
forest 3.5 + TreeSHAP tables 2.6), ratio 7.55; peers: old floor 53.1 s (predict 12.8 + pred_contrib 40.3),
2.72; risk features (75.8 s, rebuilt) + old floor 1.12; risk features + model floor 1.76; naive + features
0.39. By subtraction ~63 s is neither features nor the model. The same command 16 min earlier, at load
average 7-8 during the run and 3.4 at the floors: 632.6 s against 16.3 s (38.9; the rest ~511 s).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

from bench_features import mid_term
from common import BENCH_DATA, RISK, Measured, ensure_validated, line, measure
from floors import agreement, model_floor, old_model_floor

MODEL = "dropout-risk"


def export(students: int) -> Path:
    """A validated export of ``students``: one the other benches made, else a new one of 2 terms."""
    for terms in (2, 4):
        folder = BENCH_DATA / f"validated-{students}x{terms}"
        if (folder / "validation_report.json").exists():
            print(f"validated export reused: {folder}")
            return folder
    return ensure_validated(students, 2)  # same naming and steps, for 2 terms


def champion(model_students: int, source: Path | None = None) -> Path:
    """The MLflow folder holding a promoted ``dropout-risk`` champion (trained and promoted once).

    With ``source`` (an MLflow folder of ``risk train``, bench_train's for example), its store is
    copied and its challenger promoted in the copy, so no model is trained here and the source's
    own registry is left as it was (the artifacts are read where they are).
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracking = BENCH_DATA / (f"mlflow-score-from-{source.name}" if source else f"mlflow-score-{model_students}x4")
    if (tracking / "mlflow.db").exists():
        mlflow.set_tracking_uri(f"sqlite:///{tracking / 'mlflow.db'}")
        try:
            version = MlflowClient().get_model_version_by_alias(MODEL, "champion").version
            print(f"champion reused: version {version} in {tracking}")
            return tracking
        except MlflowException:
            pass
    if source is not None:
        tracking.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / "mlflow.db", tracking / "mlflow.db")
        measure([*RISK, "promote", "--tracking-dir", str(tracking)], quiet=True)
        print(f"champion: the challenger of {source}, promoted in a copy of its store ({tracking})")
        return tracking
    folder = ensure_validated(model_students, 4)
    trained = measure([*RISK, "train", "--data", str(folder), "--tracking-dir", str(tracking), "--quiet"], quiet=True)
    measure([*RISK, "promote", "--tracking-dir", str(tracking)], quiet=True)
    print(f"champion trained on {model_students:,} × 4 terms and promoted: {trained.seconds:,.1f} s")
    return tracking


def features(folder: Path, as_of: str) -> tuple[Path, Measured]:
    """The feature matrix at ``as_of``, rebuilt and timed in this run (never an earlier run's figure)."""
    out = BENCH_DATA / f"features-{folder.name}-{as_of}.parquet"
    run = measure([*RISK, "features", "--as-of", as_of, "--data", str(folder), "--out", str(out), "--quiet"],
                  quiet=True)
    return out, run


def features_floor(folder: Path, as_ofs: list[str], name: str) -> tuple[dict, Measured]:
    """The features floor (floors.features_child: one DuckDB group-by a point) in a child process."""
    out = BENCH_DATA / f"{name}-floor-features.json"
    run = measure([sys.executable, str(Path(__file__).with_name("floors.py")), "--features-child", str(folder),
                   str(out), *as_ofs])
    return json.loads(out.read_text(encoding="utf-8")), run


def floor_child(tracking: Path, matrix: Path, scores: Path, sample: int, out: Path) -> None:
    """(Child process) the floor on the whole matrix, and the naive path on a sample; timings to ``out``."""
    import numpy as np
    import pandas as pd
    import shap

    from risk.features.catalog import reason_text
    from risk.models.forest import CompiledForest
    from risk.models.tracking import configure_tracking, resolve_model

    configure_tracking(tracking)
    _, bundle = resolve_model(MODEL, "champion")
    names = bundle.names
    keys = pd.read_parquet(matrix, columns=["student_key"])["student_key"]
    X = pd.read_parquet(matrix, columns=names)[names].to_numpy(np.float64)
    scored = pd.read_parquet(scores, columns=["student_key", "risk_class"])
    flagged = np.flatnonzero(keys.isin(scored.loc[scored["risk_class"] != "normal", "student_key"]).to_numpy())

    started = time.perf_counter()
    expected = bundle.booster.predict(X, num_threads=2)
    predict = time.perf_counter() - started
    started = time.perf_counter()
    shap_values = bundle.booster.predict(X[flagged], pred_contrib=True, num_threads=2)
    contrib = time.perf_counter() - started
    # Not part of the floor: the scorer's own predictor and explainer (risk.models.forest) on the same rows.
    started = time.perf_counter()
    forest = CompiledForest.from_booster(bundle.booster, threads=2)
    compiled = forest.predict(X)
    forest_seconds = time.perf_counter() - started
    forest_equal = bool(np.array_equal(compiled, expected))
    del expected, compiled
    started = time.perf_counter()
    tabulated = forest.contributions(X[flagged]) if forest.explains else None
    explain_seconds = time.perf_counter() - started
    explain_error = float(np.abs(tabulated - shap_values).max()) if tabulated is not None else None
    del shap_values, tabulated

    rows = np.random.default_rng(12).choice(len(X), size=min(sample, len(X)), replace=False)
    Xs = X[rows]
    del X
    specs = [bundle.catalog.get(n) for n in names]
    started = time.perf_counter()
    bundle.booster.predict(Xs, num_threads=2)
    values = shap.TreeExplainer(bundle.booster).shap_values(Xs)
    values = values[1] if isinstance(values, list) else values
    texts = []
    for i in range(len(Xs)):  # the plain per-row loop a first version would write
        order = sorted(range(len(names)), key=lambda j: values[i][j], reverse=True)
        en: list[str] = []
        th: list[str] = []
        for j in order:
            if len(en) == 3 or values[i][j] <= 0:
                break
            spec, value = specs[j], float(Xs[i][j])
            if spec.direction == "none" or math.isnan(value):
                continue
            en.append(reason_text(spec, value, "en"))  # the catalog's template forms ({subject|subjects})
            th.append(reason_text(spec, value, "th"))
        texts.append((json.dumps(en), json.dumps(th, ensure_ascii=False)))
    naive = time.perf_counter() - started
    out.write_text(json.dumps({"rows": len(keys), "flagged": len(flagged), "scored": len(scored),
                               "predict_seconds": predict, "contrib_seconds": contrib,
                               "forest_seconds": forest_seconds, "forest_equal": forest_equal,
                               "explain_seconds": explain_seconds, "explain_error": explain_error,
                               "naive_rows": len(rows), "naive_seconds": naive,
                               "trees": bundle.booster.num_trees()}), encoding="utf-8")


def bench(students: int, model_students: int, sample: int, champion_from: Path | None) -> None:
    load = os.getloadavg()
    folder = export(students)
    tracking = champion(model_students, champion_from)
    as_of = mid_term(folder).isoformat()
    store = BENCH_DATA / f"score-{folder.name}.db"
    scores = BENCH_DATA / f"scores-{folder.name}.parquet"
    for path in (store, scores):  # a fresh store each run: no earlier scores to compare alerts with
        path.unlink(missing_ok=True)
    shutil.rmtree(scores.with_name(scores.name + ".parts"), ignore_errors=True)
    load_before = os.getloadavg()
    run = measure([*RISK, "score", "--as-of", as_of, "--data", str(folder), "--store", f"sqlite:///{store}",
                   "--out", str(scores), "--tracking-dir", str(tracking), "--quiet"], quiet=True)
    load_after = os.getloadavg()
    matrix, built = features(folder, as_of)
    floor_features, floor_features_run = features_floor(folder, [as_of], f"score-{folder.name}")
    out = BENCH_DATA / f"score-floor-{folder.name}.json"
    child = measure([sys.executable, __file__, "--floor-child", str(tracking), str(matrix), str(scores), str(sample),
                     str(out)])
    f = json.loads(out.read_text(encoding="utf-8"))
    load_end = os.getloadavg()
    model, model_ways = model_floor(f)
    floor = floor_features["seconds"] + model
    old = old_model_floor(f)
    naive = f["naive_seconds"] * f["scored"] / f["naive_rows"]

    made = f"the challenger of {champion_from.name}" if champion_from else f"{model_students:,} × 4 terms"
    print(f"\nexplained scoring, {f['scored']:,} students at {as_of} ({folder.name}; champion from {made}, "
          f"{f['trees']} trees): {f['flagged']:,} flagged (at-risk or problem) explained")
    print(f"  load average (1/5/15 min): at start {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}; before the measured run "
          f"{load_before[0]:.2f}; after {load_after[0]:.2f}; after the floors {load_end[0]:.2f} (2 cores, shared)")
    print(f"  risk score: {run.seconds:,.1f} s, {f['scored'] / run.seconds:,.0f} students/s, peak RSS "
          f"{run.peak_rss_mb:,.0f} MB (target < 8,192 MB)")
    print(f"  risk features alone (same as_of, rebuilt in this run): {built.seconds:,.1f} s, peak RSS "
          f"{built.peak_rss_mb:,.0f} MB")
    print(f"  features floor (bench/floors.py: one DuckDB group-by per table over the same validated Parquet, "
          f"{floor_features['columns']} columns for {floor_features['rows'][0]:,} students, no point-in-time "
          f"plumbing): {floor_features['seconds']:,.1f} s, peak RSS {floor_features_run.peak_rss_mb:,.0f} MB")
    shares = agreement(matrix, BENCH_DATA / f"score-{folder.name}-floor-features-0.parquet")
    print(f"  the floor's values equal the engine's on {len(shares)} catalog features it computes the same way for "
          f"{min(shares.values()):.1%} to {max(shares.values()):.1%} of students (lowest: {min(shares, key=shares.get)})")
    print(f"  booster.predict on {f['rows']:,} rows {f['predict_seconds']:,.1f} s; pred_contrib on "
          f"{f['flagged']:,} flagged {f['contrib_seconds']:,.1f} s ({f['flagged'] / f['contrib_seconds']:,.0f} rows/s); "
          f"child peak RSS {child.peak_rss_mb:,.0f} MB")
    print(f"  the compiled forest (risk.models.forest, compiled in the time) on the same {f['rows']:,} rows: "
          f"{f['forest_seconds']:,.1f} s, {f['predict_seconds'] / f['forest_seconds']:,.1f}x booster.predict's speed, "
          f"{'the same probabilities bit for bit' if f['forest_equal'] else 'PROBABILITIES DIFFER'}")
    if f["explain_error"] is not None:
        print(f"  its TreeSHAP tables (tabulated in the time) on the same {f['flagged']:,} flagged rows: "
              f"{f['explain_seconds']:,.1f} s, {f['contrib_seconds'] / f['explain_seconds']:,.1f}x "
              f"pred_contrib's speed, largest difference {f['explain_error']:.1e} log-odds")
    else:
        print("  the champion's trees are too large for the TreeSHAP tables: the scorer explains with pred_contrib")
    print(f"  model floor (the faster way for each half): {model_ways} = {model:,.1f} s")
    print(f"  naive: TreeExplainer + Python reasons on {f['naive_rows']:,} rows {f['naive_seconds']:,.1f} s "
          f"({f['naive_rows'] / f['naive_seconds']:,.0f} rows/s) → {naive:,.0f} s for {f['scored']:,}")
    rest = run.seconds - built.seconds - model
    print(f"  where risk score's time goes (by subtraction, as if nothing overlapped): features ~{built.seconds:,.0f} s, "
          f"its predict + SHAP ~{model:,.0f} s, the rest (reason texts, Parquet parts, store, alerts, drift, "
          f"summaries) ~{rest:,.0f} s")
    print("  " + line("risk score", run.seconds, "s", "FLOOR: DuckDB aggregates + model floor", floor))
    print("  peers, for comparison with earlier runs:")
    print("    " + line("risk score", run.seconds, "s", "old floor (more work than the scorer's model step): "
                        "booster.predict + pred_contrib on the flagged", old))
    print("    " + line("risk score", run.seconds, "s", "risk features + the old floor", built.seconds + old))
    print("    " + line("risk score", run.seconds, "s", "risk features + the model floor", built.seconds + model))
    print("    " + line("risk score", run.seconds, "s", "risk features + naive (extrapolated)", built.seconds + naive))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--floor-child":
        tracking, matrix, scores, sample, out = sys.argv[2:7]
        floor_child(Path(tracking), Path(matrix), Path(scores), int(sample), Path(out))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=4_000_000)
    parser.add_argument("--quick", action="store_true", help="200,000 students; champion from 50,000 × 4 terms")
    parser.add_argument("--model-students", type=int, default=None, help="the champion's export (default 200,000)")
    parser.add_argument("--sample", type=int, default=20_000, help="rows explained by the naive path")
    parser.add_argument("--champion-from", type=Path, default=None,
                        help="promote the challenger of this MLflow folder (a copy of it) instead of training one")
    args = parser.parse_args()
    students = 200_000 if args.quick else args.students
    model_students = args.model_students or (50_000 if args.quick else 200_000)
    BENCH_DATA.mkdir(parents=True, exist_ok=True)
    bench(students, model_students, args.sample, args.champion_from)


if __name__ == "__main__":
    main()
