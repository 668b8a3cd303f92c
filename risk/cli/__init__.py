"""``risk``: the command line. A thin shell over the package; each command's work lives in its module.

Every command has ``--help``; bad input ends with one clear sentence on stderr and
a non-zero exit code, never a traceback. The commands are grouped by area: data
(synth, validate, split-export, contract, features), models (train, promote), actions (import),
pilots (pilot plan, pilot show, impact), scoring (score, report, term) and service (serve, keys).
"""

from __future__ import annotations

from risk.cli import actions, audit, data, impact, intake, models, pilot, scoring, service, store  # noqa: F401  (each registers its commands on app)
from risk.cli.common import app

__all__ = ["app"]
