"""``risk features --engine spark``: the feature matrix on Spark SQL, from the one feature definition.

:func:`spark_features` takes :func:`risk.features.build.feature_plan`'s SQL (the SQL
DuckDB runs), compiles each relation with :func:`risk.spark.dialect.to_spark`, and
runs it over the session's views. Spark needs no bucket loop to bound memory, so
the whole cohort is one query; the matrix is written as Parquet partitioned by the
students' validated ``bucket``, the same split the batch path walks.
"""

from __future__ import annotations

import datetime as dt
import re
import resource
import time
from pathlib import Path

import pyarrow.parquet as pq

from risk.config import Settings
from risk.errors import ContractError
from risk.features.base import AsOf
from risk.features.batch import FeatureRunReport
from risk.features.build import KEY_COLUMNS, feature_plan
from risk.features.catalog import Catalog
from risk.features.freshness import check_as_of_in_data, domain_freshness
from risk.spark.context import view_context_rates
from risk.spark.dialect import to_spark
from risk.spark.sources import view_validated

__all__ = ["as_uri", "build_feature_matrix_spark", "is_local", "open_validated", "spark_features", "written_counts"]

# Parts read more than once by the parts and the query after them: kept in memory while the plan runs.
_CACHED = ("cohort", "att_day")


def as_uri(path: str | Path) -> str:
    """``path`` as Spark reads it: a URI that went through ``pathlib.Path`` (``hdfs:/nn/x``) gets its ``//`` back."""
    return re.sub(r"^([A-Za-z][\w+.-]*):/(?!/)", r"\1://", str(path))


def is_local(path: str | Path) -> bool:
    """Whether ``path`` is on this machine's file system (the checks that read it with DuckDB can run)."""
    text = str(path)
    return "://" not in text or text.startswith("file://")


def open_validated(spark, validated: str | Path, as_of: AsOf, settings: Settings) -> None:
    """Views over every validated table and the ``context_rates`` of ``as_of``, as the DuckDB batch path has."""
    view_validated(spark, str(validated), as_of=as_of.date)
    view_context_rates(spark, as_of, settings)


def spark_features(spark, as_of: AsOf, catalog: Catalog):
    """The feature rows of the cohort at ``as_of`` from the session's views (a Spark DataFrame).

    Columns: :data:`risk.features.build.KEY_COLUMNS`, then the catalog's enabled features (double,
    NULL where missing), one row per cohort student.
    """
    plan = feature_plan(as_of, catalog)
    cached = []
    for name, sql in (("cohort", plan.cohort), *((p.name, p.sql) for p in plan.parts)):
        frame = spark.sql(to_spark(sql))
        if name in _CACHED:
            frame = frame.cache()
            cached.append(frame)
        frame.createOrReplaceTempView(name)
    return spark.sql(to_spark(plan.query)), cached


def written_counts(spark, out: str, names) -> tuple[int, dict[str, int]]:
    """(rows, missing values of each of ``names``) of the Parquet matrix under ``out``.

    A local folder is counted from the files' footers (row and null counts, no data read); a Hadoop path,
    or a file written without statistics, by one Spark pass over the files.
    """
    counted = _footer_counts(Path(out.removeprefix("file://")), names) if is_local(out) else None
    return counted or _counted_by_spark(spark, out, names)


def _footer_counts(folder: Path, names) -> tuple[int, dict[str, int]] | None:
    """(rows, nulls of each of ``names``) from the footers of the files under ``folder``; None when a row group
    has no null count for one of them."""
    rows, missing = 0, dict.fromkeys(names, 0)
    for file in sorted(folder.glob("bucket=*/*.parquet")):
        meta = pq.read_metadata(file)
        rows += meta.num_rows
        position = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
        groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
        for name in names:
            stats = [group.column(position[name]).statistics for group in groups]
            if any(s is None or s.null_count is None for s in stats):
                return None
            missing[name] += sum(s.null_count for s in stats)
    return rows, missing


def _counted_by_spark(spark, out: str, names) -> tuple[int, dict[str, int]]:
    from pyspark.sql import functions as F

    counts = spark.read.parquet(out).agg(F.count(F.lit(1)).alias("_rows"), *(
        F.count(F.when(F.col(n).isNull(), 1)).alias(n) for n in names)).collect()[0]
    return counts["_rows"], {n: counts[n] for n in names}


def build_feature_matrix_spark(spark, validated: str | Path, as_of: dt.date, out: str, *, settings: Settings,
                               catalog: Catalog, check_data: bool = True) -> FeatureRunReport:
    """Write the feature matrix at ``as_of`` to ``out`` (a folder of Parquet, ``bucket=N`` partitions).

    The same checks as the batch path run first when ``validated`` is a local folder.
    """
    started = time.perf_counter()
    point, validated, out = AsOf(as_of), as_uri(validated), as_uri(out)
    freshness = []
    if check_data and is_local(validated):
        check_as_of_in_data(Path(str(validated).removeprefix("file://")), as_of)
        freshness = domain_freshness(Path(str(validated).removeprefix("file://")), as_of, settings)
    open_validated(spark, validated, point, settings)
    frame, cached = spark_features(spark, point, catalog)
    buckets = spark.sql(f"SELECT DISTINCT student_key, bucket FROM enrollments WHERE term = '{point.term}'")
    try:
        # One pass: the matrix is computed while it is written, then counted from what was written.
        (frame.join(buckets, "student_key", "left").repartition("bucket").sortWithinPartitions("student_key")
         .select(*KEY_COLUMNS, *catalog.names, "bucket")
         .write.mode("overwrite").partitionBy("bucket")
         .option("compression", "zstd").parquet(str(out)))
    finally:
        for part in cached:
            part.unpersist()
    rows, missing = written_counts(spark, str(out), catalog.names)
    if rows == 0:
        raise ContractError(f"no student of term {point.term} in {validated} is still enrolled at {as_of}")
    return FeatureRunReport(
        as_of=as_of, term=point.term, students=rows, features=len(catalog.names), catalog_version=catalog.version,
        missing_share={n: round(missing[n] / rows, 4) for n in catalog.names},
        seconds=round(time.perf_counter() - started, 2), output=str(out), freshness=freshness,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))  # the driver; the JVM apart
