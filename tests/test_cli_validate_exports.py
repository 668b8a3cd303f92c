"""`risk validate SOURCE... OUT`: several term exports in one command give the store that one command
a term gives (make demo validates its earlier terms this way, one process instead of one a term)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from risk.cli import app
from risk.data.export_split import split_export
from risk.data.synth import SynthConfig, generate

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def terms(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("exports")
    generate(root / "source", students=60, terms=3, seed=5, config=SynthConfig.from_yaml(REPO / "configs" / "synth.yaml"),
             progress=False)
    return split_export(root / "source", root / "terms")


def _rows(store: Path) -> dict[str, list[tuple]]:
    """Every validated and quarantined folder's rows, sorted (staging folders, ``_…``, left out)."""
    folders = [p for p in store.rglob("*") if p.is_dir() and any(p.glob("*.parquet"))
               and not p.relative_to(store).parts[0].startswith("_")]
    return {str(folder.relative_to(store)): sorted(map(repr, duckdb.sql(
        f"SELECT * FROM read_parquet('{folder}/*.parquet', union_by_name = true)").fetchall())) for folder in sorted(folders)}


def test_several_exports_in_one_command_equal_one_command_a_term(terms: list[Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_ID_KEY", "a-test-key-of-enough-length")
    together, apart = tmp_path / "together", tmp_path / "apart"
    result = runner.invoke(app, ["validate", *map(str, terms), str(together), "--quiet"])
    assert result.exit_code == 0, result.output
    assert all(f"{term}:" in result.output for term in terms)
    for term in terms:
        assert runner.invoke(app, ["validate", str(term), str(apart), "--quiet"]).exit_code == 0
    assert _rows(together) == _rows(apart) and _rows(together)


def test_a_missing_export_among_several_is_refused_before_any_is_validated(terms: list[Path], tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISK_ID_KEY", "a-test-key-of-enough-length")
    result = runner.invoke(app, ["validate", str(terms[0]), str(tmp_path / "nosuch"), str(tmp_path / "out")])
    assert result.exit_code == 2 and "nosuch is not a folder" in result.output
    assert not (tmp_path / "out").exists()
