"""The model package: booster, calibrator, class policy, catalog and training profile, in plain files.

DESIGN.md "The model package": the booster as LightGBM's own model text, the
calibrator and policy as JSON, the catalog as YAML, the training profile (medians
for reasons, bins for drift) as JSON; never a pickle. The MLflow pyfunc
(:mod:`risk.models.pyfunc_model`) wraps one bundle; the scorer and the service load
the same bundle and call the booster on arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from risk.errors import RiskError
from risk.features.catalog import Catalog, installed_catalog, load_catalog
from risk.models.calibrate import Calibrator
from risk.models.explain import contributions
from risk.models.forest import MIN_EXPLAIN_ROWS, MIN_ROWS, CompiledForest, booster_probability
from risk.models.policy import CLASSES, ClassPolicy
from risk.models.profile import TrainingProfile

__all__ = ["ARTIFACTS", "ModelBundle", "ModelCatalogError", "ModelPackageError"]

# artifact name -> file name inside the package folder
ARTIFACTS = {"booster": "booster.txt", "calibrator": "calibrator.json", "policy": "policy.json",
             "catalog": "catalog.yaml", "profile": "profile.json", "drift_profiles": "drift_profiles.json",
             "meta": "meta.json"}
# Fewer rows than this are scored on one thread (see ModelBundle.threads).
FEW_ROWS = 256



class ModelPackageError(RiskError):
    """A model package is missing a part or a part cannot be read."""


class ModelCatalogError(RiskError):
    """The feature catalog in use does not match the one the model was trained with."""


@dataclass
class ModelBundle:
    """Everything needed to turn a feature matrix into probability, class and reasons.

    ``meta`` holds ``features`` (column order of the booster), the catalog version,
    and the training record (window, inputs hash, code version).
    """

    booster: lgb.Booster
    calibrator: Calibrator
    policy: ClassPolicy
    catalog: Catalog
    profile: TrainingProfile
    meta: dict[str, Any] = field(default_factory=dict)
    catalog_yaml: bytes = b""
    # Training profiles by "semester:school week": drift compares a scoring run with the
    # training rows of the same point of a term (early-term attendance is not end-of-term).
    drift_profiles: dict[str, TrainingProfile] = field(default_factory=dict)
    # The booster's trees compiled for large batches (risk.models.forest); compiled on first use
    # unless the trainer hands over the one it already has.
    forest: CompiledForest | None = field(default=None, repr=False, compare=False)
    _forest_compiled: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def names(self) -> list[str]:
        return list(self.meta["features"])

    def threads(self, rows: int) -> int:
        """LightGBM threads for ``rows`` rows: one for a few (the service's requests).

        An OpenMP team costs more to start than a few rows cost to score, and its
        threads then spin on the other core, taking it from the next request.
        """
        return 1 if rows < FEW_ROWS else self.meta.get("num_threads", 2)

    def raw_probability(self, X: np.ndarray) -> np.ndarray:
        """The booster's uncalibrated probability of rows ``X`` (n, f) in :attr:`names` order."""
        return booster_probability(self.booster, X, self._compiled(len(X), MIN_ROWS), threads=self.threads(len(X)))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """TreeSHAP contributions of rows ``X`` (n, f+1; the last column the expected value), raw log-odds.

        Batches go through the compiled forest's TreeSHAP tables (risk.models.forest: the same values
        as LightGBM's ``pred_contrib`` to within rounding, ~15x faster); a few rows, or a model whose
        trees are too large to tabulate, through ``pred_contrib`` itself.
        """
        forest = self._compiled(len(X), MIN_EXPLAIN_ROWS)
        if forest is not None and forest.explains:
            return forest.contributions(np.asarray(X, dtype=np.float64))
        return contributions(self.booster, X, num_threads=self.threads(len(X)))

    def _compiled(self, rows: int, min_rows: int) -> CompiledForest | None:
        """The compiled forest (compiled on first use) when ``rows`` reach ``min_rows``, else None."""
        if rows < min_rows:
            return None
        if self.forest is None and not self._forest_compiled:
            self.forest = CompiledForest.from_booster(self.booster, threads=self.meta.get("num_threads", 2))
            self._forest_compiled = True
        return self.forest

    def probability(self, X: np.ndarray) -> np.ndarray:
        """Calibrated dropout probability, shape (n,)."""
        return self.calibrator.transform(self.raw_probability(X))

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
        """Write the parts to ``folder``; returns artifact name → path."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {name: folder / file for name, file in ARTIFACTS.items()}
        self.booster.save_model(str(paths["booster"]))
        paths["calibrator"].write_text(self.calibrator.to_json(), encoding="utf-8")
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
            booster = lgb.Booster(model_file=str(paths["booster"]))
            meta = json.loads(Path(paths["meta"]).read_text(encoding="utf-8"))
            bundle = cls(
                booster=booster,
                calibrator=Calibrator.from_json(Path(paths["calibrator"]).read_text(encoding="utf-8")),
                policy=ClassPolicy.from_json(Path(paths["policy"]).read_text(encoding="utf-8")),
                catalog=load_catalog(Path(paths["catalog"]), installed=installed_catalog()),
                profile=TrainingProfile.from_json(Path(paths["profile"]).read_text(encoding="utf-8")),
                meta=meta,
                catalog_yaml=Path(paths["catalog"]).read_bytes(),
                drift_profiles={k: TrainingProfile.model_validate(v) for k, v in json.loads(
                    Path(paths["drift_profiles"]).read_text(encoding="utf-8")).items()},
            )
        except (lgb.basic.LightGBMError, ValueError, KeyError, OSError) as exc:
            raise ModelPackageError(f"the model package cannot be read ({type(exc).__name__}: {exc})") from exc
        if booster.feature_name() != bundle.names:
            raise ModelPackageError("the model package's booster and its feature list disagree")
        return bundle
