"""The feature catalog is data: analysts switch features off and add windows without Python."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from feature_world import AS_OF, S1, context_rates_frame, world

from risk.errors import ConfigError
from risk.features.catalog import format_value, load_catalog
from risk.features.online import features_from_frames

CATALOG_FILE = Path(__file__).resolve().parent.parent / "configs" / "features.yaml"


def edited_catalog(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    edit(data["features"])
    path = tmp_path / "features.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_every_feature_has_thai_and_english_texts_and_a_direction():
    catalog = load_catalog(CATALOG_FILE)
    for feature in catalog.features:
        assert feature.description.th and feature.description.en
        # A flag's reason is shown only when it is set, so its text need not repeat "yes".
        if feature.unit != "flag":
            assert "{value}" in feature.reason.en and "{value}" in feature.reason.th
        assert feature.direction in ("higher", "lower", "none")


def test_a_switched_off_feature_is_not_built(tmp_path):
    def switch_off(features):
        next(f for f in features if f["name"] == "att_rate_20d")["enabled"] = False

    catalog = load_catalog(edited_catalog(tmp_path, switch_off))
    frame = features_from_frames(world() | {"context_rates": context_rates_frame()}, AS_OF, catalog)
    assert "att_rate_20d" not in frame.columns
    assert "att_rate_60d" in frame.columns


def test_a_new_window_needs_only_a_catalog_entry(tmp_path):
    def add_window(features):
        entry = dict(next(f for f in features if f["name"] == "att_rate_20d"))
        features.append(entry | {"name": "att_rate_10d", "compute": {"kind": "rate", "last_days": 10}})
        features.append({"name": "weight_max_kg_30d", "domain": "health", "unit": "kg", "direction": "none",
                         "compute": {"kind": "window_max", "column": "weight_kg", "days": 30},
                         "description": {"en": "Heaviest in 30 days", "th": "น้ำหนักสูงสุดใน 30 วัน"},
                         "reason": {"en": "{value}", "th": "{value}"}})

    catalog = load_catalog(edited_catalog(tmp_path, add_window))
    frame = features_from_frames(world() | {"context_rates": context_rates_frame()}, AS_OF, catalog)
    row = frame.set_index("student_key").loc[S1]
    # Last 10 school days: 27 May – 7 June; not attended 27 May, 3, 4, 5, 7 June → 5 of 10.
    assert row["att_rate_10d"] == pytest.approx(0.5)
    assert row["weight_max_kg_30d"] == 40.0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda fs: fs[0]["compute"].update(kind="median"), "att_rate_term.*compute kind 'median'"),
        (lambda fs: fs[0]["compute"].update(scope="week"), "att_rate_term.*scope"),
        (lambda fs: fs.append(dict(fs[0])), "appear twice: att_rate_term"),
        (lambda fs: fs[0].pop("reason"), "att_rate_term.*reason"),
        (lambda fs: fs[-1]["compute"].update(where="amount_baht; DROP TABLE x"), "compute.where"),
    ],
)
def test_a_wrong_entry_is_a_config_error_naming_the_feature(tmp_path, edit, message):
    with pytest.raises(ConfigError, match=message):
        load_catalog(edited_catalog(tmp_path, edit))


@pytest.mark.parametrize(
    ("value", "unit", "lang", "text"),
    [(0.62, "share", "en", "62%"), (2500.0, "baht", "en", "2,500 baht"), (2500.0, "baht", "th", "2,500 บาท"),
     (3.0, "days", "th", "3 วัน"), (-1.53, "z", "en", "-1.5 SD"), (None, "days", "th", "ไม่มีข้อมูล"),
     (-25.0, "percent", "en", "-25%")],
)
def test_values_are_formatted_for_teachers(value, unit, lang, text):
    assert format_value(value, unit, lang) == text
