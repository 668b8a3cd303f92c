"""Figures are written as PNG files; the model card is one escaped, self-contained page."""

import re
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from risk.models.card import ModelCardInfo, model_card_html
from risk.models.plots import calibration_plot, lead_time_plot, shap_summary_plot

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > 1000 and data.startswith(PNG)


def test_calibration_plot_writes_a_png(tmp_path):
    curve = pd.DataFrame({"mean_predicted": [0.02, 0.05, 0.2], "observed_rate": [0.01, 0.06, 0.25]})
    path = calibration_plot({"lightgbm": curve, "oracle": curve * 0.9}, tmp_path / "cal.png")
    assert path == tmp_path / "cal.png"
    assert _is_png(path)


def test_lead_time_plot_writes_a_png(tmp_path):
    table = pd.DataFrame({
        "week": [2, 6, 10, 2, 6, 10],
        "model": ["lightgbm"] * 3 + ["oracle"] * 3,
        "recall_top10": [0.2, 0.35, 0.4, 0.3, 0.45, 0.5],
    })
    assert _is_png(lead_time_plot(table, tmp_path / "lead.png"))


def test_shap_summary_plot_writes_a_png_with_missing_values(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    X[::5, 1] = np.nan
    contribs = X * np.array([0.1, 0.5, 0.0, 1.0])
    contribs[np.isnan(contribs)] = 0.0
    path = shap_summary_plot(contribs, X, ["a", "b", "c", "d"], tmp_path / "shap.png", max_features=3)
    assert _is_png(path)


def test_shap_summary_plot_refuses_mismatched_shapes(tmp_path):
    with pytest.raises(ValueError, match="feature names"):
        shap_summary_plot(np.zeros((5, 3)), np.zeros((5, 3)), ["a", "b"], tmp_path / "x.png")


@pytest.fixture
def card_info(tmp_path):
    curve = pd.DataFrame({"mean_predicted": [0.1, 0.2], "observed_rate": [0.1, 0.2]})
    image = calibration_plot({"m": curve}, tmp_path / "cal.png")
    evaluation = pd.DataFrame({
        "slice": ["overall", "overall", "overall", "grade=P6"],
        "model": ["oracle", "lightgbm", "abc_rule", "lightgbm"],
        "roc_auc": [0.81, 0.78, 0.66, 0.74],
        "recall_top10": [0.42, 0.38, 0.25, float("nan")],
    })
    fairness = pd.DataFrame({
        "attribute": ["sex", "sex"],
        "group": ["female", "male"],
        "recall_ratio": [1.0, 0.6],
        "flagged_disparity": [False, True],
        "disparity_reasons": ["", "recall 0.60x best"],
    })
    return ModelCardInfo(
        model_name="dropout-risk",
        version="7",
        created=datetime(2026, 7, 24, 9, 30),
        code_version="6bcd0e7",
        data_window={"train": ["2567-1", "2567-2"], "calibration": "2568-1", "test": "2568-2"},
        input_hash="ab" * 32,
        catalog_version="features-2026-07",
        rows={"train": {"rows": 9000, "positives": 270}, "test": {"rows": 3000, "positives": 80}},
        params={"num_leaves": 31, "note": "<script>alert('x')</script>"},
        policy={"problem": 0.3, "at_risk": 0.1},
        calibration={"method": "isotonic", "brier": 0.041},
        evaluation=evaluation,
        key_model="lightgbm",
        fairness=fairness,
        images={"calibration": image, "calibration again": image},
    )


def test_card_names_the_model_and_every_evaluation_row(card_info):
    html = model_card_html(card_info)
    assert "<h1>dropout-risk</h1>" in html
    for model in ("oracle", "lightgbm", "abc_rule"):
        assert f"<td>{model}</td>" in html
    assert "<td>grade=P6</td>" in html
    assert "0.780" in html  # lightgbm's overall AUC, 3 decimals


def test_card_embeds_each_image_inline(card_info):
    html = model_card_html(card_info)
    assert html.count('<img src="data:image/png;base64,') == 2
    assert not re.search(r'(src|href)="(https?:|file:|/)', html)  # nothing fetched from elsewhere


def test_card_escapes_values(card_info):
    html = model_card_html(card_info)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


def test_card_highlights_overall_model_and_flagged_rows(card_info):
    html = model_card_html(card_info)
    assert '<tr class="key ours"><td>overall</td><td>lightgbm</td>' in html
    assert '<tr class="ours"><td>grade=P6</td>' in html
    assert '<tr class="flag"><td>sex</td><td>male</td>' in html
    assert '<tr><td>sex</td><td>female</td>' in html


def test_card_is_english_utf8_with_default_use_and_limits(card_info):
    html = model_card_html(card_info)
    assert '<html lang="en">' in html and '<meta charset="utf-8">' in html
    assert "not an automated decision" in html
    assert "do not transfer" in html
    assert "2567-1, 2567-2" in html
