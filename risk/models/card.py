"""The model card: one self-contained HTML page per trained model version, Thai first with English.

:func:`model_card_html` renders ``templates/model_card.html.j2`` from a
:class:`ModelCardInfo`. It is written for an analyst deciding whether to trust the
list: what the model is for and not for, its quality against the oracle and every
baseline in words (ties called ties, :mod:`risk.models.card_views`), the class policy
in words with each missed target in red, the fairness flags with what they mean for
a teacher, and the model with and without the protected attributes as inputs. Below
come provenance (data window, input hash, catalog and code version), rows per split,
the full evaluation and fairness tables, lead time, calibration, params and the
figures, embedded as base64 PNGs so the card is a single file. The words live in
:mod:`risk.models.card_text`. Jinja2 autoescaping is on: every value is escaped.
"""

from __future__ import annotations

import base64
import functools
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from risk.models.card_policy import policy_view
from risk.models.card_text import (
    FAIRNESS_COLUMNS,
    NOT_FOR,
    PLAIN_LIMITATIONS,
    SPLITS,
    USED_FOR,
    figure_caption,
)
from risk.models.card_views import fairness_view, protected_view, quality_view, treated_view

__all__ = ["DataWindow", "ModelCardInfo", "SplitRows", "model_card_html"]

_TEMPLATES = Path(__file__).parent / "templates"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

DEFAULT_INTENDED_USE = (
    "Decision support for teachers and school staff: the score orders students so "
    "that those most likely to leave school before next term are looked at first, "
    "and the reason codes suggest where to start. It is not an automated decision: "
    "no student is placed in a programme, denied a service or reported on the score "
    "alone, and a teacher's knowledge of the child comes first."
)

DEFAULT_LIMITATIONS = (
    "Probabilities are calibrated on the calibration term only; a school, area or "
    "term unlike it may see rates that differ from the printed ones, so the drift "
    "report should be read before each scoring run. Figures computed on synthetic "
    "data show that the pipeline works, not how well it will do on real students: "
    "they do not transfer. Groups flagged in the fairness table are treated "
    "unequally by the list (lower recall, more false alarms, or worse calibration); "
    "check those flags, and the size of the groups behind them, before use. "
    "Dropout is rare, so small groups give noisy rates."
)


class SplitRows(BaseModel):
    """Rows and dropouts (positives) of one split."""

    model_config = ConfigDict(extra="forbid")

    rows: int
    positives: int


class DataWindow(BaseModel):
    """Terms (e.g. ``2567-1``) the model was trained, calibrated and tested on."""

    model_config = ConfigDict(extra="forbid")

    train: list[str]
    calibration: list[str]
    test: list[str]

    @field_validator("train", "calibration", "test", mode="before")
    @classmethod
    def _one_term_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ModelCardInfo(BaseModel):
    """Everything the model card shows.

    ``evaluation`` is :func:`risk.models.metrics.evaluation_table` (rows of
    slice ``overall`` and of ``key_model`` are highlighted); ``fairness`` is
    :func:`risk.models.fairness.fairness_table` (flagged rows highlighted);
    ``lead_time`` is :func:`risk.models.metrics.lead_time_table`. ``images``
    maps a caption to a PNG file, embedded inline. ``policy`` is the class
    policy's JSON (:class:`risk.models.policy.ClassPolicy`), with ``held_out``,
    ``outcomes`` and ``missed`` when they were measured. ``protected_comparison`` is
    ``{"used": "with_protected" | "without_protected", "with_protected": {"auc",
    "recall_top10", "fairness_flags"}, "without_protected": {...}}``, or None when
    the model was not trained both ways.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    model_name: str
    version: str | None = None
    created: datetime
    code_version: str
    data_window: DataWindow
    input_hash: str
    catalog_version: str
    rows: dict[str, SplitRows]
    params: dict[str, Any] = Field(default_factory=dict)
    policy: dict[str, Any] = Field(default_factory=dict)
    calibration: dict[str, Any] = Field(default_factory=dict)
    evaluation: pd.DataFrame
    key_model: str | None = None
    fairness: pd.DataFrame | None = None
    lead_time: pd.DataFrame | None = None
    images: dict[str, Path] = Field(default_factory=dict)
    intended_use: str = DEFAULT_INTENDED_USE
    limitations: str = DEFAULT_LIMITATIONS
    promoted_over: str | None = None
    protected_comparison: dict[str, Any] | None = None
    # TreatedRows.summary() (risk.models.treated): training rows the help may have changed, and the choice
    treated: dict[str, Any] | None = None


def model_card_html(info: ModelCardInfo) -> str:
    """The model card as one HTML document (UTF-8 text, CSS and images inline)."""
    # slice already says group=value; the two helper columns only widen the table.
    evaluation = info.evaluation.drop(columns=["group", "value"], errors="ignore")
    key_rows = _mask(evaluation, "slice", "overall")
    model_rows = _mask(evaluation, "model", info.key_model)
    fairness = info.fairness
    return _environment().get_template("model_card.html.j2").render(
        info=info,
        created=info.created.isoformat(timespec="seconds"),
        params=_key_values(info.params),
        policy=policy_view(info.policy),
        quality=quality_view(info.evaluation, info.key_model, info.data_window.test),
        fairness_view=fairness_view(fairness),
        protected=protected_view(info.protected_comparison),
        treated=treated_view(info.treated),
        texts={"used_for": USED_FOR, "not_for": NOT_FOR, "limitations": PLAIN_LIMITATIONS,
               "fairness_columns": FAIRNESS_COLUMNS, "splits": SPLITS},
        # The plain bilingual lists translate the defaults; a text the trainer wrote is shown as well.
        custom_use="" if info.intended_use == DEFAULT_INTENDED_USE else info.intended_use,
        custom_limits="" if info.limitations == DEFAULT_LIMITATIONS else info.limitations,
        calibration=_key_values(info.calibration, nested_as_words=True),
        evaluation=_table(evaluation, [
            ("key" if k else "") + (" ours" if m else "") for k, m in zip(key_rows, model_rows, strict=True)
        ]),
        fairness=None if fairness is None else _table(
            fairness, ["flag" if f else "" for f in _mask(fairness, "flagged_disparity", True)]
        ),
        lead_time=None if info.lead_time is None else _table(info.lead_time),
        images=[(figure_caption(name), _png_data_uri(path)) for name, path in info.images.items()],
    )


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,  # every value is escaped, whatever the file suffix
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _mask(table: pd.DataFrame, column: str, value: object) -> list[bool]:
    if value is None or column not in table.columns:
        return [False] * len(table)
    return (table[column] == value).fillna(False).astype(bool).tolist()


def _table(table: pd.DataFrame, row_classes: list[str] | None = None) -> dict[str, Any]:
    """Columns and formatted cells of a DataFrame, for the template to escape and lay out."""
    classes = row_classes or [""] * len(table)
    rows = [
        {"css": css.strip(), "cells": [_cell(v) for v in values]}
        for css, values in zip(classes, table.itertuples(index=False, name=None), strict=True)
    ]
    return {"columns": [str(c) for c in table.columns], "rows": rows}


def _cell(value: object) -> str:
    """Text of one table cell: floats to 3 decimals, missing as a dash."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.3f}"
    return str(value)


def _key_values(mapping: dict[str, Any], *, nested_as_words: bool = False) -> list[tuple[str, str]]:
    """Key and text of each entry; nested values as compact JSON, or as ``key value · key value``."""
    return [(str(k), _value_text(v, nested_as_words)) for k, v in mapping.items()]


def _value_text(value: object, as_words: bool) -> str:
    if isinstance(value, str):
        return value
    if as_words and isinstance(value, dict):
        return " · ".join(f"{k} {_cell(v)}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False, default=str)


def _png_data_uri(path: Path) -> str:
    data = Path(path).read_bytes()
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file; the card embeds PNG figures only")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
