"""``make bench-national``: one national term with ``risk term``, beside the floor for the same work, in the same run.

1. A synthetic national export, N students × T terms (default 4,000,000 × 4), generated once and split by
   term (``risk split-export``), as the exports arrive term by term.
2. The store as the earlier terms' jobs leave it (built once, reused, not timed): every term but the newest
   validated into it one at a time, and the feature points of the terms whose outcome is known cached.
3. The measured run: ``risk term --source <newest term's export> --as-of …`` in a child process (wall time
   and peak RSS of the whole tree); its own step table is printed as it ends. It validates the new
   export, builds the points of the term whose outcome the new export reveals, trains, promotes,
   scores every enrolled student with reasons, stores alerts and summaries, and writes the report.
4. The floor for the same work, the fastest known way to do each part, each in a child process of its own
   (bench/floors.py): a pyarrow scan of the new export (every table, every column); one plain DuckDB
   group-by per table at each feature point the run built and at the scoring as_of (per-student
   aggregates, no point-in-time plumbing); bare ``lgb.Dataset`` + ``lightgbm.train`` on the same fitting
   rows for as many rounds as the trainer grew (bench_train.floor_child); the faster of the compiled
   forest and ``booster.predict`` on every enrolled student plus the faster of the TreeSHAP tables and
   ``pred_contrib`` on the flagged (bench_score.floor_child). The feature matrix the model floor reads is
   rebuilt in the run (``risk features``, timed and printed beside, not part of the floor).
5. The old floor as a peer: scan + ``lightgbm.train`` + ``booster.predict`` + ``pred_contrib``, with no
   features at all (the 2026-11-26 ratio below is against it).

Training at national scale uses configs/train.yaml with two changes, written to the bench folder:
negatives down-sampled to 0.25 (weights 1/0.25 restore the base rate) and sample points at school
weeks 6 and 12 plus the last school day (week 6 is the lead-time week; five points per term at 4M
students is 20M rows a term, more than the model needs and more than the hour allows).

python bench/bench_national.py [--students N] [--terms T] [--as-of YYYY-MM-DD]

Measured 2026-11-26, 4M × 4 terms (newest 2569-1, 448M rows), load average 1.9 before and 1.3 after:
risk term 3,296 s (54.9 min), peak RSS 7,159 MB: validate 757, features 949 (3 points built, 6 reused),
train 401 (2.24M rows, 1,500 trees, held-out AUC 0.8725), score 1,115 (777,103 of 3,998,965 flagged),
alerts 45, summaries 6, report 16. Floor 732 s: scan 27, Dataset + lightgbm.train 183 (1.90M rows),
predict 159 + pred_contrib 363; ratio 4.5. Preparing the store (not timed): validate 3 terms 1,080 /
868 / 577 s (the first two while other work shared the cores), 6 feature points 1,259 s.

Measured 2026-12-07, 200k × 4 terms (``--students 200000 --terms 4``; the 1M run did not fit the session),
load average 7-8 throughout: risk term 999 s, peak RSS 2,410 MB: validate 208, features 299 (3 points
built), train 298 (111,719 rows, 470 trees), score 136 (37,313 of 199,947 flagged). Same-work floor 365 s:
scan 10.7, DuckDB aggregates at the 3 built points + the scoring as_of 84.3, Dataset + lightgbm.train 266.9
(95,157 rows, 550 rounds), compiled forest 1.5 + TreeSHAP tables 1.8; ratio 2.74. Old floor (no features;
predict 3.4 + pred_contrib 16.7) 298 s, 3.36.

Measured 2026-12-07 later, 1M × 4 terms (``--students 1000000 --terms 4``), load average 4.55 before the
measured run (the end of a test run overlapped validation), 2.04 after: risk term 620 s, peak RSS 3,478 MB:
validate 264, features 156 (3 points built, 6 reused), train 95 (557,389 rows, 1,009 trees, AUC 0.879),
score 80 (187,462 of 999,748 flagged), alerts 9, summaries 1, report 6. Same-work floor 65.2 s: scan 6.5,
DuckDB aggregates 27.9, Dataset + lightgbm.train 24.0 (473,950 rows), compiled forest 4.4 + TreeSHAP
tables 2.5; ratio 9.51. Old floor (predict 15.7 + pred_contrib 37.0) 83.2 s, 7.46.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml
from bench_score import features_floor
from common import BENCH_DATA, RISK, ROOT, ensure_synthetic, line, measure
from floors import model_floor, old_model_floor

NATIONAL = 4_000_000
LAST_TERM = "2569-1"
AS_OF = "2026-07-24"  # mid-term of 2569-1 in the synthetic calendar (the demo's date too)
NATIONAL_SAMPLES = {"weeks": [6, 12], "last_school_day": True, "negative_share": 0.25}


def national_config() -> Path:
    """configs/train.yaml with the national sample settings, under the bench data folder."""
    data = yaml.safe_load((ROOT / "configs" / "train.yaml").read_text(encoding="utf-8"))
    data["samples"].update(NATIONAL_SAMPLES)
    path = BENCH_DATA / "train-national.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def exports(source: Path) -> dict[str, Path]:
    """The export split by term (once): term -> folder."""
    folder = source.with_name(source.name + "-by-term")
    if not (folder / ".done").exists():
        measure([*RISK, "split-export", str(source), str(folder)], quiet=True)
        (folder / ".done").touch()
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_dir()}


def prepared_store(store: Path, by_term: dict[str, Path], config: Path) -> None:
    """The store as the earlier terms' jobs leave it: their exports validated, their known points cached."""
    done = store / ".prepared"
    if done.exists():
        print(f"prepared store reused: {store}")
        return
    *earlier, _ = sorted(by_term)
    for term in earlier:
        run = measure([*RISK, "validate", str(by_term[term]), str(store / "validated"), "--demo", "--quiet"],
                      quiet=True)
        print(f"  prepare: validate {term}: {run.seconds:,.0f} s, peak RSS {run.peak_rss_mb:,.0f} MB")
    run = measure([sys.executable, __file__, "--warm-child", str(store / "validated"), str(config)])
    print(f"  prepare: feature points of the known terms: {run.seconds:,.0f} s, peak RSS {run.peak_rss_mb:,.0f} MB")
    done.touch()


def warm_child(validated: Path, config: Path) -> None:
    """(Child process) cache the points ``risk term``'s features step would build for the terms known now."""
    from risk.config import load_settings
    from risk.features.cache import DataFiles, cached_features
    from risk.features.catalog import load_catalog
    from risk.models.samples import outcome_connection
    from risk.models.settings import load_train_settings
    from risk.models.term_split import known_outcome_terms, sample_points

    settings = load_settings(ROOT / "configs" / "risk.yaml")
    ts = load_train_settings(config)
    catalog = load_catalog(settings.resolve(settings.features.catalog))
    con = outcome_connection(validated, settings)
    weeks = sorted({*ts.samples.weeks, ts.evaluation.lead_time_week})
    points = [p for t in known_outcome_terms(con) for p in sample_points(con, t, weeks, ts.samples.last_school_day)]
    files = DataFiles.scan(validated)
    for point in points:
        started = time.perf_counter()
        _, reused = cached_features(validated, point.as_of, settings=settings, catalog=catalog, inputs=files)
        print(f"    point {point.as_of} ({point.term}): {'reused' if reused else 'built'} "
              f"in {time.perf_counter() - started:,.0f} s", flush=True)


def known_points(validated: Path, config: Path) -> set[str]:
    """The dates (ISO) of the feature points ``risk term``'s features step needs for the terms known in ``validated``."""
    from risk.config import load_settings
    from risk.models.samples import outcome_connection
    from risk.models.settings import load_train_settings
    from risk.models.term_split import known_outcome_terms, sample_points

    settings = load_settings(ROOT / "configs" / "risk.yaml")
    ts = load_train_settings(config)
    con = outcome_connection(validated, settings)
    weeks = sorted({*ts.samples.weeks, ts.evaluation.lead_time_week})
    return {p.as_of.isoformat() for t in known_outcome_terms(con)
            for p in sample_points(con, t, weeks, ts.samples.last_school_day)}


def scan_child(export: Path, out: Path) -> None:
    """(Child process) the scan floor: every table of the export read whole with pyarrow."""
    import pyarrow.dataset as ds

    started = time.perf_counter()
    rows = 0
    for table in sorted(p for p in export.iterdir() if p.is_dir()):
        files = [f for f in table.iterdir() if f.suffix in (".parquet", ".csv")]
        if files:
            rows += ds.dataset(files, format=files[0].suffix.lstrip(".")).to_table().num_rows
    out.write_text(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}), encoding="utf-8")


def bench(students: int, terms: int, as_of: str) -> None:
    from bench_train import last_run

    config = national_config()
    source = ensure_synthetic(students, terms)
    by_term = exports(source)
    newest = max(by_term)
    store = BENCH_DATA / f"national-{students}x{terms}"
    prepared_store(store, by_term, config)

    points_before = known_points(store / "validated", config)
    load_before = os.getloadavg()
    print(f"\nrisk term on {newest} ({students:,} students), as of {as_of}:", flush=True)
    run = measure([*RISK, "term", "--source", str(by_term[newest]), "--as-of", as_of, "--store", str(store),
                   "--train-config", str(config), "--demo", "--quiet"])
    load_after = os.getloadavg()

    scan_out = BENCH_DATA / f"{store.name}-floor-scan.json"
    measure([sys.executable, __file__, "--scan-child", str(by_term[newest]), str(scan_out)])
    scan = json.loads(scan_out.read_text(encoding="utf-8"))

    metrics, params = last_run(store)
    ts = yaml.safe_load(config.read_text(encoding="utf-8"))["lightgbm"]
    rounds = min(int(params["trees"]) + ts["early_stopping_rounds"], ts["max_trees"])
    train_out = BENCH_DATA / f"{store.name}-floor-train.json"
    train_run = measure([sys.executable, str(ROOT / "bench" / "bench_train.py"), "--floor-child",
                         str(store / "validated"), str(config), str(rounds), str(train_out)])
    train = json.loads(train_out.read_text(encoding="utf-8"))

    # The features floor: the points the run built (those its new export made known) and the scoring as_of.
    built_points = sorted(known_points(store / "validated", config) - points_before)
    floor_features, floor_features_run = features_floor(store / "validated", [*built_points, as_of], store.name)

    # The model floor's input, rebuilt and timed in this run (risk features alone, for comparison).
    matrix = BENCH_DATA / f"{store.name}-features-{as_of}.parquet"
    built = measure([*RISK, "features", "--as-of", as_of, "--data", str(store / "validated"), "--out", str(matrix),
                     "--quiet"], quiet=True)
    score_out = BENCH_DATA / f"{store.name}-floor-score.json"
    score_run = measure([sys.executable, str(ROOT / "bench" / "bench_score.py"), "--floor-child", str(store),
                         str(matrix), str(store / "scores.parquet"), "2000", str(score_out)])
    score = json.loads(score_out.read_text(encoding="utf-8"))
    load_end = os.getloadavg()

    model, model_ways = model_floor(score)
    floor = scan["seconds"] + floor_features["seconds"] + train["floor_seconds"] + model
    old = scan["seconds"] + train["floor_seconds"] + old_model_floor(score)
    print(f"\nnational term, {students:,} students × {terms} terms (newest {newest}, as of {as_of})")
    print(f"  load average before the measured run {load_before[0]:.2f}, after {load_after[0]:.2f}, after the floors "
          f"{load_end[0]:.2f} (2 cores, shared)")
    print(f"  risk term: {run.seconds:,.0f} s ({run.seconds / 60:,.1f} min), peak RSS {run.peak_rss_mb:,.0f} MB "
          "(targets: < 3,600 s, < 8,192 MB)")
    print(f"  training: {int(params['rows.train.rows']):,} rows, {params['trees']} trees kept, {rounds} grown; "
          f"held-out AUC {metrics.get('test.model.roc_auc', float('nan')):.4f}")
    print(f"  floor, part by part: pyarrow scan of the new export {scan['seconds']:,.1f} s ({scan['rows']:,} rows); "
          f"DuckDB aggregates (bench/floors.py) at {len(built_points)} built point(s) + the scoring as_of "
          f"{floor_features['seconds']:,.1f} s ({floor_features['columns']} columns, peak "
          f"{floor_features_run.peak_rss_mb:,.0f} MB); Dataset + lightgbm.train {train['floor_seconds']:,.1f} s "
          f"({train['rows']:,} rows, peak {train_run.peak_rss_mb:,.0f} MB); model {model_ways} on {score['rows']:,} "
          f"rows / {score['flagged']:,} flagged (peak {score_run.peak_rss_mb:,.0f} MB); total {floor:,.0f} s")
    print(f"  beside them: booster.predict {score['predict_seconds']:,.1f} s, pred_contrib {score['contrib_seconds']:,.1f} s; "
          f"risk features alone at the scoring as_of (rebuilt in this run) {built.seconds:,.1f} s")
    print("  " + line("risk term", run.seconds, "s", "FLOOR: scan + DuckDB aggregates + lightgbm.train + model floor",
                      floor))
    print("  peer, for comparison with earlier runs:")
    print("    " + line("risk term", run.seconds, "s", "old floor (no features; booster.predict + pred_contrib): "
                        "scan + lightgbm.train + predict/pred_contrib", old))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--warm-child":
        warm_child(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--scan-child":
        scan_child(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=NATIONAL)
    parser.add_argument("--terms", type=int, default=4, help="terms of history, the newest being the one scored")
    parser.add_argument("--as-of", default=AS_OF)
    args = parser.parse_args()
    BENCH_DATA.mkdir(parents=True, exist_ok=True)
    bench(args.students, args.terms, args.as_of)


if __name__ == "__main__":
    main()
