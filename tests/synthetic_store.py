"""A synthetic export generated and validated into a folder: the small stores many test modules build."""

from __future__ import annotations

from pathlib import Path

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def validated_synthetic(root: Path, *, students: int, terms: int, seed: int, key: bytes, buckets: int = 4) -> Path:
    """``root/source`` generated (``configs/synth.yaml``) and validated into ``root/validated``, which is returned."""
    from risk.data.synth import SynthConfig, generate
    from risk.data.validate import validate_sources

    config = SynthConfig.from_yaml(CONFIGS / "synth.yaml")
    generate(root / "source", students=students, terms=terms, seed=seed, config=config, progress=False)
    validate_sources(root / "source", root / "validated", key=key, progress=False, buckets=buckets)
    return root / "validated"
