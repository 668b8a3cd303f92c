"""An export's student records as the JSON payloads an upstream system sends to ``POST /v1/score``.

Benchmarks and tests score real students of a synthetic export through the service;
this turns the export's files into those payloads (dates as ``YYYY-MM-DD`` text, as
JSON carries them), the export's own bad rows included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from risk.data.contract import TABLES

__all__ = ["read_student_tables", "student_payloads"]


def read_student_tables(source: Path) -> dict[str, pd.DataFrame]:
    """Every student table of the export folder ``source`` (Parquet and CSV parts), as read, text kept as text."""
    tables = {}
    for name, table in TABLES.items():
        if table.has_student:
            parts = [pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p, dtype=str, keep_default_na=False)
                     for p in sorted((source / name).iterdir()) if p.suffix in (".parquet", ".csv")]
            tables[name] = pd.concat(parts, ignore_index=True)
    return tables


def student_payloads(tables: dict[str, pd.DataFrame], student_ids: Iterable[str]) -> list[dict[str, list[dict]]]:
    """One payload per student ID: that student's rows of every student table, as JSON records."""
    grouped = {name: dict(tuple(frame.groupby("student_id"))) for name, frame in tables.items()}
    out = []
    for student_id in student_ids:
        payload = {}
        for name, frame in tables.items():
            rows = grouped[name].get(student_id, frame.iloc[:0])
            payload[name] = json.loads(rows.to_json(orient="records", date_format="iso", date_unit="s"))
            for row in payload[name]:
                for column, value in row.items():
                    if isinstance(value, str) and value.endswith("T00:00:00"):
                        row[column] = value[:10]
        out.append(payload)
    return out
