"""Data commands: synth, validate, split-export, contract, features."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from risk.cli.common import (
    REPO_CONFIGS,
    DemoOption,
    ProfileOption,
    QuietOption,
    app,
    console,
    friendly,
    parse_date,
    pseudonym_key,
    read_profile,
)

FIELD_PROFILE = REPO_CONFIGS / "profiles" / "field.yaml"



class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


class ExportStyle(StrEnum):
    clean = "clean"
    field = "field"


StyleOption = Annotated[ExportStyle, typer.Option(
    help="clean: the contract's own format (Parquet, UTF-8 CSV, ISO dates); field: as schools send it "
         f"(Excel, cp874 CSV with Thai headers, Buddhist-Era day-first dates), read back with --profile {FIELD_PROFILE.name}.")]


@app.command()
@friendly
def synth(
    out: Annotated[Path, typer.Option(help="Folder to write the synthetic export into.")] = Path("data/source"),
    students: Annotated[int, typer.Option(min=100, help="Students in the first term.")] = 20_000,
    terms: Annotated[int, typer.Option(min=2, max=12, help="Consecutive terms ending at --last-term.")] = 4,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same data.")] = 7,
    last_term: Annotated[str, typer.Option(help="Last term, Buddhist-Era YYYY-S.")] = "2569-1",
    config: Annotated[Path, typer.Option(help="Generator settings (YAML).")] = REPO_CONFIGS / "synth.yaml",
    style: StyleOption = ExportStyle.clean,
    quiet: QuietOption = False,
    continue_from: Annotated[Path | None, typer.Option(
        "--continue", help="Closed loop: continue this synthetic export by one term, the help schools gave in its "
                           "last term applied with --effect (world, size and terms from its synth_report.json; "
                           "--seed seeds the help).")] = None,
    alerts_from: Annotated[str | None, typer.Option(
        help="With --continue: a teacher model acts on this store's alerts of the source's last term (database URL "
             "or SQLite file); the actions taken are written to OUT/actions.csv for `risk actions import`.")] = None,
    actions_from: Annotated[str | None, typer.Option(
        help="With --continue: apply the actions this store holds for the source's last term instead.")] = None,
    effect: Annotated[str, typer.Option(
        help="With --continue: planted relative effect on dropout per action code, "
             "e.g. home_visit=-0.3,learning_support=-0.2 (an action not named: none).")] = "",
    act_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Teacher model: share of alerts acted on.")] = 0.6,
    selection: Annotated[float, typer.Option(
        help="Teacher model: log-odds of acting per SD of the child's true risk (0: no selection).")] = 1.0,
    arms: Annotated[Path | None, typer.Option(
        help="Pilot arms, CSV of school_id,arm (only alert_now schools see alerts; default: the store's "
             "pilot plan for the term, if any).")] = None,
    demo: DemoOption = False,
) -> None:
    """Write a synthetic national export that follows the data contract, with a hidden oracle."""
    from risk.data.synth import SynthConfig, generate
    from risk.data.synth.field import generate_field_style

    if continue_from is not None:
        loop = {"alerts_from": alerts_from, "actions_from": actions_from, "act_share": act_share,
                "selection": selection, "arms": arms}
        # Continuing links the store's pseudonyms to the export's IDs: the key (or --demo) is needed.
        _continue(continue_from, out, seed, SynthConfig.from_yaml(config), effect, loop, pseudonym_key(demo), quiet)
        return
    settings = {"students": students, "terms": terms, "seed": seed, "last_term": last_term,
                "config": SynthConfig.from_yaml(config), "progress": not quiet}
    if style is ExportStyle.field:
        report, field = generate_field_style(out, profile=FIELD_PROFILE, **settings)
        lines = [*report.summary_lines(), *field.summary_lines(),
                 f"read it back with: risk validate {out} OUT --profile {FIELD_PROFILE}"]
    else:
        lines = generate(out, **settings).summary_lines()
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"written to {out}", highlight=False)


def _continue(source: Path, out: Path, seed: int, config: object, effect: str, loop: dict, key: bytes,
              quiet: bool) -> None:
    """``risk synth --continue``: the teacher model (or the stored actions), then the next term's export."""
    import pandas as pd

    from risk.data.synth import TeacherModel, actions_file, continue_export, parse_effects
    from risk.data.synth.continue_term import plan_from_actions, plan_from_alerts
    from risk.scoring.settings import load_scoring_settings
    from risk.store import open_store

    if loop["alerts_from"] and loop["actions_from"]:
        raise typer.BadParameter("give --alerts-from (the teacher model acts) or --actions-from, not both")
    arms = (pd.read_csv(loop["arms"], dtype=str).set_index("school_id")["arm"].to_dict()
            if loop["arms"] else None)
    if loop["alerts_from"]:
        scoring = load_scoring_settings(REPO_CONFIGS / "scoring.yaml")
        texts = {t.en: code for code, t in scoring.actions.items() if code in scoring.action_codes}
        model = TeacherModel(act_share=loop["act_share"], selection=loop["selection"])
        plan = plan_from_alerts(source, open_store(_store_url(loop["alerts_from"])), key=key, model=model,
                                action_texts=texts, seed=seed, arms=arms)
    elif loop["actions_from"]:
        plan = plan_from_actions(source, open_store(_store_url(loop["actions_from"])), arms=arms)
    else:
        plan = pd.DataFrame({"student_key": [], "code": [], "acted": []})
    report = continue_export(source, out, help_plan=plan, effects=parse_effects(effect), key=key, seed=seed,
                             config=config, progress=not quiet)
    for line in report.summary_lines():
        console.print(line, highlight=False)
    if loop["alerts_from"]:
        written = actions_file(plan, out / "actions.csv")
        console.print(f"{written:,} actions taken: risk actions import {out / 'actions.csv'}", highlight=False)
    console.print(f"written to {out} (truth.parquet: potential outcomes of {report.term})", highlight=False)


def _store_url(text: str) -> str:
    """A database URL as given, or a SQLite file's path made into one."""
    return text if "://" in text else f"sqlite:///{Path(text).resolve()}"


@app.command()
@friendly
def validate(
    sources: Annotated[list[Path], typer.Argument(
        metavar="SOURCE", help="Folders of source exports (Parquet, CSV or Excel per table), validated in "
        "the order given.", show_default=False)],
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Folder for validated Parquet, quarantine and the report.")],
    settings: Annotated[Path, typer.Option(help="Settings (YAML): chunk size, buckets, workers.")] = (
        REPO_CONFIGS / "risk.yaml"),
    workers: Annotated[int | None, typer.Option(min=1, help="Processes for the row rules (default: settings).")] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="Start OUT again from the first export, instead of adding it to the tables OUT holds.")] = False,
    profile: ProfileOption = None,
    accept_loss: Annotated[list[str] | None, typer.Option(
        "--accept-loss", metavar="TABLE",
        help="Take TABLE although it lost more of its rows than the settings allow (repeat for several).")] = None,
    demo: DemoOption = False,
    quiet: QuietOption = False,
) -> None:
    """Check an export against the contract; pseudonymise IDs; quarantine bad rows with their reasons.

    When OUT already holds validated tables, the export is added to them (rows already
    there are quarantined as duplicates; an export validated before is skipped). Several
    exports (a term each, oldest first) are added one after the other, as separate runs
    would add them, in one process.
    """
    from risk.config import load_settings
    from risk.data.validate import validate_sources

    for source in sources:
        if not source.is_dir():
            raise typer.BadParameter(f"{source} is not a folder", param_hint="SOURCE")
    data, key = load_settings(settings).data, pseudonym_key(demo)
    read_as, accepted = read_profile(profile), frozenset(accept_loss or ())
    for i, source in enumerate(sources):
        if len(sources) > 1:
            console.print(f"{source}:", highlight=False)
        report = validate_sources(source, out, key=key, chunk_rows=data.chunk_rows, buckets=data.student_buckets,
                                  memory_limit=data.duckdb_memory_limit, workers=workers or data.workers,
                                  progress=not quiet, replace=replace and i == 0, profile=read_as, accept_loss=accepted,
                                  loss_warn_share=data.loss_warn_share, loss_fail_share=data.loss_fail_share)
        for line in report.summary_lines():
            console.print(line, highlight=False)
        if not report.skipped:
            console.print(f"validated tables in {out}, rejected rows in {out / 'quarantine'}", highlight=False)


@app.command()
@friendly
def features(
    as_of: Annotated[str, typer.Option("--as-of", help="Point in time, YYYY-MM-DD: only rows dated on or before it count.")],
    data: Annotated[Path, typer.Option(help="Validated folder (from risk validate).")] = Path("data/validated"),
    out: Annotated[Path | None, typer.Option(
        help="Feature matrix to write, Parquet (default: data/features.parquet; with --engine spark, the folder "
             "data/features-spark).")] = None,
    catalog: Annotated[Path | None, typer.Option(help="Feature catalog (YAML); default from settings.")] = None,
    settings: Annotated[Path, typer.Option(help="Settings (YAML).")] = REPO_CONFIGS / "risk.yaml",
    engine: Annotated[Engine, typer.Option(
        help="duckdb: one machine, one Parquet file; spark: Spark SQL (local[2], or the cluster of spark-submit), "
             "a folder of Parquet by bucket; --data may then be any Hadoop path (hdfs://, s3a://).")] = Engine.duckdb,
    quiet: QuietOption = False,
) -> None:
    """Build the point-in-time feature matrix of every enrolled student."""
    from risk.config import load_settings
    from risk.features.batch import build_feature_matrix
    from risk.features.catalog import load_catalog
    from risk.features.freshness import log_freshness

    point = parse_date(as_of, "--as-of")
    # Spark writes a folder by bucket: it must not replace batch's one file.
    out = out or Path("data/features-spark" if engine == Engine.spark else "data/features.parquet")
    loaded = load_settings(settings)
    chosen = load_catalog(catalog or loaded.resolve(loaded.features.catalog))
    if engine == Engine.spark:
        from risk.spark.features import build_feature_matrix_spark
        from risk.spark.session import spark_session, submitted_master

        report = build_feature_matrix_spark(spark_session(submitted_master(), progress=not quiet), str(data), point, str(out),
                                            settings=loaded, catalog=chosen)
    else:
        report = build_feature_matrix(data, point, out, settings=loaded, catalog=chosen, progress=not quiet)
    log_freshness(report.freshness, "features")
    for line in report.summary_lines():
        console.print(line, highlight=False)


@app.command()
@friendly
def contract(profile: ProfileOption = None) -> None:
    """Print the source data contract (tables, columns, rules, quarantine reasons) and the source profile, as Markdown."""
    from risk.data.docs import contract_markdown
    from risk.data.profile import profile_markdown

    print(contract_markdown())
    print(profile_markdown(read_profile(profile)))


@app.command("split-export")
@friendly
def split_export_command(
    source: Annotated[Path, typer.Argument(help="Folder of an export covering several terms.")],
    out: Annotated[Path, typer.Argument(help="Folder to write one export per term into (OUT/<term>/).")],
    terms: Annotated[list[str] | None, typer.Option(
        "--term", help="A term to split into, YYYY-S (repeat; default: the terms of the calendar).")] = None,
    style: StyleOption = ExportStyle.clean,
) -> None:
    """Split an export into one export per term, so that terms can be validated one by one (tests, demo).

    With ``--style field`` each term's export is written as schools send it (from a clean export).
    """
    import shutil
    import tempfile

    from risk.data.export_split import split_export
    from risk.data.synth.field import write_field_style

    if not source.is_dir():
        raise typer.BadParameter(f"{source} is not a folder", param_hint="SOURCE")
    if style is ExportStyle.clean:
        for folder in split_export(source, out, terms or None):
            console.print(f"{folder.name}: {folder}", highlight=False)
        return
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".split-clean-", dir=out) as scratch:
        for folder in split_export(source, Path(scratch), terms or None):
            shutil.rmtree(out / folder.name, ignore_errors=True)
            write_field_style(folder, out / folder.name, profile=FIELD_PROFILE)
            console.print(f"{folder.name}: {out / folder.name} (field style)", highlight=False)
