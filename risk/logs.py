"""Structured logs (key=value on stderr). Logs carry pseudonyms only, never raw IDs.

structlog is imported when the first logger is asked for, not when a command starts:
it pulls in asyncio and rich's tracebacks (~0.15 s of CPU), and ``risk --help`` or a
command whose modules never log need neither.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import structlog

__all__ = ["configure_logging", "get_logger"]

# The level a program asked for before structlog was imported; applied when the first logger is made.
_pending: str | None = None


def configure_logging(level: str = "INFO") -> None:
    """Key=value lines on stderr with an ISO timestamp; call once at program start."""
    global _pending
    if "structlog" in sys.modules:
        _configure(level)
    else:
        _pending = level


def _configure(level: str) -> None:
    import structlog

    global _pending
    _pending = None
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        # sys.stderr looked up at each call: a test runner may swap it after configuration.
        logger_factory=lambda *args: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    import structlog

    if _pending is not None:
        _configure(_pending)
    elif not structlog.is_configured():
        # Used as a library (tests, notebooks), risk says only warnings until a program configures it.
        _configure("WARNING")
    return structlog.get_logger(name)
