"""notebooks/model_review.ipynb runs top to bottom on a small registered champion (tests/conftest.py).

The parameters are injected as papermill does: a cell after the one tagged ``parameters``.
The executed notebook is kept in ``tests/artifacts/`` (git-ignored) for a reader to open.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

from risk.models.review import model_record
from risk.models.tracking import TrackingError
from tests.conftest import MODEL_NAME

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "model_review.ipynb"
EXECUTED = REPO / "tests" / "artifacts" / "model_review.ipynb"


def with_parameters(notebook: nbformat.NotebookNode, **values: str) -> nbformat.NotebookNode:
    """A copy of ``notebook`` with ``NAME = value`` lines in a new cell after the ``parameters`` cell."""
    copy = nbformat.from_dict(notebook)
    tagged = [i for i, c in enumerate(copy.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    injected = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in values.items()),
                                         metadata={"tags": ["injected-parameters"]})
    copy.cells.insert(tagged[0] + 1, injected)
    return copy


def ensure_kernel() -> None:
    """The ``python3`` kernel of this venv (jupyter_client runs a spec's ``python`` as sys.executable)."""
    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix"], check=True,
                       capture_output=True)


def texts(cell: nbformat.NotebookNode) -> str:
    """Everything a cell printed or displayed, as text (plain, HTML and Markdown)."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        for kind in ("text/plain", "text/html", "text/markdown"):
            parts.append(output.get("data", {}).get(kind, ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def executed(champion_store, tmp_path_factory):
    """The notebook executed on the champion of ``champion_store``, read through the local data folder."""
    home, _, _, _ = champion_store
    ensure_kernel()
    notebook = with_parameters(nbformat.read(NOTEBOOK, as_version=4), TRACKING_URI="", DATA_DIR=str(home),
                               MODEL_NAME=MODEL_NAME, ALIAS="champion",
                               OUT_DIR=str(tmp_path_factory.mktemp("review")))
    before = os.environ.pop("MLFLOW_TRACKING_URI", None)  # the kernel inherits it; DATA_DIR must be used
    try:
        client = NotebookClient(notebook, kernel_name="python3", timeout=300,
                                resources={"metadata": {"path": str(REPO)}})
        try:
            client.execute()
        finally:
            EXECUTED.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, EXECUTED)
    finally:
        if before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before
    return notebook


def code_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code"]


def test_every_cell_runs_without_error(executed):
    cells = code_cells(executed)
    assert all(c.get("execution_count") for c in cells)
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


def test_the_record_names_the_version_window_and_inputs_hash(executed, champion_store):
    _, _, result, registered = champion_store
    shown = "\n".join(texts(c) for c in code_cells(executed))
    assert f"{MODEL_NAME} version {registered['version']} (alias champion)" in shown
    assert result.inputs_hash in shown
    assert ", ".join(result.split.test) in shown


def test_the_evaluation_table_shows_every_model_beside_the_oracle(executed, champion_store):
    _, _, result, _ = champion_store
    cell = next(c for c in code_cells(executed) if "tables.overall()" in c.source)
    shown = texts(cell)
    for model in ("model", "oracle", "logistic", "context_only", "abc_rule"):
        assert model in shown, model
    assert "roc_auc" in shown and "recall_top10" in shown
    assert f"{result.evaluation.metric('model', 'roc_auc'):.4f}" in shown


def test_lead_time_calibration_and_shap_images_are_displayed(executed):
    images = [o for c in code_cells(executed) for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3


def test_fairness_table_counts_the_flagged_groups_and_the_card_is_linked(executed, champion_store):
    _, _, result, _ = champion_store
    shown = "\n".join(texts(c) for c in code_cells(executed))
    fairness = result.evaluation.fairness
    assert f"{int(fairness['flagged_disparity'].sum())} of {len(fairness)} groups flagged" in shown
    assert "model_card.html" in shown


def test_unknown_alias_is_one_sentence(champion_store):
    _, uri, _, _ = champion_store
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    with pytest.raises(TrackingError, match="no 'dropout-risk' alias nobody") as caught:
        model_record(MODEL_NAME, "nobody")
    assert "\n" not in str(caught.value)
