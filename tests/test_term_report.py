"""``risk report``'s own path: a run read from the store, its model from MLflow, and a real scoring run.

The first test builds a local MLflow store as ``risk train`` leaves it (a registered version holding
``policy.json``, held-out metrics and a model card) beside a validated folder, and a store with a
stored run; the second scores the session's world with the session's champion (tests/conftest.py).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from test_report import section
from test_report_meaning import EVALUATION, POLICY, cells, class_row

# ---------- from the store and MLflow: risk report's own path ----------
# School 4001000001 (Khon Kaen, 40 students): 10 at risk (4 of them by the exam-line rule), 2 problem.
# School 5001000002 (Chiang Mai, 12 students, under the 30 of configs/scoring.yaml): 6 at risk (1 by the rule).


def stored_scores() -> pd.DataFrame:
    rows = []
    for school, region, classes, raised in (("4001000001", "northeast", ["at_risk"] * 10 + ["problem"] * 2 + ["normal"] * 28, 4),
                                            ("5001000002", "north", ["at_risk"] * 6 + ["normal"] * 6, 1)):  # fmt: skip
        for i, risk_class in enumerate(classes):
            key = int(school[:4]) * 100 + i
            rows.append({"student_key": key, "as_of": dt.date(2024, 7, 1), "term": "2567-1", "school_id": school,
                         "district_code": school[:4], "province_code": school[:2], "region": region,
                         "grade_level": "M3", "classroom": None, "sex": "female", "id_hint": f"•••••••••{key % 10_000:04d}",
                         "probability": {"normal": 0.01, "at_risk": 0.1, "problem": 0.5}[risk_class],
                         "risk_class": risk_class, "reasons_en": [], "reasons_th": [], "reason_codes": [],
                         "model_version": "1", "raised_by": "exam_line" if risk_class == "at_risk" and i < raised else None})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A local MLflow store as `risk train` leaves it: version 1 with policy.json, held-out metrics and a card."""
    import json

    import mlflow
    from mlflow.tracking import MlflowClient

    home = tmp_path_factory.mktemp("report-mlflow")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    before = (mlflow.get_tracking_uri() if mlflow.tracking.is_tracking_uri_set() else None, mlflow.get_registry_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        experiment = MlflowClient().create_experiment("report", artifact_location=(home / "mlartifacts").as_uri())
        (home / "policy.json").write_text(json.dumps(POLICY), encoding="utf-8")
        (home / "evaluation").mkdir()
        (home / "evaluation" / "model_card.html").write_text("<html>card</html>", encoding="utf-8")

        class CardModel(mlflow.pyfunc.PythonModel):
            """Stands for the registered model only as a holder of artifacts: the report never loads it."""

            def predict(self, context: object, model_input: list[str]) -> list[str]:
                return model_input

        with mlflow.start_run(experiment_id=experiment):
            mlflow.log_metrics({f"test.{k}": v for k, v in EVALUATION.items()})
            mlflow.log_params({"rows.test.rows": 2000, "rows.test.positives": 50})  # as risk train logs the split
            mlflow.pyfunc.log_model(name="model", python_model=CardModel(), artifacts={"policy": str(home / "policy.json")},
                                    registered_model_name="dropout-risk")
            mlflow.log_artifacts(str(home / "evaluation"), artifact_path="evaluation")
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1] if before[0] else None)
    return home


def test_the_report_of_a_stored_run_reads_the_model_from_mlflow_and_counts_rule_raised_students(
        registered: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from risk.scoring.summaries import area_summaries
    from risk.scoring.term_report import term_report
    from risk.store import finish_run, open_store, start_run, write_bucket_scores, write_summaries

    # As `risk report --data DIR` finds it: the MLflow store beside the validated folder, nothing set.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("mlflow.tracking.is_tracking_uri_set", lambda: False)
    (registered / "validated").mkdir(exist_ok=True)
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    run = start_run(store, as_of=dt.date(2024, 7, 1), term="2567-1", model_name="dropout-risk", model_version="1",
                    settings={"evaluation": {"model.roc_auc": 0.5}})  # an old run: no policy kept, MLflow's metrics win
    frame = stored_scores()
    write_bucket_scores(store, run, 0, frame)
    frame.to_parquet(tmp_path / "scores.parquet")
    write_summaries(store, run, area_summaries([tmp_path / "scores.parquet"]))
    finish_run(store, run, students=len(frame), drift=None)
    # No scoring settings given: the smallest area ranked is ReportSettings' 30, as in configs/scoring.yaml.
    html = term_report(store, tmp_path / "report.html", validated=registered / "validated").read_text(encoding="utf-8")

    card = re.search(r'<a href="(file://[^"]+)">', section(html, "model")).group(1)
    assert card.endswith("/evaluation/model_card.html") and Path(card.removeprefix("file://")).read_text() == "<html>card</html>"
    assert "ties this model" in section(html, "model") and "0.842" in section(html, "model")
    # The card's tie tolerance from the test split's 50 dropouts of 2,000 rows: Hanley-McNeil's 0.035 > 0.005.
    assert "Two AUCs tie when they differ by 0.035 or less" in " ".join(section(html, "model").split())
    assert "โอกาส ≥ 30.0%" in class_row(html, "problem") and "37 / 100" in class_row(html, "problem")
    assert cells(class_row(html, "at_risk"))[:3] == ["16", "11", "5"]
    assert "18 / 52" in section(html, "nation")
    areas = section(html, "areas")
    assert re.findall(r"<tr><td>อำเภอ (\d+)", areas) == ["4001"] and "other small areas (1, under 30 students)" in areas
    assert "6 / 12" in areas and "12 / 40" in areas
    assert "เล็ก / small: &lt; 30" in section(html, "provinces")




def test_the_report_of_a_real_scoring_run_explains_the_champion(world, champion_store, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's champion (tests/conftest.py) scores the world; the report reads run, scores and MLflow."""
    from risk.config import load_settings
    from risk.scoring.batch import score_students
    from risk.scoring.charts import percent
    from risk.scoring.settings import load_scoring_settings
    from risk.scoring.term_report import term_report
    from risk.store import latest_scores, open_store

    home, uri, result, registered = champion_store
    # The report finds the model's store as a user's shell names it. MLflow's process-wide URI is the last
    # one any test of this worker configured, which need not be the champion's (CI failed on that order).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    store = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    score_students(world / "validated", dt.date(2026, 7, 24), bundle=result.bundle, model_name="dropout-risk",
                   model_version=registered["version"], store=store, out=tmp_path / "scores.parquet",
                   settings=load_settings(), scoring=load_scoring_settings(), progress=False)
    page = term_report(store, tmp_path / "report.html", validated=world / "validated", scoring=load_scoring_settings())
    html = page.read_text(encoding="utf-8")
    artifacts = Path(__file__).parent / "artifacts"  # git-ignored: the report of a real run, for a person to read
    artifacts.mkdir(exist_ok=True)
    (artifacts / "term_report_scored_world.html").write_text(html, encoding="utf-8")

    model = section(html, "model")
    card = re.search(r'<a href="file://([^"]+)">', model).group(1)
    assert card.endswith("evaluation/model_card.html") and "<html" in Path(card).read_text(encoding="utf-8")
    for name, words in (("model", "LightGBM"), ("logistic", "logistic regression"), ("abc_rule", "ABC rule")):
        auc = result.evaluation.metric(name, "roc_auc")
        assert re.search(rf"{words}[^<]*</span></td>\s*<td class=\"num\">{auc:.3f}</td>", model), (name, auc)
    assert not re.search(r"\b(model|logistic|oracle|context_only|abc_rule)\.[a-z_0-9]+", html)

    scores = pd.concat(latest_scores(store, registered_run(store), columns=["risk_class", "raised_by"]))
    policy = json.loads(result.bundle.policy.to_json())
    for name in ("problem", "at_risk", "normal"):
        row = class_row(html, name)
        mine = scores[scores["risk_class"] == name]
        assert cells(row)[:3] == [f"{len(mine):,}", f"{int(mine['raised_by'].isna().sum()):,}",
                                  f"{int(mine['raised_by'].notna().sum()):,}"], name
        outcome = (policy.get("outcomes") or {}).get(name)
        assert (percent(outcome["dropout_rate"]) in row) if outcome else ("not measured for this model" in row)
    for group in policy.get("groups", {}).values():
        assert f"≥ {percent(group['problem_threshold'])}" in class_row(html, "problem")
    alerts = section(html, "alerts")
    assert "first scored term" in alerts
    # A first run alerts every flagged student, so the rule-raised at-risk alerts are the rule-raised at-risk scores.
    raised_at_risk = int(scores.loc[scores["risk_class"] == "at_risk", "raised_by"].notna().sum())
    assert re.search(rf"newly flagged at risk \(first scored term\)</span></td><td class=\"num\">[\d,]+</td>\s*"
                     rf"<td class=\"num\">{raised_at_risk:,}</td>", alerts), raised_at_risk

    # The same run through `risk audit-reasons`, as make demo ends: the model from the registry, each reason
    # against the child's own values of the date. Clean, it exits 0; a matrix of another date is refused.
    from typer.testing import CliRunner

    from risk.cli import app

    runner = CliRunner()
    matrix = tmp_path / "features.parquet"
    built = runner.invoke(app, ["features", "--as-of", "2026-07-24", "--data", str(world / "validated"),
                                "--out", str(matrix), "--quiet"])
    assert built.exit_code == 0, built.output
    audit = ["audit-reasons", "--data", str(world / "validated"), "--store", f"sqlite:///{tmp_path / 'risk.db'}",
             "--tracking-dir", str(home)]
    done = runner.invoke(app, [*audit, "--features", str(matrix)])
    assert done.exit_code == 0, done.output
    assert re.search(r"[\d,]+ flagged\s+students, [\d,]+ reasons", done.output)
    assert re.search(r"contradicts\s+0", done.output) and re.search(r"protected\s+0", done.output)
    pd.read_parquet(matrix).assign(as_of=dt.date(2026, 7, 23)).to_parquet(tmp_path / "other_date.parquet")
    refused = runner.invoke(app, [*audit, "--features", str(tmp_path / "other_date.parquet")])
    assert refused.exit_code == 2 and "risk features --as-of 2026-07-24" in refused.output


def registered_run(store) -> str:
    from risk.store import latest_finished_run

    return latest_finished_run(store)


