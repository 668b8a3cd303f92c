"""Which module builds which domain's features."""

from __future__ import annotations

from types import ModuleType

from risk.features import assistance, attendance, behaviour, enrollment, grades, health, household
from risk.features.catalog import FeatureSpec

__all__ = ["DOMAIN_MODULES", "check_compute"]

DOMAIN_MODULES: dict[str, ModuleType] = {
    "attendance": attendance,
    "grades": grades,
    "enrollment": enrollment,
    "context": enrollment,
    "household": household,
    "health": health,
    "behaviour": behaviour,
    "assistance": assistance,
}


def check_compute(spec: FeatureSpec) -> None:
    """Raise ValueError when the domain module cannot compute ``spec``."""
    DOMAIN_MODULES[spec.domain].check(spec)
