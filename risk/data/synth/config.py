"""The generator's calibration as typed data, loaded from ``configs/synth.yaml``.

Every field is required: the values live in the YAML file only, so there is one
source for each number. :meth:`SynthConfig.from_yaml` names the section of any
error; :meth:`SynthConfig.clean` returns a copy with no injected errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from risk.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_PATH", "SynthConfig", "SynthConfigError"]

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[3] / "configs" / "synth.yaml"

Weights = dict[str, float]
Range = tuple[float, float]
IntRange = tuple[int, int]


class SynthConfigError(ConfigError):
    """The synth config file is missing or does not match the expected shape."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchoolsConfig(_Section):
    region_weight: Weights
    deep_south_boost: float
    deep_south_provinces: list[str]
    districts_per_province: IntRange
    urban_share: float
    type_share: Weights
    size_given_area: dict[Literal["rural", "urban"], Weights]
    secondary_size_shift: int
    size_weight: Weights
    affiliation: Weights
    bpp_regions: list[str]
    missing_coordinates: float
    name_prefix: dict[str, str]
    name_suffix: dict[str, str]
    effect_sd: float
    district_effect_sd: float
    area_poverty_sd: float
    region_poverty: Weights
    rural_poverty: float
    attendance_effect_sd: float


class CalendarConfig(_Section):
    semester1_end: str
    semester2_end: str
    end_jitter_days: int
    late_start_share: float
    midterm_break_days: IntRange
    closure_days_mean: float


class PopulationConfig(_Section):
    grade_weight: Weights
    entrant_grade: Weights
    male_share: float
    non_thai_share: float
    thai_first_digit: Weights
    disability_share: float
    disability_type: Weights
    over_age_base: float
    over_age_poverty: float
    over_age_secondary: float
    under_age_share: float
    classrooms: IntRange
    family_on_poverty: float
    health_on_poverty: float
    non_thai_poverty: float


class ShockConfig(_Section):
    base: float
    poverty: float
    family: float
    semester2: float
    health: float = 0.0          # only illness depends on health
    upper_secondary: float = 0.0  # only pregnancy depends on the level


class LatentConfig(_Section):
    ar: Weights
    drift_sd: Weights
    engagement_on: Weights
    engagement_sd: float
    shocks: dict[Literal["migration", "job_loss", "illness", "pregnancy"], ShockConfig]
    shock_effect: dict[str, Weights]
    migration_transfer: float


class HazardConfig(_Section):
    yearly_rate: Weights
    semester1_share: Weights
    within_term_share: float
    within_term_share_transition: float
    transition_grades: list[str]
    coef: Weights
    pilot_students: int
    death_rate_per_term: float
    recorded_as: Weights
    recorded_as_transition: Weights


class MovesConfig(_Section):
    transfer_rate: float
    transfer_other_province: float
    stay_extended_after_p6: float
    repeat_base: float
    repeat_fail_share: float
    repeat_gpa: float
    no_repeat_grades: list[str]


class AttendanceConfig(_Section):
    absence_base: float
    absence_on: Weights
    weekday_logit: list[float]
    persistence: float
    shock_lag_days: IntRange
    shock_logit: Weights
    illness_days: IntRange
    pre_dropout_days: int
    pre_dropout_logit: float
    sick_share: Weights
    leave_share: float
    late_base: float
    late_on: Weights
    eligibility_line: float
    ms_share: float


class GradesConfig(_Section):
    curriculum: dict[Literal["primary", "lower", "upper"], list[tuple[str, int, float]]]
    optional_subjects: int
    score_mean: float
    score_on: Weights
    score_sd: float
    subject_difficulty_sd: float
    incomplete_base: float
    incomplete_engagement: float
    activity_fail_base: float
    recorded_after_days: IntRange


class HouseholdConfig(_Section):
    screening_month: int
    size_mean: float
    size_poverty: float
    per_capita_median_baht: float
    per_capita_poverty: float
    per_capita_sd: float
    zero_income_share: float
    cct_line_baht: float
    extreme_line_baht: float
    not_screened_share: float
    house_cut: tuple[float, float, float]
    land_base: float
    land_on: Weights
    water: Weights
    no_electricity_base: float
    vehicle_base: float
    vehicle_poverty: float
    dependant_share: float
    lives_with: dict[str, tuple[float, float]]
    distance_km_median: Weights
    distance_sd: float


class HealthConfig(_Section):
    height_z_mean: float
    height_on: Weights
    height_z_sd: float
    bmi_z_mean: float
    bmi_on: Weights
    bmi_z_sd: float
    measure_error_cm: float
    measure_error_kg: float
    measure_weeks: list[IntRange]


class BehaviourConfig(_Section):
    sdq: dict[str, Weights]
    student_sd: float
    flags: dict[str, tuple[float, float, float, float, float]]
    pregnancy_seen: float
    screen_weeks: IntRange


class AssistanceConfig(_Section):
    cct_baht: Weights
    cct_week: IntRange
    not_received_base: float
    not_received_migration: float
    lunch_baht_per_day: float
    uniform_baht: Weights
    scholarship_base: float
    scholarship_on: Weights
    scholarship_baht: IntRange
    other_share: float
    other_baht: IntRange


class MessConfig(_Section):
    enabled: bool
    rate: float = Field(ge=0, le=0.2)
    kinds: dict[str, Weights]


class SynthConfig(_Section):
    """All knobs of the generator (see ``configs/synth.yaml`` for the meaning of each)."""

    chunk_size: int = Field(gt=0, le=5_000_000)
    row_group_rows: int = Field(gt=0)
    compression: str
    csv_tables: list[str]
    students_per_school: float = Field(gt=0)
    min_schools: int = Field(ge=4)
    schools: SchoolsConfig
    calendar: CalendarConfig
    population: PopulationConfig
    latent: LatentConfig
    hazard: HazardConfig
    moves: MovesConfig
    attendance: AttendanceConfig
    grades: GradesConfig
    household: HouseholdConfig
    health: HealthConfig
    behaviour: BehaviourConfig
    assistance: AssistanceConfig
    mess: MessConfig

    @field_validator("csv_tables")
    @classmethod
    def _known_tables(cls, value: list[str]) -> list[str]:
        from risk.data.contract import TABLES

        unknown = sorted(set(value) - set(TABLES))
        if unknown:
            raise ValueError(f"csv_tables names unknown tables {unknown}; known: {sorted(TABLES)}")
        return value

    @classmethod
    def from_yaml(cls, path: str | Path = DEFAULT_CONFIG_PATH) -> SynthConfig:
        """Load and check a synth config file.

        Raises
        ------
        SynthConfigError
            When the file is missing, is not YAML, or a section has a wrong or missing value.
        """
        path = Path(path)
        if not path.is_file():
            raise SynthConfigError(f"synth config {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise SynthConfigError(f"synth config {path} is not valid YAML: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise SynthConfigError(
                f"synth config {path}: {where}: {first['msg']} ({exc.error_count()} problem(s) in all)"
            ) from exc

    def clean(self) -> SynthConfig:
        """The same config with error injection switched off (perfectly clean data)."""
        return self.model_copy(update={"mess": self.mess.model_copy(update={"enabled": False})})
