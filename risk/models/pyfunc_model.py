"""The MLflow pyfunc of a dropout model, logged as code (MLflow "models from code": no pickle).

``mlflow.pyfunc.log_model(python_model=<this file>, artifacts=<bundle parts>)``
stores this file beside the bundle's plain files; loading runs it, and
``load_context`` reads the parts. ``predict`` takes the feature-matrix columns that
``risk features`` writes (extra columns are ignored) and returns, per row, the
calibrated ``probability`` and the ``risk_class`` (normal, at_risk, problem).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from risk.models.bundle import ModelBundle, ModelCatalogError


class DropoutRiskModel(mlflow.pyfunc.PythonModel):
    """Feature rows → calibrated dropout probability and class."""

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load({name: Path(path) for name, path in context.artifacts.items()})

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
                ) -> pd.DataFrame:
        names = self.bundle.names
        missing = [n for n in names if n not in model_input.columns]
        if missing:
            raise ModelCatalogError(f"the input lacks {len(missing)} feature columns the model needs: "
                                    f"{', '.join(missing[:5])}")
        X = model_input[names].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        probability, codes, _ = self.bundle.classify(X)
        return pd.DataFrame({"probability": probability, "risk_class": self.bundle.class_names(codes)})


mlflow.models.set_model(DropoutRiskModel())
