"""The model package: model, calibrator, class policy, catalog and training profile, in plain files.

DESIGN.md "The model package": the booster as LightGBM's own model text, the
calibrator and policy as JSON, the catalog as YAML, the training profile (medians
for reasons, bins for drift) as JSON; never a pickle. The MLflow pyfunc
(:mod:`risk.models.pyfunc_model`) wraps one bundle; the scorer and the service load
the same bundle and call it on arrays.

A bundle holds its model as a :class:`~risk.models.protocol.RiskModel` and is one
itself, so what scores and explains with it never names LightGBM. The model
trained and stored today is :class:`~risk.models.booster.LightGBMModel` (the
booster and its calibrator); :meth:`ModelBundle.of` puts any other ``RiskModel``
(a GLM, a sequence model) beside a policy, a catalog and a profile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from risk.errors import RiskError
from risk.features.catalog import Catalog, installed_catalog, load_catalog
from risk.models.booster import LightGBMModel
from risk.models.calibrate import Calibrator
from risk.models.forest import CompiledForest
from risk.models.policy import CLASSES, ClassPolicy
from risk.models.profile import TrainingProfile
from risk.models.protocol import ModelError, RiskModel

__all__ = ["ARTIFACTS", "ModelBundle", "ModelCatalogError", "ModelPackageError"]

# artifact name -> file name inside the package folder
ARTIFACTS = {"booster": "booster.txt", "calibrator": "calibrator.json", "policy": "policy.json",
             "catalog": "catalog.yaml", "profile": "profile.json", "drift_profiles": "drift_profiles.json",
             "meta": "meta.json"}


class ModelPackageError(RiskError):
    """A model package is missing a part or a part cannot be read."""


class ModelCatalogError(RiskError):
    """The feature catalog in use does not match the one the model was trained with."""


@dataclass
class ModelBundle:
    """Everything needed to turn a feature matrix into probability, class and reasons; a RiskModel.

    ``meta`` holds ``features`` (the model's column order), the catalog version,
    and the training record (window, inputs hash, code version).

    Built as training builds it, ``ModelBundle(booster, calibrator, policy, ...)``: the
    LightGBM booster and its calibrator become :attr:`model`, a
    :class:`~risk.models.booster.LightGBMModel`. Any other RiskModel comes in through
    :meth:`of` (``booster`` and ``calibrator`` are then None).
    """

    booster: Any  # lightgbm.Booster, or None when the model is not LightGBM (see `of`)
    calibrator: Calibrator | None
    policy: ClassPolicy
    catalog: Catalog
    profile: TrainingProfile
    meta: dict[str, Any] = field(default_factory=dict)
    catalog_yaml: bytes = b""
    # Training profiles by "semester:school week": drift compares a scoring run with the
    # training rows of the same point of a term (early-term attendance is not end-of-term).
    drift_profiles: dict[str, TrainingProfile] = field(default_factory=dict)
    # The booster's trees compiled for large batches, when the trainer has them (risk.models.forest);
    # handed to the LightGBMModel, which compiles them on first use otherwise.
    forest: CompiledForest | None = field(default=None, repr=False, compare=False)
    # What scores and explains: built from booster and calibrator unless given (see `of`).
    model: RiskModel = field(default=None, kw_only=True, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.model is None and (self.booster is None or self.calibrator is None):
            raise TypeError("a model bundle needs a model: a booster and its calibrator, or a RiskModel (see `of`)")
        # Rebuilt too when `dataclasses.replace` hands over another booster or calibrator than the model's.
        stale = isinstance(self.model, LightGBMModel) and (
            self.model.booster is not self.booster or self.model.calibrator is not self.calibrator)
        if self.model is None or stale:
            self.model = LightGBMModel(self.booster, self.calibrator, forest=self.forest,
                                       num_threads=self.meta.get("num_threads", 2))

    @classmethod
    def of(cls, model: RiskModel, *, policy: ClassPolicy, catalog: Catalog, profile: TrainingProfile,
           meta: dict[str, Any] | None = None, catalog_yaml: bytes = b"",
           drift_profiles: dict[str, TrainingProfile] | None = None) -> ModelBundle:
        """A bundle around any :class:`~risk.models.protocol.RiskModel`; ``meta["features"]`` is its feature names.

        Scoring, reasons, evaluation and serving take it as they take a trained one;
        only :meth:`save` needs a LightGBM model (the package format stores a booster).
        """
        if not isinstance(model, RiskModel):
            raise TypeError(f"{type(model).__name__} is not a RiskModel: it needs feature_names, probability and "
                            "contributions (risk.models.protocol)")
        meta = {**(meta or {}), "features": list(model.feature_names)}
        return cls(None, None, policy, catalog, profile, meta, catalog_yaml, drift_profiles or {}, model=model)

    @property
    def names(self) -> list[str]:
        return list(self.meta["features"])

    @property
    def feature_names(self) -> list[str]:
        """The model's columns, in order (the RiskModel member; the same as :attr:`names`)."""
        return self.names

    def threads(self, rows: int) -> int:
        """Threads the LightGBM model uses for ``rows`` rows: one for a few (the service's requests)."""
        return self._lightgbm().threads(rows)

    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        """The LightGBM booster's uncalibrated probability of rows ``X`` (n, f) in :attr:`names` order, shape (n,)."""
        return self._lightgbm().raw_probability(X)

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Calibrated dropout probability of rows ``X`` (n, f) in :attr:`names` order, shape (n,)."""
        return self.model.probability(X)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Each feature's contribution to the model's raw score for rows ``X`` (n, f), shape (n, f + 1), the last
        column the expected value (:meth:`risk.models.protocol.RiskModel.contributions`: log-odds, before
        calibration). For the LightGBM model, TreeSHAP: the compiled forest's tables for batches,
        ``pred_contrib`` for a few rows."""
        return self.model.contributions(X)

    def importance_shares(self) -> np.ndarray | None:
        """Each feature's share of the model's importance, shape (f,) in :attr:`names` order, summing to 1;
        None when the model states none (importance is not part of the RiskModel protocol: the LightGBM
        model gives its split gain, another model may have no such ranking).
        """
        stated = getattr(self.model, "importance_shares", None)
        return stated() if callable(stated) else None

    def _lightgbm(self) -> LightGBMModel:
        if not isinstance(self.model, LightGBMModel):
            raise ModelError(f"the bundle's model is a {type(self.model).__name__}, not a LightGBM booster")
        return self.model

    def classify(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Probability (n,), class codes (n,) indexing ``CLASSES`` and policy rule hits (n, rules)."""
        probability = self.probability(X)
        codes, hits = self.policy.classify(probability, X, self.names)
        return probability, codes, hits

    @staticmethod
    def class_names(codes: np.ndarray) -> np.ndarray:
        return np.asarray(CLASSES, dtype=object)[codes]

    def drift_profile(self, semester: int, school_week: int) -> tuple[TrainingProfile, str]:
        """The training profile of the nearest sampled week of the same semester (else the overall one),
        and which it is. Scoring prefers a reference built at the same school day (risk.scoring.drift_reference)."""
        same = [(abs(int(k.split(":")[1]) - school_week), k) for k in self.drift_profiles
                if k.startswith(f"{semester}:")]
        if not same:
            return self.profile, "the overall training profile"
        key = min(same)[1]
        return self.drift_profiles[key], f"semester {semester}, school week {key.split(':')[1]}"

    def check_catalog(self, catalog: Catalog) -> None:
        """Raise ModelCatalogError when ``catalog``'s features are not the model's, in the same order."""
        if catalog.names != self.names:
            missing = [n for n in self.names if n not in catalog.names]
            extra = [n for n in catalog.names if n not in self.names]
            detail = (f"missing {', '.join(missing[:5])}" if missing else "") + (
                f"{'; ' if missing else ''}not in the model {', '.join(extra[:5])}" if extra else "")
            raise ModelCatalogError(
                f"the feature catalog {catalog.version} does not match the model's {self.meta.get('catalog_version')}"
                f" ({detail or 'same features in another order'}): score with the model's own catalog or retrain")

    def save(self, folder: Path) -> dict[str, Path]:
        """Write the parts to ``folder``; returns artifact name → path.

        Raises ModelPackageError when the model is not LightGBM: the package stores a booster.
        """
        model = self._package_model()
        folder.mkdir(parents=True, exist_ok=True)
        paths = {name: folder / file for name, file in ARTIFACTS.items()}
        model.save(paths["booster"])
        paths["calibrator"].write_text(model.calibrator.to_json(), encoding="utf-8")
        paths["policy"].write_text(self.policy.to_json(), encoding="utf-8")
        paths["catalog"].write_bytes(self.catalog_yaml)
        paths["profile"].write_text(self.profile.to_json(), encoding="utf-8")
        paths["drift_profiles"].write_text(
            json.dumps({k: json.loads(v.to_json()) for k, v in self.drift_profiles.items()}), encoding="utf-8")
        paths["meta"].write_text(json.dumps(self.meta, indent=2, default=str), encoding="utf-8")
        return paths

    @classmethod
    def load(cls, paths: dict[str, Path] | Path) -> ModelBundle:
        """Read a bundle from a folder or from artifact name → path (as MLflow hands them to a pyfunc)."""
        if isinstance(paths, Path):
            paths = {name: paths / file for name, file in ARTIFACTS.items()}
        absent = [name for name in ARTIFACTS if name not in paths or not Path(paths[name]).exists()]
        if absent:
            raise ModelPackageError(f"the model package lacks {', '.join(absent)}: it was not written by risk train")
        try:
            meta = json.loads(Path(paths["meta"]).read_text(encoding="utf-8"))
            calibrator = Calibrator.from_json(Path(paths["calibrator"]).read_text(encoding="utf-8"))
            model = LightGBMModel.load(Path(paths["booster"]), calibrator, num_threads=meta.get("num_threads", 2))
            bundle = cls(
                booster=model.booster,
                calibrator=calibrator,
                policy=ClassPolicy.from_json(Path(paths["policy"]).read_text(encoding="utf-8")),
                catalog=load_catalog(Path(paths["catalog"]), installed=installed_catalog()),
                profile=TrainingProfile.from_json(Path(paths["profile"]).read_text(encoding="utf-8")),
                meta=meta,
                catalog_yaml=Path(paths["catalog"]).read_bytes(),
                drift_profiles={k: TrainingProfile.model_validate(v) for k, v in json.loads(
                    Path(paths["drift_profiles"]).read_text(encoding="utf-8")).items()},
                model=model,
            )
        except (ModelError, ValueError, KeyError, OSError) as exc:
            raise ModelPackageError(f"the model package cannot be read ({type(exc).__name__}: {exc})") from exc
        if model.feature_names != bundle.names:
            raise ModelPackageError("the model package's booster and its feature list disagree")
        return bundle

    def _package_model(self) -> LightGBMModel:
        """The model as the package stores it (a LightGBM booster and its calibrator)."""
        if not isinstance(self.model, LightGBMModel):
            raise ModelPackageError(f"a {type(self.model).__name__} has no model package: the package stores a "
                                    "LightGBM booster (booster.txt)")
        return self.model
