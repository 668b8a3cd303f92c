"""``risk actions import FILE``: actions recorded outside the engine (CSV or Excel), brought into the store.

IDs are pseudonymised as the file is read (:mod:`risk.data.actions_import`); each action is
linked to its student's alert when there is one (:func:`risk.store.import_actions`). Bad
rows go to a quarantine CSV beside the file (IDs masked), with their rule. The counts add
up: rows read = stored + quarantined. Exit code 0 when every row was stored, 1 when some
were quarantined (the rest stored), 2 when nothing could be done (an unreadable file, no key).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from risk.cli.common import (
    REPO_CONFIGS,
    DemoOption,
    StoreOption,
    app,
    console,
    friendly,
    open_data_store,
    pseudonym_key,
)

if TYPE_CHECKING:
    import pandas as pd

    from risk.data.actions_import import ActionFile
    from risk.store import ImportedActions

__all__ = ["actions_app", "import_command", "quarantine_rows"]

actions_app = typer.Typer(help="Actions schools took for students, as action codes: import those recorded elsewhere.",
                          no_args_is_help=True)
app.add_typer(actions_app, name="actions")


@actions_app.command("import")
@friendly
def import_command(
    file: Annotated[Path, typer.Argument(help="Action file, CSV or .xlsx: student_id (or student_key), date, code, "
                                              "optional note and school_id.")],
    data: Annotated[Path, typer.Option(help="Validated folder (locates the default store).")] = Path("data/validated"),
    store: StoreOption = None,
    config: Annotated[Path, typer.Option("--config", help="Scoring settings (YAML): the action codes.")]
    = REPO_CONFIGS / "scoring.yaml",
    quarantine: Annotated[Path | None, typer.Option(
        help="Where bad rows go (CSV, IDs masked; default: FILE's name with .quarantine.csv, beside it).")] = None,
    demo: DemoOption = False,
) -> None:
    """Import actions recorded elsewhere: pseudonymise IDs, link each to its student's alert, quarantine bad rows."""
    from risk.data.actions_import import read_action_file
    from risk.scoring.settings import load_scoring_settings
    from risk.store import import_actions

    codes = load_scoring_settings(config).action_codes
    read = read_action_file(file, pseudonym_key(demo), codes)
    outcome = import_actions(open_data_store(store, data), read.clean)
    bad = quarantine_rows(read, outcome)
    console.print(f"{file.name}: {read.rows:,} rows = {outcome.stored:,} stored ({outcome.linked:,} linked to an "
                  f"alert) + {len(bad):,} quarantined", highlight=False)
    if len(bad):
        where = quarantine or file.with_name(f"{file.stem}.quarantine.csv")
        bad.to_csv(where, index=False)
        for rule, n in bad["rule"].value_counts().sort_index().items():
            console.print(f"  {rule}: {n:,}", highlight=False)
        console.print(f"quarantined rows (IDs masked): {where}", highlight=False)
        raise typer.Exit(1)


def quarantine_rows(read: ActionFile, outcome: ImportedActions) -> pd.DataFrame:
    """The file's bad rows and those the store refused, in file order: row, rule, column, value, detail."""
    import pandas as pd

    refused = outcome.refused.merge(read.clean[["row", "id_hint", "student_key"]], on="row", how="left")
    shown = [hint or str(key) for hint, key in zip(refused["id_hint"], refused["student_key"], strict=True)]
    refused = refused.assign(column="student_id", value=shown)[["row", "rule", "column", "value", "detail"]]
    parts = [p for p in (read.quarantined, refused) if len(p)]
    if not parts:
        return read.quarantined
    return pd.concat(parts, ignore_index=True).sort_values("row", kind="stable").reset_index(drop=True)
