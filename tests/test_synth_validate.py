"""The synthetic export through the validator: exactly the rows the generator broke are quarantined."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from risk.data.synth import SynthConfig, generate
from risk.data.validate import validate_sources

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "synth.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root / "source", students=1500, terms=3, seed=5, config=SynthConfig.from_yaml(CONFIG), progress=False)
    report = validate_sources(root / "source", root / "validated", key=b"synth-test-key-0123456789",
                              progress=False, buckets=4)
    return root, report


def test_quarantine_is_exactly_the_injected_rows_with_their_rule(run):
    root, _ = run
    injected = pd.read_parquet(root / "source" / "_injected.parquet")
    quarantined = pd.concat(
        [pd.read_parquet(f).assign(table=f.parent.name) for f in (root / "validated" / "quarantine").glob("*/*.parquet")],
        ignore_index=True,
    )
    merged = injected.merge(quarantined[["table", "_file", "_row", "rules"]], how="outer", indicator=True,
                            left_on=["table", "file", "row"], right_on=["table", "_file", "_row"])
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    assert all(kind in rules.split(";") for kind, rules in zip(merged["kind"], merged["rules"], strict=True))


def test_counts_add_up_for_every_table(run):
    _, report = run
    assert len(report.tables) == 9
    for table in report.tables:
        assert table.rows_in == table.used + table.quarantined
