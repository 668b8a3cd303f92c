"""Structured logs (key=value on stderr). Logs carry pseudonyms only, never raw IDs."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging", "get_logger"]


def configure_logging(level: str = "INFO") -> None:
    """Key=value lines on stderr with an ISO timestamp; call once at program start."""
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
    # Used as a library (tests, notebooks), risk says only warnings until a program configures it.
    if not structlog.is_configured():
        configure_logging("WARNING")
    return structlog.get_logger(name)
