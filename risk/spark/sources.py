"""Spark temp views named after the contract tables, as :mod:`risk.features.sources` makes DuckDB's.

Over validated Parquet on any Hadoop-compatible path (a local folder, ``hdfs://``,
``s3a://``, ``abfss://``): student tables with ``student_key`` and their ``bucket``
(and, for attendance, ``term``) from the partition folders; ``schools`` as the
version in force at ``as_of`` (:func:`risk.data.versions.in_force_order`);
``calendar`` as it is. Over in-memory frames (tests): the same views from pandas.
A table with no files is an empty view of the validated columns.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from risk.data.contract import TABLES
from risk.data.versions import VALID_FROM, in_force_order
from risk.features.sources import REFERENCE_TABLES, STUDENT_TABLES, empty_frame

__all__ = ["register_frames", "validated_schema", "view_validated"]

# The types DuckDB gives the partition columns (risk.features.sources).
_PARTITION_TYPES = {"bucket": "int", "term": "string"}
# The validated type of each contract column kind, as risk.features.sources.empty_frame lays them out.
_ARROW = {"id": pa.int64(), "text": pa.string(), "term": pa.string(), "date": pa.date32(),
          "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}  # fmt: skip


def validated_schema(name: str) -> pa.Schema:
    """The validated columns of contract table ``name`` (``student_key`` for the id, the derived columns too)."""
    table = TABLES[name]
    fields = [pa.field("student_key" if c.kind == "id" else c.name, _ARROW[c.kind]) for c in table.columns]
    derived = [field for field in pa.Schema.from_pandas(empty_frame(table), preserve_index=False)
               if field.name not in {f.name for f in fields}]
    return pa.schema(fields + [pa.field(f.name, pa.string()) for f in derived])  # id_hint, term, school_id


def _join(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name


def _empty(spark, name: str):
    return spark.createDataFrame(validated_schema(name).empty_table())


def _read(spark, folder: str, *, files_only: bool = False):
    """The Parquet under ``folder`` (None when there is none); ``files_only``: not the sub-folders."""
    from pyspark.errors import AnalysisException

    reader = spark.read.option("mergeSchema", "true")
    try:
        if files_only:
            return reader.option("recursiveFileLookup", "false").parquet(folder + "/*.parquet")
        return reader.option("basePath", folder).parquet(folder)
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "UNABLE_TO_INFER_SCHEMA" in str(exc):
            return None
        raise


def view_validated(spark, validated: str, as_of: dt.date | None = None) -> None:
    """Views over every validated table under ``validated`` (a path or URI), ``schools`` in force at ``as_of``."""
    from pyspark.sql import functions as F

    root = str(validated)
    for name in STUDENT_TABLES:
        frame = _read(spark, _join(root, name))
        if frame is None:
            frame = _empty(spark, name)
        for column, kind in _PARTITION_TYPES.items():
            if column in frame.columns:
                frame = frame.withColumn(column, F.col(column).cast(kind))
        frame.createOrReplaceTempView(name)
    for name in REFERENCE_TABLES:
        frame = _read(spark, _join(root, name), files_only=True)
        if frame is None:
            frame = _empty(spark, name)
        elif name == "schools":
            frame = _in_force(frame, as_of)
        frame.createOrReplaceTempView(name)


def _in_force(schools, as_of: dt.date | None):
    """One row per school: the version in force at ``as_of`` (None: the latest), as schools_in_force picks it."""
    from pyspark.sql import functions as F

    if VALID_FROM not in schools.columns:
        return schools
    frame = schools.withColumn("filename", F.input_file_name())
    if as_of is not None:
        frame = frame.where(F.col(VALID_FROM).isNull() | (F.col(VALID_FROM) <= F.lit(as_of)))
    frame.createOrReplaceTempView("_risk_school_versions")
    ranked = frame.sparkSession.sql("SELECT *, row_number() OVER (PARTITION BY school_id "
                                    f"ORDER BY {in_force_order()}) AS _in_force FROM _risk_school_versions")
    return ranked.where("_in_force = 1").drop("_in_force", "filename", VALID_FROM)


def register_frames(spark, frames: dict[str, pd.DataFrame]) -> None:
    """Views over in-memory frames in the validated layout (each typed as the contract types it)."""
    for name, frame in frames.items():
        if name in TABLES:
            schema = validated_schema(name)
            known = [f for f in schema if f.name in frame.columns]
            extra = frame[[c for c in frame.columns if c not in schema.names]]
            table = pa.Table.from_pandas(frame[[f.name for f in known]], schema=pa.schema(known),
                                         preserve_index=False)
            for column in extra.columns:
                table = table.append_column(column, pa.array(extra[column], from_pandas=True))
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
        spark.createDataFrame(table).createOrReplaceTempView(name)
