"""Synthetic EEF/OBEC extracts for risk (docstring completed below)."""

from risk.data.synth.config import SynthConfig, SynthConfigError
from risk.data.synth.engine import generate
from risk.data.synth.report import SynthReport

__all__ = ["SynthConfig", "SynthConfigError", "SynthReport", "generate"]
