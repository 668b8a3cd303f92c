"""Settings, loaded once from ``configs/risk.yaml`` into typed models and passed down explicitly.

This is the bottom layer: it imports only :mod:`risk.errors`. Each section's model lives here, beside
the others, and the layer that acts on it imports it from here (:class:`LabelPolicy`: :mod:`risk.labels`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from risk.errors import ConfigError

__all__ = ["DataSettings", "FeatureSettings", "FreshnessSettings", "LabelPolicy", "Settings", "load_settings",
           "load_yaml_model"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS = REPO_ROOT / "configs" / "risk.yaml"


class DataSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chunk_rows: int = Field(1_000_000, ge=1_000)
    student_buckets: int = Field(32, ge=1, le=1024)
    duckdb_memory_limit: str = "4GB"
    workers: int = Field(2, ge=1, le=64)
    # Data-health gate of risk validate: the share of a table's incoming rows that may be
    # quarantined before the run warns, and before it fails (unless --accept-loss names the table).
    loss_warn_share: float = Field(0.05, ge=0, le=1)
    loss_fail_share: float = Field(1.0, gt=0, le=1)


class FreshnessSettings(BaseModel):
    """How old each domain's newest row may be at ``as_of`` before features, scores and the report call it stale."""

    model_config = ConfigDict(extra="forbid")
    max_age_days: dict[str, int] = {
        "attendance_daily": 30, "grades": 240, "household": 400, "health": 400, "behaviour": 400, "assistance": 400,
    }


class LabelPolicy(BaseModel):
    """Label switches (section ``labels``), read by :func:`risk.labels.dropout_labels`."""

    # Compulsory school ends with M3: whether finishing it and not starting M4 counts as dropout.
    m3_non_continuation_is_dropout: bool = True


class FeatureSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    catalog: Path = Path("configs/features.yaml")
    context_history_terms: int = Field(4, ge=1, le=20)
    context_prior_students: float = Field(20, ge=0)
    threads: int = Field(2, ge=1)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: DataSettings = DataSettings()
    labels: LabelPolicy = LabelPolicy()
    features: FeatureSettings = FeatureSettings()
    freshness: FreshnessSettings = FreshnessSettings()

    def resolve(self, path: Path) -> Path:
        """A configured relative path, taken from the repository root when not found where risk runs."""
        return path if path.is_absolute() or path.exists() else REPO_ROOT / path


def load_settings(path: Path = DEFAULT_SETTINGS) -> Settings:
    """Read settings; a wrong value raises ConfigError naming the file and the section."""
    return load_yaml_model(path, Settings, "settings")


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M], what: str) -> M:
    """A YAML file read into the pydantic ``model``; any fault is a ConfigError naming the file and section."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return model.model_validate(data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
