"""Service settings (``configs/serve.yaml``), overridable by ``RISK_SERVE_*`` environment variables.

Paths are taken as given (relative to where the service starts). The pseudonym
key is not a setting: it comes from ``RISK_ID_KEY`` (or the labelled demo key
with ``demo_key: true``), read once when the app is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from risk.errors import ConfigError

__all__ = ["DEFAULT_SERVE_SETTINGS", "MicroBatchSettings", "RateLimitSettings", "ServeSettings",
           "load_serve_settings"]

DEFAULT_SERVE_SETTINGS = Path(__file__).resolve().parents[2] / "configs" / "serve.yaml"


class MicroBatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window_ms: float = Field(2.0, ge=0, le=100)
    max_size: int = Field(32, ge=1, le=1000)
    workers: int = Field(2, ge=1, le=32)


class RateLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_second: float = Field(200, gt=0)
    burst: int = Field(400, ge=1)


class ServeSettings(BaseSettings):
    """Everything the service needs to start; see ``configs/serve.yaml`` for what each value means."""

    model_config = SettingsConfigDict(extra="forbid", env_prefix="RISK_SERVE_", env_nested_delimiter="__")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=32)
    # Set by `risk serve` when workers > 1: the folder its workers share (rate-limit buckets).
    shared_dir: Path | None = None
    data: Path = Path("data/validated")
    store_url: str | None = None
    tracking_dir: Path = Path("data")
    model_name: str = "dropout-risk"
    model_alias: str = "champion"
    model_cache: Path | None = None
    poll_seconds: float = Field(60, gt=0)
    mlflow_timeout_seconds: float = Field(5, gt=0)
    mlflow_retries: int = Field(0, ge=0, le=10)
    demo_key: bool = False
    batch_max_students: int = Field(200, ge=1, le=1000)
    # Request bodies, KiB: see configs/serve.yaml for how they were sized.
    max_body_kib: int = Field(256, ge=1, le=64 * 1024)
    batch_kib_per_student: int = Field(64, ge=1, le=64 * 1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = True
    micro_batch: MicroBatchSettings = MicroBatchSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    key_cache_seconds: float = Field(5, ge=0)
    cookie_secure: bool = False
    settings_file: Path | None = None  # configs/risk.yaml (data settings, catalog path)
    scoring_file: Path | None = None  # configs/scoring.yaml (reasons, suggested actions)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the YAML file: a deployment overrides what the file says.
        return env_settings, init_settings

    @property
    def cache_dir(self) -> Path:
        return self.model_cache or self.tracking_dir / "model_cache"

    @property
    def max_body_bytes(self) -> int:
        """The largest request body any route takes, bytes (413 above it)."""
        return self.max_body_kib * 1024

    @property
    def max_batch_body_bytes(self) -> int:
        """The largest body of ``POST /v1/score/batch``, bytes: a full batch at the per-student allowance."""
        return max(self.max_body_bytes, self.batch_max_students * self.batch_kib_per_student * 1024)


def load_serve_settings(path: Path = DEFAULT_SERVE_SETTINGS, **overrides: Any) -> ServeSettings:
    """Read ``path`` (then ``RISK_SERVE_*`` variables, then ``overrides``); a fault names the file and key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read service settings ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    try:
        settings = ServeSettings(**data)
        return settings.model_copy(update=overrides) if overrides else settings
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
