"""``risk term``: the whole job in one command, reused when run again, locked (resumed after a kill: test_term_resume.py).

The term and its run again are the session's shared ones (conftest.term_run, tests/term_support.py).
"""

from __future__ import annotations

import json

from term_support import AS_OF, STEPS, run, step_rows, term_command, write_small_configs

from risk.term import _locked


def test_term_runs_every_step_and_prints_the_table(term_run):
    first = term_run.first
    assert first.returncode == 0, first.stderr[-2000:]
    assert list(step_rows(first.stdout)) == STEPS
    assert (term_run.folder / "report.html").exists() and (term_run.folder / "scores.parquet").exists()
    kept = json.loads((term_run.folder / f"term-{AS_OF}.json").read_text(encoding="utf-8"))
    assert [s["step"] for s in kept] == STEPS and all(s["seconds"] >= 0 for s in kept)


def test_term_run_again_reuses_every_step_after_validation(term_run):
    again = term_run.again
    assert again.returncode == 0, again.stderr[-2000:]
    statuses = step_rows(again.stdout)
    assert all(statuses[s] == "reused" for s in STEPS if s not in ("validate", "freshness", "report")), statuses


def test_a_second_term_on_the_same_folder_is_refused(world, tmp_path):
    with _locked(tmp_path):
        busy = run(term_command(world / "source", tmp_path, write_small_configs(tmp_path / "configs")))
    assert busy.returncode == 2
    assert "in use by another `risk term`" in busy.stderr


def test_term_checks_freshness_at_as_of_and_the_report_shows_it(term_run):
    assert step_rows(term_run.first.stdout)["freshness"] in ("ok", "warning")
    html = (term_run.folder / "report.html").read_text(encoding="utf-8")
    assert '<section id="freshness">' in html and "Data freshness was not checked" not in html
