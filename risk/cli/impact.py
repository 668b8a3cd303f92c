"""``risk impact --term T``: did the alerts and the help keep term T's children in school? (issue 30)

Once term T+1's register is in the validated data, the command assembles what happened to each
student of T (:mod:`risk.impact.outcomes`), estimates the pilot's effect and each action's
(:mod:`risk.impact.run`), logs them to MLflow (the pilots experiment) and stores them, where
the term report's section "Did the help work?" reads them. It prints the estimates as a table.
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

__all__ = ["impact_command"]

ESTIMANDS = {"dropout_rate": "dropout, flagged", "itt": "pilot effect (ITT)", "itt_relative": "ITT, relative",
             "itt_randomisation": "ITT, randomisation", "complier_iv": "IV: schools that acted",
             "action_naive": "naive", "action_adjusted": "adjusted"}


@app.command("impact")
@friendly
def impact_command(
    term: Annotated[str, typer.Option("--term", help="The term whose outcome to estimate (2569-1).")],
    data: Annotated[Path, typer.Option(help="Validated folder (from risk validate).")] = Path("data/validated"),
    store: StoreOption = None,
    settings: Annotated[Path, typer.Option(help="Settings (YAML): the label rules and the features.")] = REPO_CONFIGS / "risk.yaml",
    tracking_dir: TrackingDirOption = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment of pilots.")] = "dropout-risk-pilots",
    permutations: Annotated[int, typer.Option(min=100, help="Re-draws for randomisation inference.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the re-draws and the cross-fitting folds.")] = 0,
) -> None:
    """Estimate what the alerts (pilot, randomised) and each action (observational) changed in term T's dropout."""
    from risk.config import load_settings
    from risk.impact.outcomes import check_term, term_outcomes
    from risk.impact.run import estimate_impact, record_impact
    from risk.models.tracking import configure_tracking

    check_term(term)  # before the store is opened (and made, when it is a new SQLite file)
    loaded = load_settings(settings)
    opened = open_data_store(store, data)
    # The settings also name the features: each action's estimate adjusts for the term's feature point.
    outcomes = term_outcomes(opened, data, term, loaded.labels, settings=loaded)
    result = estimate_impact(outcomes, permutations=permutations, seed=seed)
    home = tracking_dir or data.resolve().parent
    configure_tracking(home)
    result = record_impact(opened, result, tracking_dir=home, experiment=experiment)
    console.print(_table(result.estimates, term))
    for note in result.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    if outcomes.unknown_outcome:
        console.print(f"note: {outcomes.unknown_outcome:,} students of {term} have no known outcome (death, or a "
                      "transfer found nowhere) and are left out", highlight=False, soft_wrap=True)
    console.print(f"{len(result.estimates)} estimates stored in {opened.url}; MLflow run {result.mlflow_run_id} "
                  f"in experiment {experiment}", highlight=False, soft_wrap=True)


def _table(estimates, term: str):
    """The estimates as a rich table that fits 80 columns: randomised ones first, then the weaker ones.

    Percentage points, except the relative effect and the dropout rate (percent).
    """
    from rich import box
    from rich.table import Table

    table = Table(title=f"Did the help work? Term {term}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="Effects in percentage points of dropout (relative: percent).\n"
                          "Naive: acted vs not, biased by whom teachers chose; adjusted: AIPW on score and features.", caption_justify="left")
    table.add_column("estimate of", min_width=22, ratio=1)
    for name in ("effect", "95% CI", "p", "students", "schools"):
        table.add_column(name, justify="right", no_wrap=True)
    groups = (("randomised", estimates["evidence"] == "randomised"),
              ("weaker: observational", estimates["evidence"] != "randomised"))
    for heading, chosen in groups:
        if not chosen.any():
            continue
        table.add_row(f"[bold]{heading}[/bold]")
        for row in estimates[chosen].itertuples(index=False):
            table.add_row(*_cells(row))
        table.add_section()
    return table


def _cells(row) -> tuple[str, ...]:
    """One estimate's cells: what it estimates (and for which action), effect, CI, p, counts."""
    unit = "%" if row.estimand in ("itt_relative", "dropout_rate") else ""
    ci = "–" if row.ci_low != row.ci_low else f"{100 * row.ci_low:+.1f} to {100 * row.ci_high:+.1f}{unit}"
    p = "–" if row.p_value != row.p_value else "<0.001" if row.p_value < 0.001 else f"{row.p_value:.3f}"
    sign = "" if row.estimand == "dropout_rate" else "+"
    what = ESTIMANDS.get(row.estimand, row.estimand)
    if isinstance(row.action_code, str) and row.action_code:
        what = f"{row.action_code}, {what}"
    return (what, f"{100 * row.estimate:{sign}.1f}{unit}", ci, p, f"{row.n_students:,}", f"{row.n_schools:,}")
