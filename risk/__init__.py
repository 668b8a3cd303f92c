"""risk: an early-warning engine for Thai students at risk of dropping out."""

__version__ = "0.1.0"
