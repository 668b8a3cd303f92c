"""The run: build the world, simulate student chunks term by term, write every table.

Randomness is split into independent streams keyed by (seed, purpose, chunk,
term, table), so a chunk's output depends only on the seed, the run shape and
its own index, and the same arguments give byte-identical files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from risk.data.contract import GRADE_LEVELS, TABLES, term_start
from risk.data.synth.assistance import assistance_batch
from risk.data.synth.attendance import attendance_batch
from risk.data.synth.behaviour import behaviour_batch
from risk.data.synth.calendar import TermGrid, build_grids, consecutive_terms, to_days
from risk.data.synth.config import SynthConfig
from risk.data.synth.dynamics import draw_shocks, evolve_latent, solve_intercepts
from risk.data.synth.frames import Batch, IdDictionary
from risk.data.synth.grades import Curriculum, build_curriculum, grades_batch
from risk.data.synth.health import health_batch
from risk.data.synth.household import household_batch
from risk.data.synth.identity import CHUNK_STRIDE
from risk.data.synth.mess import KINDS, MessContext, inject, new_id_factory
from risk.data.synth.population import Population, new_students
from risk.data.synth.records import calendar_batch, enrollment_batch, schools_batch, truth_table
from risk.data.synth.report import DropoutTally, SynthReport, peak_rss_mb
from risk.data.synth.schools import Schools, build_schools
from risk.data.synth.term import TermView
from risk.data.synth.trajectories import TRANSFERRED, Outcomes, advance, draw_outcomes
from risk.data.synth.writer import PartSink

__all__ = ["OutcomeHook", "generate"]

STUDENT_TABLES = ("enrollments", "attendance_daily", "grades", "household", "health", "behaviour", "assistance")
# Stream purposes (the second key of every generator).
_WORLD, _CHUNK, _TERM, _MESS = 1, 2, 3, 4
# Called after each term's outcomes are drawn, before anything is written, with (chunk, grid, population,
# active students, outcomes, chunk IDs); it may change the outcomes in place (the closed loop's help,
# risk.data.synth.continue_term). It must draw from its own random streams, so the rest stays as it was.
OutcomeHook = Callable[[int, TermGrid, Population, np.ndarray, Outcomes, IdDictionary], None]


@dataclass
class World:
    cfg: SynthConfig
    out_dir: Path
    seed: int
    terms: list[str]
    schools: Schools
    grids: list[TermGrid]
    curriculum: Curriculum
    intercepts: np.ndarray
    school_ids: list[str]
    manifest: list[pa.Table] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    hook: OutcomeHook | None = None

    def rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def sink(self, table: str, part: int) -> PartSink:
        return PartSink(self.out_dir, table, part, csv=table in self.cfg.csv_tables,
                        row_group_rows=self.cfg.row_group_rows, compression=self.cfg.compression)

    def record(self, table: str, relpath: str, rows: np.ndarray, kinds: np.ndarray) -> None:
        if rows.shape[0]:
            n = rows.shape[0]
            self.manifest.append(pa.table({
                "table": pa.array([table] * 1, pa.string()).take(pa.array(np.zeros(n, np.int32))),
                "file": pa.array([relpath], pa.string()).take(pa.array(np.zeros(n, np.int32))),
                "row": pa.array(rows.astype(np.int64)),
                "kind": pa.array(list(KINDS), pa.string()).take(pa.array(kinds.astype(np.int32))),
            }))


def generate(out_dir: Path, *, students: int, terms: int, seed: int, config: SynthConfig,
             last_term: str = "2569-1", progress: bool = True, hook: OutcomeHook | None = None) -> SynthReport:
    """Generate a synthetic national extract under ``out_dir`` and return the run report.

    Parameters
    ----------
    out_dir : folder to write; one sub-folder per contract table, plus ``truth.parquet``,
        ``_injected.parquet`` and ``synth_report.json``. Earlier part files there are removed.
    students : students enrolled in the first term (the population stays roughly stable)
    terms : number of consecutive terms, ending at ``last_term`` (``YYYY-S``, Buddhist Era)
    seed : the run's seed; the same arguments give byte-identical files
    config : calibration (``SynthConfig.from_yaml("configs/synth.yaml")``)
    progress : show a progress bar over student chunks
    hook : changes each term's drawn outcomes before they are written (:data:`OutcomeHook`); None: none
    """
    if students < 1:
        raise ValueError(f"students must be at least 1, got {students}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    _clear(out_dir)
    world = _build_world(out_dir, students, consecutive_terms(last_term, terms), seed, config)
    world.hook = hook
    _write_reference_tables(world)

    sizes = _chunk_sizes(students, config.chunk_size)
    if max(sizes) * 2 >= CHUNK_STRIDE:  # room in the chunk's ID counter range for entrants
        raise ValueError(f"chunk_size {config.chunk_size} is too large (at most {CHUNK_STRIDE // 2 - 1:,})")
    tally = DropoutTally(world.terms)
    truth = pq.ParquetWriter(str(out_dir / "truth.parquet"), _truth_schema(), compression=config.compression)
    with _progress(progress) as bar:
        task = bar.add_task("students", total=students)
        for k, n_k in enumerate(sizes):
            _run_chunk(world, k, n_k, tally, truth)
            bar.advance(task, n_k)
    truth.close()
    manifest = _write_manifest(world)
    report = SynthReport(
        students=students, terms=world.terms, seed=seed, schools=world.schools.n, chunks=len(sizes),
        clean=not config.mess.enabled, rows=world.rows, **_injected_counts(manifest, world.rows), **tally.fill(),
        seconds=round(time.perf_counter() - started, 2), peak_rss_mb=round(peak_rss_mb(), 1),
    )
    (out_dir / "synth_report.json").write_text(report.model_dump_json(indent=2), encoding="utf-8")
    return report


def _clear(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        for old in (out_dir / table).glob("part-*"):
            old.unlink()
    for name in ("truth.parquet", "_injected.parquet", "synth_report.json"):
        (out_dir / name).unlink(missing_ok=True)


def _chunk_sizes(students: int, chunk_size: int) -> list[int]:
    n_chunks = -(-students // chunk_size)
    base, extra = divmod(students, n_chunks)
    return [base + (1 if i < extra else 0) for i in range(n_chunks)]


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TextColumn("students"),
                    TimeElapsedColumn(), disable=not enabled, transient=False)


def _build_world(out_dir: Path, students: int, terms: list[str], seed: int, cfg: SynthConfig) -> World:
    n_schools = max(cfg.min_schools, int(round(students / cfg.students_per_school)))
    schools = build_schools(n_schools, np.random.default_rng([seed, _WORLD, 1]), cfg)
    grids = build_grids(terms, n_schools, np.random.default_rng([seed, _WORLD, 2]), cfg.calendar)
    curriculum = build_curriculum(cfg, np.random.default_rng([seed, _WORLD, 3]))
    pilot_rng = np.random.default_rng([seed, _WORLD, 4])
    pilot_grades = pilot_rng.integers(0, len(GRADE_LEVELS), cfg.hazard.pilot_students)
    pilot = new_students(pilot_grades, 2000, np.arange(cfg.hazard.pilot_students), schools, pilot_rng, cfg)
    intercepts = solve_intercepts(pilot, schools, pilot_rng, cfg)
    return World(cfg, out_dir, seed, terms, schools, grids, curriculum, intercepts, schools.school_id.tolist())


def _write_reference_tables(world: World) -> None:
    empty = IdDictionary(pa.array([], pa.string()))
    ctx = MessContext(ids=np.zeros(0, dtype="U13"), new_ids=new_id_factory(0))
    batches = [(0, schools_batch(world.schools))]
    batches += [(1 + t, calendar_batch(grid, world.schools)) for t, grid in enumerate(world.grids)]
    sinks: dict[str, PartSink] = {}
    for key, batch in batches:
        sink = sinks.setdefault(batch.table, world.sink(batch.table, 0))
        _write(world, sink, batch, world.rng(_MESS, 0, key), ctx, empty)
    for sink in sinks.values():
        _close(world, sink, empty)


def _write(world: World, sink: PartSink, batch: Batch, rng: np.random.Generator, ctx: MessContext,
           ids: IdDictionary) -> None:
    injected = inject(batch, rng, world.cfg.mess, ctx)
    offset = sink.write(batch, ids)
    world.record(batch.table, sink.relpath, offset + injected.rows, injected.kinds)
    if injected.duplicates is not None:
        sink.add_duplicates(injected.duplicates)


def _close(world: World, sink: PartSink, ids: IdDictionary) -> None:
    first, count = sink.close(ids)
    world.record(sink.table, sink.relpath, np.arange(first, first + count),
                 np.full(count, KINDS.index("duplicate"), dtype=np.int8))
    world.rows[sink.table] = world.rows.get(sink.table, 0) + sink.rows


def _run_chunk(world: World, k: int, n_k: int, tally: DropoutTally, truth: pq.ParquetWriter) -> None:
    """Simulate the students of chunk ``k`` over all terms and write their rows."""
    cfg = world.cfg
    rng = world.rng(_CHUNK, k)
    weights = np.array([cfg.population.grade_weight[g] for g in GRADE_LEVELS])
    first_year = world.grids[0].year_be - 543
    grades = rng.choice(len(GRADE_LEVELS), size=n_k, p=weights / weights.sum())
    pop = new_students(grades, first_year, k * CHUNK_STRIDE + np.arange(n_k), world.schools, rng, cfg)
    sinks = {t: world.sink(t, k) for t in STUDENT_TABLES}
    mess_ctx = MessContext(ids=pop.sid, new_ids=new_id_factory(k))
    ids = IdDictionary(pa.array(pop.sid))
    exits = 0
    n_terms = len(world.grids)
    for t, grid in enumerate(world.grids):
        r = lambda purpose, t=t: world.rng(_TERM, k, t, purpose)  # noqa: E731
        act = np.flatnonzero(pop.enrolled)
        if t > 0:
            evolve_latent(pop, act, r(1), cfg)
        if t > 0 and grid.semester == 1 and exits:
            pop = _add_entrants(world, pop, exits, grid, k, r(2))
            exits = 0
            ids = IdDictionary(pa.array(pop.sid))
            mess_ctx.ids = pop.sid
            act = np.flatnonzero(pop.enrolled)
        last = t == n_terms - 1
        shocks = draw_shocks(pop, act, grid, r(3), cfg)
        out = draw_outcomes(pop, act, grid, shocks, world.schools, world.intercepts, last, r(4), cfg)
        if world.hook is not None:
            world.hook(k, grid, pop, act, out, ids)
        view = TermView(pop, act, grid, world.schools, shocks, out, cfg, first=t == 0)
        attendance, rate = attendance_batch(view, r(5))
        grades_b, gpa, fail = grades_batch(view, rate, world.curriculum, grid.term, r(6))
        pop.gpa[act], pop.fail_share[act] = gpa, fail
        batches = [enrollment_batch(view, world.school_ids), attendance, grades_b, household_batch(view, r(7)),
                   health_batch(view, r(8)), behaviour_batch(view, r(9)), assistance_batch(view, r(10))]
        mess_ctx.term_start_day = to_days(term_start(grid.term))
        for j, batch in enumerate(batches):
            if batch is not None:
                _write(world, sinks[batch.table], batch, world.rng(_MESS, k + 1, t, j), mess_ctx, ids)
        truth.write_table(truth_table(view, ids, last))
        if not last:
            tally.add(t, pop.grade[act].astype(np.int64), out.dropout, out.within, out.p_dropout,
                      int((out.dropout & ~out.within & (out.status == TRANSFERRED)).sum()))
            exits += advance(pop, act, out, grid, world.schools, r(11), cfg)
        else:
            tally.mid_term[t] += np.bincount(pop.grade[act][out.within], minlength=len(GRADE_LEVELS))
            tally.enrolled[t] += np.bincount(pop.grade[act], minlength=len(GRADE_LEVELS))
    for sink in sinks.values():
        _close(world, sink, ids)


def _add_entrants(world: World, pop: Population, n: int, grid: TermGrid, k: int,
                  rng: np.random.Generator) -> Population:
    """New students for the academic year starting with ``grid`` (as many as left since the last one)."""
    cfg = world.cfg
    keys = list(cfg.population.entrant_grade)
    p = np.array([cfg.population.entrant_grade[g] for g in keys])
    grades = np.array([GRADE_LEVELS.index(g) for g in keys])[rng.choice(len(keys), size=n, p=p / p.sum())]
    start = k * CHUNK_STRIDE + pop.n
    new = new_students(grades, grid.year_be - 543, start + np.arange(n), world.schools, rng, cfg)
    pop.extend(new)
    return pop


def _truth_schema() -> pa.Schema:
    floats = ("p_dropout", "poverty", "family_instability", "health", "engagement", "ability",
              "school_effect", "district_effect")
    fields = [("student_id", pa.string()), ("term", pa.string())]
    fields += [(floats[0], pa.float64()), ("dropped_out", pa.bool_())]
    fields += [("grade_level", pa.string()), ("school_id", pa.string()), ("status", pa.string())]
    fields += [(f, pa.float64()) for f in floats[1:]]
    fields += [(f, pa.bool_()) for f in ("shock_migration", "shock_job_loss", "shock_illness", "shock_pregnancy",
                                          "dropped_mid_term", "deceased")]
    return pa.schema(fields)


def _write_manifest(world: World) -> pa.Table:
    schema = pa.schema([("table", pa.string()), ("file", pa.string()), ("row", pa.int64()), ("kind", pa.string())])
    table = pa.concat_tables(world.manifest) if world.manifest else schema.empty_table()
    pq.write_table(table, str(world.out_dir / "_injected.parquet"), compression=world.cfg.compression)
    return table


def _injected_counts(manifest: pa.Table, rows: dict[str, int]) -> dict:
    counts: dict[str, dict[str, int]] = {t: {} for t in TABLES}
    if manifest.num_rows:
        grouped = manifest.group_by(["table", "kind"]).aggregate([("row", "count")])
        for table, kind, n in zip(grouped["table"].to_pylist(), grouped["kind"].to_pylist(),
                                  grouped["row_count"].to_pylist(), strict=True):
            counts[table][kind] = n
    share = {t: round(sum(counts[t].values()) / max(rows.get(t, 0), 1), 5) for t in TABLES}
    return {"injected": counts, "injected_share": share}
