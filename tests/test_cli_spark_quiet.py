"""``--quiet`` reaches the Spark session of ``--engine spark`` commands: no console progress bar.

The session itself is not started here (tests/test_spark_*.py start one): the CLI's call is caught at
:func:`risk.spark.session.spark_session`, where the bar is set.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk.cli import app

runner = CliRunner()


class _Caught(Exception):
    pass


@pytest.mark.parametrize("command", ["features", "score"])
@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_turns_off_sparks_progress_bar(command: str, quiet: bool, world: Path, champion_store,
                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pytest.importorskip("pyspark")
    import risk.spark.session as session

    asked: dict = {}

    def caught(master, app_name="risk", **options):  # noqa: ANN001, ANN003
        asked.update(options)
        raise _Caught

    monkeypatch.setattr(session, "spark_session", caught)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion_store[1])
    argv = [command, "--engine", "spark", "--as-of", "2026-07-24", "--data", str(world / "validated"),
            "--out", str(tmp_path / "out"), *(["--quiet"] if quiet else [])]
    result = runner.invoke(app, argv)
    assert isinstance(result.exception, _Caught), result.output
    assert asked.get("progress", True) is not quiet
