"""Source data: the contract, reading, validation, quarantine, pseudonyms, synthetic data."""

import sys


def _import_pandera_without_spark() -> None:
    """Import pandera with PySpark out of its sight, unless this process already runs Spark.

    pandera imports ``pyspark.pandas`` and ``pyspark.sql`` whenever PySpark is installed (the
    ``spark`` extra), to register Spark types that risk never validates with: ~0.3 s of every
    command's start-up, and PySpark's warning about pandas 3 on every ``risk validate``. A
    ``None`` in ``sys.modules`` makes ``import pyspark`` fail with ImportError, which pandera
    takes as "not installed"; the entries are removed afterwards, so ``risk.spark`` imports
    PySpark as usual.
    """
    if "pandera" in sys.modules or "pyspark" in sys.modules:
        return
    hidden = [name for name in ("pyspark", "pyspark.pandas", "pyspark.sql") if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden))
    try:
        import pandera.pandas  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


_import_pandera_without_spark()
