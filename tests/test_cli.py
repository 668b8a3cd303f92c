"""The command line: help everywhere, one clear sentence and exit code 2 on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import clean_tables, write_source
from typer.testing import CliRunner

from risk.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["synth", "validate", "features", "contract"])
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_validate_without_a_key_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("RISK_ID_KEY", raising=False)
    source = write_source(clean_tables(), tmp_path / "source")
    result = runner.invoke(app, ["validate", str(source), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "RISK_ID_KEY" in result.output
    assert "Traceback" not in result.output


def test_validate_a_broken_export_names_file_and_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_ID_KEY", "a-test-key-of-enough-length")
    tables = clean_tables()
    tables["grades"] = tables["grades"].drop(columns=["grade"])
    source = write_source(tables, tmp_path / "source")
    result = runner.invoke(app, ["validate", str(source), str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2
    assert "grades.csv" in result.output and "grade" in result.output
    assert "Traceback" not in result.output


def test_validate_then_features_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_ID_KEY", "a-test-key-of-enough-length")
    source = write_source(clean_tables(), tmp_path / "source")
    validated, matrix = tmp_path / "validated", tmp_path / "features.parquet"
    result = runner.invoke(app, ["validate", str(source), str(validated), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "attendance_daily" in result.output
    result = runner.invoke(app, ["features", "--as-of", "2024-06-06", "--data", str(validated),
                                 "--out", str(matrix), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "3 students" in result.output
    assert Path(matrix).exists()


def test_features_with_a_bad_date_is_refused(tmp_path):
    result = runner.invoke(app, ["features", "--as-of", "2024-13-06", "--data", str(tmp_path)])
    assert result.exit_code == 2


def test_revalidating_clears_caches_derived_from_the_old_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("RISK_ID_KEY", "a-test-key-of-enough-length")
    source = write_source(clean_tables(), tmp_path / "source")
    validated = tmp_path / "validated"
    for _ in range(2):
        assert runner.invoke(app, ["validate", str(source), str(validated), "--quiet", "--replace"]).exit_code == 0
        assert not (validated / "_derived").exists()
        result = runner.invoke(app, ["features", "--as-of", "2024-06-06", "--data", str(validated),
                                     "--out", str(tmp_path / "f.parquet"), "--quiet"])
        assert result.exit_code == 0, result.output
        assert (validated / "_derived").exists()


@pytest.mark.parametrize("args", [["score", "--demo"], ["validate"], ["features", "--as-of", "2024-13-06"], ["nosuch"]])
def test_a_usage_error_is_one_sentence_not_a_framed_box(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "--help" in lines[0]
    assert not set("╭╰│─") & set(result.output)


def test_demo_is_an_option_of_exactly_the_commands_that_need_a_pseudonym_key():
    import inspect

    from typer.main import get_command

    group = get_command(app)
    has_demo, needs_key = set(), set()
    for name, command in group.commands.items():
        if any("--demo" in getattr(p, "opts", ()) for p in command.params):
            has_demo.add(name)
    for info in app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        if "pseudonym_key(" in inspect.getsource(inspect.unwrap(info.callback)):
            needs_key.add(name)
    assert needs_key, "no command reads the pseudonym key: the check below would prove nothing"
    assert has_demo == needs_key
