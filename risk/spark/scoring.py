"""``risk score --engine spark``: features on Spark SQL, the registered pyfunc through ``spark_udf``, reasons
through a pandas UDF, written as Parquet by bucket (``risk store load`` then fills the store).

- Probability and class: ``mlflow.pyfunc.spark_udf`` over the registered model (``models:/NAME@ALIAS``),
  ``env_manager="local"``: the executors run the pyfunc in the environment they have, the one
  ``risk score`` runs in one process (README, "Running on a Spark cluster").
- Reasons: :func:`risk.scoring.explained.explained_scores`, the explainer of ``risk score`` (the
  compiled forest's TreeSHAP tables), as a vectorised pandas UDF; the bundle travels to the
  executors inside the UDF, once per task.

The rows hold :data:`risk.scoring.batch.SCORE_FILE_COLUMNS`, the school context columns the store
counts per school, and ``bucket``; like every stored score they carry pseudonyms only.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np
import pandas as pd

from risk.config import Settings
from risk.errors import RiskError
from risk.features.base import AsOf
from risk.models.bundle import ModelBundle
from risk.scoring.batch import SCORE_FILE_COLUMNS
from risk.scoring.explained import explained_scores
from risk.scoring.settings import ReasonSettings, ScoringSettings
from risk.spark.features import as_uri, open_validated, spark_features

__all__ = ["CONTEXT_COLUMNS", "REASON_COLUMNS", "score_students_spark", "spark_scores"]

REASON_COLUMNS = ("reasons_en", "reasons_th", "reason_codes", "raised_by")
CONTEXT_COLUMNS = ("context_codes", "context_en", "context_th")
_PREDICTION = "probability double, risk_class string"
# Enough rows that the model explains through its compiled forest's tables (risk.models.forest: 256).
_TABULATED_ROWS = 1024


def _reasons_udf(bundle: ModelBundle, reasons: ReasonSettings):
    """A pandas UDF: a struct of the bundle's features → the explainer's reason and context columns."""
    from pyspark.sql.functions import pandas_udf

    columns = (*REASON_COLUMNS, *CONTEXT_COLUMNS)
    schema = ", ".join(f"{c} string" for c in columns)
    names = list(bundle.names)
    # The compiled forest tabulates its TreeSHAP on first use, keyed by the id() of its nodes, which
    # pickling to the executors changes: tabulate here, so the tables travel and the nodes are not read.
    bundle.contributions(np.full((_TABULATED_ROWS, len(names)), np.nan))

    def explain(features: pd.DataFrame) -> pd.DataFrame:
        scored = explained_scores(bundle, features[names].to_numpy("float64", na_value=float("nan")), reasons)
        if "raised_by" not in scored.columns:
            scored["raised_by"] = None
        return scored[list(columns)].astype(object).where(scored[list(columns)].notna(), None)

    return pandas_udf(explain, schema)


def spark_scores(spark, as_of: dt.date, *, bundle: ModelBundle, model_uri: str, model_version: str,
                 reasons: ReasonSettings):
    """Score rows of every student enrolled at ``as_of``, over views :func:`open_validated` made (a Spark DataFrame)."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    point = AsOf(as_of)
    features, cached = spark_features(spark, point, bundle.catalog)
    predict = mlflow.pyfunc.spark_udf(spark, model_uri, result_type=_PREDICTION, env_manager="local")
    row = F.struct(*(F.col(n) for n in bundle.names))
    # Only the keys go on: a feature may share its name with a hint column (region, sex).
    scored = features.select("student_key", "as_of", "term", "school_id", predict(row).alias("_predicted"),
                             _reasons_udf(bundle, reasons)(row).alias("_explained"))
    hints = spark.sql(f"""
        SELECT e.student_key, e.bucket, e.grade_level, e.classroom, e.sex, e.id_hint,
               s.district_code, s.province_code, s.region
        FROM enrollments e LEFT JOIN schools s ON s.school_id = e.school_id
        WHERE e.term = '{point.term}'""").dropDuplicates(["student_key"])
    out = (scored.join(hints, "student_key", "left")
           .select("student_key", "as_of", "term", "school_id", "district_code", "province_code", "region",
                   "grade_level", "classroom", "sex", "id_hint", "_predicted.probability", "_predicted.risk_class",
                   *(F.col(f"_explained.{c}").alias(c) for c in (*REASON_COLUMNS, *CONTEXT_COLUMNS)),
                   F.lit(model_version).alias("model_version"), "bucket"))
    return out.select(*SCORE_FILE_COLUMNS, *CONTEXT_COLUMNS, "bucket"), cached


def score_students_spark(spark, validated: str | Path, as_of: dt.date, out: str | Path, *, bundle: ModelBundle,
                         model_uri: str, model_version: str, settings: Settings,
                         scoring: ScoringSettings) -> dict[str, object]:
    """Write the score rows at ``as_of`` to ``out`` (Parquet by ``bucket``); returns students, classes, seconds."""
    started = time.perf_counter()
    open_validated(spark, as_uri(validated), AsOf(as_of), settings)
    frame, cached = spark_scores(spark, as_of, bundle=bundle, model_uri=model_uri, model_version=model_version,
                                 reasons=scoring.reasons)
    try:
        (frame.repartition("bucket").sortWithinPartitions("student_key").write.mode("overwrite")
         .partitionBy("bucket").option("compression", "zstd").parquet(as_uri(out)))
        classes = {r["risk_class"]: r["count"] for r in spark.read.parquet(as_uri(out))
                   .groupBy("risk_class").count().collect()}
    finally:
        for part in cached:
            part.unpersist()
    students = sum(classes.values())
    if students == 0:
        raise RiskError(f"no student in {validated} is enrolled at {as_of}: check --as-of against the terms validated")
    return {"students": students, "classes": classes, "seconds": round(time.perf_counter() - started, 2),
            "output": str(out)}
