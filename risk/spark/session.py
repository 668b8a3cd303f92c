"""A Spark session set up to give DuckDB's numbers, and the ``who_z`` function the feature SQL calls.

Two settings carry meaning, not speed:

- ANSI mode off. The feature SQL is written for DuckDB, where a map lookup of a
  missing key and a division by zero give NULL (missing stays missing); ANSI Spark
  raises instead.
- The session time zone UTC: dates are calendar days, never shifted by the
  driver's zone on their way through pandas.

``who_z(indicator, sex, age_months, value)`` is the same numpy function DuckDB
calls (:func:`risk.features.growth.who_zscores`, over the packaged LMS tables),
registered as a vectorised pandas UDF.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings

import numpy as np
import pandas as pd

from risk.errors import RiskError
from risk.features.growth import who_zscores

__all__ = ["SparkMissingError", "register_functions", "spark_session", "submitted_master"]

# A small local run should not shuffle into 200 partitions; a cluster sets its own with --conf.
_LOCAL_SHUFFLE_PARTITIONS = "8"
# In local mode the driver's JVM is the executor too. Spark's default heap (1g) failed `risk features
# --engine spark` on make demo's data (20,000 students × 6 terms, 11.6M attendance rows) after minutes of
# work: "Not enough memory to build and broadcast the table". DuckDB's batch path is given 4GB as well
# (configs/risk.yaml, data.duckdb_memory_limit); a cluster sizes its own driver and executors.
_LOCAL_DRIVER_MEMORY = "4g"
# Nor does 4g hold every table Spark chooses to broadcast: at 100,000 students × 2 terms `risk features
# --engine spark` failed the same way, a join's side estimated small and built large. Local mode joins by
# shuffle instead (the plan's results are the same; 100k then took 3 min 41 s on a shared host).
_LOCAL_BROADCAST_THRESHOLD = "-1"
# A session over small data (the tests' worlds) stops the JVM's JIT at C1. The optimising C2 spent 38 of the 91 CPU
# seconds of `risk features --engine spark` at 1,000 students compiling Spark's own code, which a run this short never
# pays back: with C1 alone the run took 58 CPU seconds. At 100,000 students C2's code pays: the tasks' CPU seconds
# were 58 with C2 and over 100 with C1 alone (the C2 compilation 62), so the CLI keeps the JVM's default.
# C1 alone gets a 48 MB code cache, which Spark's generated code filled at 100,000 students (the JIT then stops).
_QUICK_JIT = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m"


class SparkMissingError(RiskError):
    """pyspark or Java is not installed."""


def _quiet_pandas_warning() -> None:
    # PySpark 4.3 warns on every import under pandas 3 (see README, "Running on a Spark cluster").
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)


def spark_session(master: str | None = "local[2]", app_name: str = "risk", *, progress: bool = True,
                  quick_jit: bool = False):  # -> pyspark.sql.SparkSession
    """The active session, or a new one on ``master`` (None: what spark-submit gave), set up as above.

    Read when the session starts: ``progress``, Spark's console progress bar (``--quiet`` turns it off);
    ``quick_jit``, a local JVM for small data (the tests): C1 only (see ``_QUICK_JIT``).
    """
    _quiet_pandas_warning()
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkMissingError("pyspark is not installed: pip install 'risk[spark]' (pyspark 4.3.0)") from exc
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise SparkMissingError("Spark needs Java 17 or newer: apt-get install -y default-jre-headless")
    builder = SparkSession.builder.appName(app_name)
    if master:
        # Local workers run this interpreter (its venv holds numpy, pandas and risk); a cluster says its own.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (builder.master(master).config("spark.sql.shuffle.partitions", _LOCAL_SHUFFLE_PARTITIONS)
                   .config("spark.driver.memory", _LOCAL_DRIVER_MEMORY)  # read when the JVM starts, here
                   .config("spark.sql.autoBroadcastJoinThreshold", _LOCAL_BROADCAST_THRESHOLD)
                   .config("spark.sql.adaptive.autoBroadcastJoinThreshold", _LOCAL_BROADCAST_THRESHOLD)
                   .config("spark.ui.enabled", "false"))
        if quick_jit:
            builder = builder.config("spark.driver.extraJavaOptions", _QUICK_JIT)
    spark = (builder.config("spark.sql.ansi.enabled", "false")
             .config("spark.ui.showConsoleProgress", "true" if progress else "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             # Partition folders (bucket=3, term=2567-1) are read as text, then typed as DuckDB types them.
             .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    register_functions(spark)
    return spark


def submitted_master() -> str | None:
    """None under spark-submit (its --master stands), else ``local[2]``: the two cores of one machine."""
    # spark-submit starts the JVM first and hands the Python driver its gateway's port.
    return None if os.environ.get("PYSPARK_GATEWAY_PORT") else "local[2]"


def _who_z(indicator: pd.Series, sex: pd.Series, age_months: pd.Series, value: pd.Series) -> pd.Series:
    # One indicator per call site, as in DuckDB's registration (risk.features.health).
    name = indicator.iloc[0] if len(indicator) and isinstance(indicator.iloc[0], str) else "bmi_for_age"
    z = who_zscores(name, sex.to_numpy(dtype=object, na_value=None),
                    age_months.to_numpy(dtype=np.float64, na_value=np.nan),
                    value.to_numpy(dtype=np.float64, na_value=np.nan))
    # NaN must reach Spark as NULL (a NaN would be the largest value to max()): pandas UDFs mask nulls.
    return pd.Series(z, dtype="float64").where(~np.isnan(z), None)


def register_functions(spark) -> None:
    """Make ``who_z`` callable from Spark SQL, vectorised (Arrow batches to numpy)."""
    from pyspark.sql.functions import pandas_udf

    spark.udf.register("who_z", pandas_udf(_who_z, "double"))
