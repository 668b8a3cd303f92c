"""``risk impact --term T`` (issue 30, deliverable 3) on a real small world.

The world's second-to-last term is the pilot term: its students are scored (flagged by a
score that leans on what later happened, so flagged students drop out more), its schools
are drawn at random to alert now or wait, and teachers in alert-now schools record home visits and
learning support. The last term's register is the outcome. The command then:

- writes the estimates to the store and an MLflow run (metrics, CSV, the CI plot);
- counts, per arm, exactly the flagged students with a known outcome;
- feeds the term report's "Did the help work?" section, in Thai and English, with no IDs;
- refuses a term whose next register is not in the data, in one sentence, exit 2.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sqlalchemy import text
from test_report import drift as report_drift
from test_report import inputs as report_inputs
from typer.testing import CliRunner

from risk.cli import app as cli
from risk.config import load_settings
from risk.data.contract import next_term, term_start
from risk.features.sources import connect, view_validated
from risk.impact.design import assign_schools
from risk.impact.outcomes import term_outcomes
from risk.impact.run import estimate_impact
from risk.labels import dropout_labels
from risk.scoring.report import render_report
from risk.scoring.report_impact import impact_section
from risk.scoring.settings import load_scoring_settings
from risk.scoring.term_report import term_report
from risk.store import (
    PlanRecord,
    Store,
    finish_run,
    impact_estimates,
    import_actions,
    open_store,
    start_run,
    write_bucket_scores,
    write_impact_estimates,
    write_pilot,
)

CODES = ("home_visit", "learning_support")


def _enrolled_with_labels(validated: Path) -> tuple[str, str, pd.DataFrame]:
    """The pilot term, the outcome term, and the pilot term's students with school and label."""
    con = connect()
    view_validated(con, validated)
    terms = sorted(r[0] for r in con.execute("SELECT DISTINCT term FROM enrollments").fetchall())
    term = terms[-2]
    enrolled = con.execute("SELECT student_key, any_value(school_id) AS school_id FROM enrollments "
                           "WHERE term = $t GROUP BY student_key", {"t": term}).df()
    labels = dropout_labels(con, term, load_settings().labels)[["student_key", "dropped_out"]]
    con.close()
    return term, terms[-1], enrolled.merge(labels, on="student_key").sort_values("student_key", ignore_index=True)


def _score(store: Store, term: str, students: pd.DataFrame) -> None:
    """One finished run of ``term``: every student scored, ``flagged`` ones at_risk."""
    n, as_of = len(students), term_start(term) + dt.timedelta(days=60)
    run = start_run(store, as_of=as_of, term=term, model_name="dropout-risk", model_version="1", settings={})
    write_bucket_scores(store, run, 0, pd.DataFrame({
        "student_key": students["student_key"], "as_of": [as_of] * n, "term": [term] * n,
        "school_id": students["school_id"], "district_code": "1001", "province_code": "10", "region": "central",
        "grade_level": "M3", "classroom": "3/1", "sex": "female", "id_hint": "•••••••••0000",
        "probability": students["score"], "risk_class": np.where(students["flagged"], "at_risk", "normal"),
        "reasons_en": [[]] * n, "reasons_th": [[]] * n, "reason_codes": [[]] * n, "model_version": "1"}))
    finish_run(store, run, students=n, drift=report_drift(False))


def _act(store: Store, term: str, students: pd.DataFrame, rng: np.random.Generator) -> None:
    """Teachers of alert-now schools act on 60% of their flagged students, one code each."""
    chosen = students[students["flagged"] & (students["arm"] == "alert_now") & (rng.random(len(students)) < 0.6)]
    import_actions(store, pd.DataFrame({
        "row": range(len(chosen)), "student_key": chosen["student_key"].to_numpy(),
        "school_id": chosen["school_id"].to_numpy(), "code": [CODES[i % 2] for i in range(len(chosen))],
        "acted_on": term_start(term) + dt.timedelta(days=70), "note": None}))


@pytest.fixture(scope="module")
def pilot(world: Path, tmp_path_factory) -> dict:
    """A store with the pilot term scored, planned and acted on; the outcome term in the data."""
    home = tmp_path_factory.mktemp("impact")
    term, outcome_term, students = _enrolled_with_labels(world / "validated")
    rng = np.random.default_rng(5)
    known = students["dropped_out"].fillna(0).to_numpy(float)
    students["score"] = expit(-2.2 + 2.0 * known + rng.normal(0, 1.0, len(students)))
    students["flagged"] = students["score"] >= np.quantile(students["score"], 0.7)
    arms = assign_schools(pd.DataFrame({"school_id": students["school_id"].unique()}), 0.5, [], seed=4)
    students = students.merge(arms[["school_id", "arm"]], on="school_id")
    url = f"sqlite:///{home / 'risk.db'}"
    store = open_store(url)
    _score(store, term, students)
    write_pilot(store, PlanRecord(pilot_id="pilot1", term=term, share=0.5, strata=[], seed=1,
                                  created_at=dt.datetime(2026, 5, 1)), arms)
    _act(store, term, students, rng)
    result = CliRunner().invoke(cli, ["impact", "--term", term, "--data", str(world / "validated"), "--store", url,
                                      "--tracking-dir", str(home), "--permutations", "500"])
    yield {"store": store, "term": term, "outcome_term": outcome_term, "students": students, "result": result,
           "home": home, "validated": world / "validated"}
    store.close()


@pytest.mark.slow
def test_the_command_writes_the_estimates_to_the_store_and_mlflow(pilot: dict) -> None:
    result = pilot["result"]
    assert result.exit_code == 0, result.output
    assert "Did the help work?" in result.output and "weaker" in result.output and "observational" in result.output
    # At a plain 80-column terminal every row still names what it estimates (it once printed blank).
    assert "pilot effect (ITT)" in result.output and f"{CODES[0]}, adjusted" in result.output
    stored = impact_estimates(pilot["store"], pilot["term"])
    kinds = set(zip(stored["estimand"], stored["action_code"].fillna(""), strict=True))
    assert {("itt", ""), ("itt_relative", ""), ("itt_randomisation", ""), ("complier_iv", ""),
            ("dropout_rate", "alert_now"), ("dropout_rate", "wait_list")} <= kinds
    assert {(kind, code) for kind in ("action_naive", "action_adjusted") for code in CODES} <= kinds
    assert (stored["pilot_id"] == "pilot1").all()
    itt = stored[stored["estimand"] == "itt"].iloc[0]
    assert itt["ci_low"] < itt["estimate"] < itt["ci_high"] and itt["evidence"] == "randomised"
    assert stored.loc[stored["estimand"] == "action_adjusted", "evidence"].str.startswith("observational").all()
    # The command hands the settings on, so each action is adjusted for the term's features, not only the score.
    assert stored.loc[stored["estimand"] == "action_adjusted", "method"].str.contains("features it was computed").all()

    run_id = re.search(r"MLflow run (\w+)", result.output).group(1)
    run = mlflow.get_run(run_id)
    assert mlflow.get_experiment(run.info.experiment_id).name == "dropout-risk-pilots"
    assert run.data.metrics["itt.estimate"] == pytest.approx(itt["estimate"])
    assert run.data.params["pilot_id"] == "pilot1"
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"impact_ci.png", "impact_estimates.csv"} <= logged


@pytest.mark.slow
def test_the_flagged_students_of_each_arm_are_counted_exactly(pilot: dict) -> None:
    students = pilot["students"]
    expected = students[students["flagged"] & students["dropped_out"].notna()].groupby("arm").size()
    stored = impact_estimates(pilot["store"], pilot["term"])
    rates = stored[stored["estimand"] == "dropout_rate"].set_index("action_code")
    assert rates["n_students"].to_dict() == expected.to_dict()
    assert stored[stored["estimand"] == "itt"].iloc[0]["n_students"] == expected.sum()
    flagged = students[students["flagged"] & students["dropped_out"].notna()]
    for arm in ("alert_now", "wait_list"):
        assert rates.loc[arm, "estimate"] == pytest.approx(flagged.loc[flagged["arm"] == arm, "dropped_out"].mean())


@pytest.mark.slow
def test_the_next_terms_report_shows_the_section_in_thai_and_english_without_ids(pilot: dict) -> None:
    section = impact_section(pilot["store"], pilot["outcome_term"], {"home_visit": ("เยี่ยมบ้าน", "Home visit")})
    assert section is not None and section["term"] == pilot["term"]
    html = render_report(report_inputs(impact=section))
    part = re.search(r'<section id="impact">(.*?)</section>', html, re.S).group(1)
    assert "ความช่วยเหลือได้ผลหรือไม่" in part and "Did the help work?" in part
    assert "หลักฐานอ่อนกว่า" in part and "weaker evidence" in part and "เยี่ยมบ้าน" in part
    assert "<svg" in part and "naive" in part
    students = pilot["students"]
    for value in [*students["student_key"].astype(str).head(200), *students["school_id"].unique()]:
        assert value not in part
    assert impact_section(pilot["store"], next_term(pilot["outcome_term"])) is None  # two terms on: not shown


@pytest.mark.slow
def test_risk_reports_own_report_of_the_pilot_term_shows_the_stored_estimates(pilot: dict, tmp_path: Path) -> None:
    page = term_report(pilot["store"], tmp_path / "report.html", scoring=load_scoring_settings())
    part = re.search(r'<section id="impact">(.*?)</section>', page.read_text(encoding="utf-8"), re.S).group(1)
    assert f"ผลของภาคเรียน {pilot['term']}" in part and "ช่วยเหลือด้านการเรียน" in part  # the configured words


@pytest.mark.slow
def test_without_a_plan_only_the_observational_estimates_are_made_and_it_says_so(pilot: dict, tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    students = pilot["students"]
    _score(store, pilot["term"], students)
    _act(store, pilot["term"], students, np.random.default_rng(5))
    result = estimate_impact(term_outcomes(store, pilot["validated"], pilot["term"], load_settings().labels),
                             permutations=200)
    assert set(result.estimates["estimand"]) == {"action_naive", "action_adjusted"}
    assert result.estimates["pilot_id"].isna().all() and "has no pilot plan" in result.notes[0]
    store.close()


def test_a_term_whose_outcome_is_not_known_is_one_sentence_and_exit_2(hand_validated: Path, tmp_path: Path) -> None:
    validated = hand_validated
    con = connect()
    view_validated(con, validated)
    term = con.execute("SELECT max(term) FROM enrollments").fetchone()[0]
    con.close()
    result = CliRunner().invoke(cli, ["impact", "--term", term, "--data", str(validated),
                                      "--store", f"sqlite:///{tmp_path / 'risk.db'}"])
    assert result.exit_code == 2
    assert result.output.strip() == (f"error: the outcome of {term} is not known yet: {next_term(term)}'s register "
                                     f"is not in {validated}")


# ---------------------------------------------------------------- the table (SQLite and PostgreSQL)
@pytest.fixture
def plain_store(backend: tuple[str, str | None]):
    opened = open_store(backend[0])
    yield opened
    opened.close()


def estimate_rows(estimate: float) -> pd.DataFrame:
    return pd.DataFrame([
        {"pilot_id": "p1", "estimand": "itt", "action_code": None, "method": "OLS", "estimate": estimate, "se": 0.01,
         "ci_low": estimate - 0.02, "ci_high": estimate + 0.02, "p_value": 0.04, "n_students": 300, "n_schools": 40,
         "evidence": "randomised"},
        {"pilot_id": "p1", "estimand": "dropout_rate", "action_code": "wait_list", "method": "share",
         "estimate": 0.12, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan, "n_students": 150,
         "n_schools": 20, "evidence": "randomised"}])


def test_a_terms_estimates_are_replaced_by_the_next_run_and_nan_is_stored_as_null(plain_store) -> None:
    write_impact_estimates(plain_store, "2569-1", estimate_rows(-0.03))
    write_impact_estimates(plain_store, "2569-1", estimate_rows(-0.05))
    stored = impact_estimates(plain_store, "2569-1")
    assert stored["estimate"].tolist() == [-0.05, 0.12]
    assert pd.isna(stored.loc[1, "se"]) and pd.isna(stored.loc[0, "action_code"])
    with plain_store.engine.connect() as conn:  # NULL, not a float NaN (PostgreSQL keeps NaN as a value)
        assert conn.execute(text("SELECT count(*) FROM impact_estimates WHERE se IS NULL")).scalar() == 1
    assert impact_estimates(plain_store, "2568-2").empty


def test_migration_0007_goes_down_to_0006_and_up_again(plain_store, backend) -> None:
    from sqlalchemy import create_engine, inspect

    from risk.store.migrate import current_revision, downgrade, head_revision, upgrade

    write_impact_estimates(plain_store, "2569-1", estimate_rows(-0.03))
    engine = create_engine(backend[0])
    downgrade(engine, "0006")
    assert "impact_estimates" not in set(inspect(engine).get_table_names(schema=backend[1]))
    upgrade(engine, "0007")
    assert current_revision(engine) == "0007" and impact_estimates(plain_store, "2569-1").empty
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.slow
def test_given_the_settings_the_estimate_adjusts_for_the_features_of_the_last_scoring_run(pilot: dict) -> None:
    settings = load_settings()
    outcomes = term_outcomes(pilot["store"], pilot["validated"], pilot["term"], settings.labels, settings=settings)
    as_of = term_start(pilot["term"]) + dt.timedelta(days=60)  # _score's run
    assert outcomes.features and all(name.startswith("feature:") for name in outcomes.features)
    assert f"the matrix at {as_of}" in outcomes.feature_note
    assert outcomes.frame[outcomes.features].notna().any(axis=None)
    adjusted = estimate_impact(outcomes, permutations=200).estimates.query("estimand == 'action_adjusted'")
    assert adjusted["method"].str.contains(f"the {len(outcomes.features)} features it was computed from").all()


@pytest.mark.parametrize("lang", ["th", "en"])
def test_the_forest_plots_axis_label_ends_at_the_axes_right_edge_inside_the_figure(lang: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from risk.scoring.report_impact import _forest

    # Long action names leave a narrow axes at the right: a label centred under it ran off the figure's right
    # edge (in the report's SVG, whose Thai the browser draws wider than it is measured here). Ending at the
    # axes' right edge, a longer label runs left, under the row labels.
    rows = [{"estimand": "action_naive" if i % 2 else "action_adjusted", "action_code": f"code_{i // 2}",
             "estimate": 0.01, "ci_low": -0.1, "ci_high": 0.15, "evidence": "observational"} for i in range(6)]
    long_name = "a kind of help with a long configured name, as the scoring settings give it"
    fig = _forest(pd.DataFrame(rows), {f"code_{i}": (long_name, long_name) for i in range(3)}, lang)
    FigureCanvasAgg(fig).draw()
    label, axes = fig.axes[0].xaxis.label.get_window_extent(), fig.axes[0].bbox
    assert label.x1 == pytest.approx(axes.x1, abs=1.0)
    assert label.x0 >= 0 and label.y0 >= 0
