"""The one error hierarchy of risk.

``RiskError`` is the base: the CLI catches it and prints its message as one
sentence, with no traceback. Anything else escaping is a bug.

- ``ConfigError``: a configuration file or setting is wrong.
- ``ContractError``: a whole source file breaks the data contract (unreadable,
  required columns missing); bad *rows* are quarantined instead.
- ``MissingIdKeyError``: no pseudonym key is configured.
"""

from __future__ import annotations

__all__ = ["ConfigError", "ContractError", "MissingIdKeyError", "RiskError"]


class RiskError(Exception):
    """Base of every error risk raises on purpose; its message is for people."""


class ConfigError(RiskError):
    """A configuration value or file is wrong."""


class ContractError(RiskError):
    """A source file cannot be taken at all (unreadable, or required columns missing)."""


class MissingIdKeyError(RiskError):
    """No pseudonym key was configured."""
