"""Which module builds which domain's features (each has ``parts(as_of, catalog)`` and ``expression(spec, as_of)``).

What a domain can compute, and the check of a catalog entry, are in :mod:`risk.features.kinds`.
"""

from __future__ import annotations

from types import ModuleType

from risk.features import assistance, attendance, behaviour, enrollment, grades, health, household

__all__ = ["DOMAIN_MODULES"]

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
