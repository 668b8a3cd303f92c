"""Payloads the fast way leaves to the full way (checks as batch, then the SQL plan): counted and logged by reason.

The design expects two kinds of fallback, and only these are caught:
:class:`risk.online.payload_fast.Deferred` (a payload the fast checks cannot be sure
of) and :class:`risk.online.rowwise.NeedsSql` (a student the row-wise evaluator cannot
place). Every one is counted in ``risk_online_fallbacks_total{reason}`` and logged with
its reason alone (a short phrase, never an ID or a value from the payload).

The counter is process-wide, like the process it counts; the service adds it to its
registry (:class:`risk.serve.metrics.ServiceMetrics`), and with several workers each
writes its samples to the multiprocess folder as the service's own metrics do.
"""

from __future__ import annotations

from prometheus_client import Counter

from risk.logs import get_logger

__all__ = ["FALLBACKS", "fell_back"]

log = get_logger(__name__)

# registry=None: not on prometheus_client's global registry; the service registers it on its own.
FALLBACKS = Counter("risk_online_fallbacks_total",
                    "Payloads the fast way (fast checks, row-wise features) left to the full checks and SQL, by reason.",
                    ["reason"], registry=None)


def fell_back(reason: str) -> None:
    """Count and log one payload sent the full way because of ``reason``."""
    FALLBACKS.labels(reason=reason).inc()
    log.info("online features take the full way", reason=reason)
