"""``risk pilot plan``: a randomised wait-list pilot of one term (issue 30), and ``risk pilot show``.

The plan assigns the term's schools, within strata and from a seed, to get alerts now or to
wait until the next term (:mod:`risk.impact.plan`); it is stored in the store and logged to
MLflow, and the command prints what the pilot can detect. While the term runs, wait-list
schools' students are scored as usual, but no alert of theirs is shown (:mod:`risk.store.pilot`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from risk.cli.common import (
    REPO_CONFIGS,
    StoreOption,
    TrackingDirOption,
    app,
    console,
    friendly,
    open_data_store,
)

__all__ = ["pilot_app", "plan_command", "show_command"]

pilot_app = typer.Typer(help="Randomised wait-list pilots: which schools see alerts this term, which from the next.",
                        no_args_is_help=True)
app.add_typer(pilot_app, name="pilot")

TermOption = Annotated[str, typer.Option("--term", help="The pilot term, Buddhist-Era year and semester (2569-1).")]
DataOption = Annotated[Path, typer.Option(help="Validated folder (from risk validate).")]


@pilot_app.command("plan")
@friendly
def plan_command(
    term: TermOption,
    seed: Annotated[int, typer.Option(help="Seed of the draw: the same schools and seed give the same plan.")],
    share: Annotated[float, typer.Option(help="Share of schools that get alerts now, between 0 and 1.")] = 0.5,
    stratify: Annotated[str, typer.Option(
        help="Strata, comma-separated: province, district, region, area, affiliation, size (OBEC class of the "
             "term's students); 'none' for one stratum.")] = "province,size",
    data: DataOption = Path("data/validated"),
    store: StoreOption = None,
    settings: Annotated[Path, typer.Option(help="Settings (YAML): the label rules.")] = REPO_CONFIGS / "risk.yaml",
    tracking_dir: TrackingDirOption = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment of pilot plans.")] = "dropout-risk-pilots",
    past_terms: Annotated[int, typer.Option(min=1, help="Past terms the base rate and ICC come from, at most.")] = 4,
    power: Annotated[float, typer.Option(min=0.5, max=0.99, help="Power of the minimum detectable effect.")] = 0.8,
    replace: Annotated[bool, typer.Option("--replace", help="Draw again for a term that has a plan.")] = False,
) -> None:
    """Assign the term's schools at random to alert now or wait-list; store the plan, log it, print its MDE."""
    from risk.config import load_settings
    from risk.impact.plan import plan_lines, plan_pilot, record_plan
    from risk.models.tracking import configure_tracking

    strata = [] if stratify.strip().lower() == "none" else [s.strip() for s in stratify.split(",") if s.strip()]
    policy = load_settings(settings).labels
    opened = open_data_store(store, data)
    result = plan_pilot(opened, data, term=term, share=share, strata=strata, seed=seed, policy=policy,
                        replace=replace, past_terms=past_terms, power=power)
    home = tracking_dir or data.resolve().parent
    configure_tracking(home)
    result = record_plan(opened, result, tracking_dir=home, experiment=experiment, replace=replace)
    for line in plan_lines(result):
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"stored in {opened.url}; MLflow run {result.record.mlflow_run_id} in experiment {experiment}",
                  highlight=False, soft_wrap=True)


@pilot_app.command("show")
@friendly
def show_command(term: TermOption, data: DataOption = Path("data/validated"), store: StoreOption = None,
                 out: Annotated[Path | None, typer.Option(help="Write the schools' arms here (CSV).")] = None) -> None:
    """The term's standing plan: its seed, strata and schools per arm (and each school's arm with --out)."""
    from risk.store import pilot_arms, pilot_plan

    opened = open_data_store(store, data)
    plan = pilot_plan(opened, term)
    if plan is None:
        console.print(f"term {term} has no pilot plan (risk pilot plan --term {term} makes one)", highlight=False)
        raise typer.Exit(1)
    arms = pilot_arms(opened, term)
    counts = arms["arm"].value_counts()
    console.print(f"pilot {plan.pilot_id}: term {plan.term}, made {plan.created_at:%Y-%m-%d %H:%M} UTC, share "
                  f"{plan.share:g}, strata {', '.join(plan.strata) or 'none'}, seed {plan.seed}; "
                  f"{counts.get('alert_now', 0):,} alert now, {counts.get('wait_list', 0):,} wait-list; "
                  f"MLflow run {plan.mlflow_run_id or 'none'}", highlight=False, soft_wrap=True)
    if out is not None:
        arms.to_csv(out, index=False)
        console.print(f"arms written to {out}", highlight=False)
