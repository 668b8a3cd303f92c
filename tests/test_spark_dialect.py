"""Each Spark rewrite of the feature SQL on its own (risk.spark.dialect); no Spark needed.

The numbers are held to DuckDB's in tests/test_spark_features.py; here, what each rewrite
writes, that quoted text is never touched, and that a DuckDB-only construct without a
rewrite fails loudly instead of reaching Spark.
"""

from __future__ import annotations

import datetime as dt

import pytest
from parity_support import every_kind_catalog

from risk.features.base import AsOf
from risk.features.build import feature_plan
from risk.spark.dialect import (
    SparkDialectError,
    call_args,
    date_diff,
    double_literals,
    isodow,
    list_position,
    map_literal,
    power,
    to_spark,
)


def test_list_position_gives_null_for_a_value_not_in_the_list():
    assert (list_position("CAST(list_position(['a', 'b,c'], any_value(sex)) - 1 AS DOUBLE)")
            == "CAST(nullif(array_position(array('a', 'b,c'), any_value(sex)), 0) - 1 AS DOUBLE)")


def test_isodow_counts_monday_as_one():
    assert isodow("isodow(days.date) AS weekday") == "(((dayofweek(days.date) + 5) % 7) + 1) AS weekday"


@pytest.mark.parametrize(("day", "iso"), [(dt.date(2024, 6, 3) + dt.timedelta(n), n + 1) for n in range(7)])
def test_the_isodow_formula_maps_spark_dayofweek_to_iso(day, iso):
    spark_dayofweek = (day.weekday() + 1) % 7 + 1  # Spark: 1 Sunday … 7 Saturday
    assert ((spark_dayofweek + 5) % 7) + 1 == iso == day.isoweekday()


def test_date_diff_puts_the_end_first():
    assert date_diff("date_diff('day', c.birth_date, DATE '2024-06-07')") == "datediff(DATE '2024-06-07', c.birth_date)"
    with pytest.raises(SparkDialectError, match="month"):
        date_diff("date_diff('month', a, b)")


def test_a_map_literal_takes_keys_and_values_in_turn():
    assert map_literal("map(['K1', 'K2'], [3, 4])[g]") == "map('K1', 3, 'K2', 4)[g]"
    assert map_literal("map('K1', 3)") == "map('K1', 3)"


def test_caret_is_power_not_xor():
    assert power("w / ((h / 100) ^ 2)") == "w / (power((h / 100), 2))"
    assert power("x ^ 2 + y ^ 3") == "power(x, 2) + power(y, 3)"


def test_decimal_literals_become_doubles_outside_quotes():
    assert (double_literals("avg(CASE WHEN a THEN 1.0 ELSE 0.0 END) / 365.25 - 0.8, '1.5', x1.5")
            == "avg(CASE WHEN a THEN 1.0D ELSE 0.0D END) / 365.25D - 0.8D, '1.5', x1.5")


def test_quoted_text_is_never_rewritten():
    sql = "SELECT 'isodow(x) ^ [1] list_position' AS t, isodow(d) AS w"
    assert to_spark(sql) == "SELECT 'isodow(x) ^ [1] list_position' AS t, (((dayofweek(d) + 5) % 7) + 1) AS w"


def test_nested_calls_are_rewritten_inside_out():
    assert (to_spark("list_position(['a'], date_diff('day', a, b))")
            == "nullif(array_position(array('a'), datediff(b, a)), 0)")


@pytest.mark.parametrize("sql", ["SELECT list_contains(['a'], x)", "SELECT * EXCLUDE (x) FROM t",
                                 "SELECT [1, 2] AS l", "SELECT a FROM t QUALIFY row_number() OVER () = 1"])
def test_a_duckdb_construct_without_a_rewrite_fails_loudly(sql):
    with pytest.raises(SparkDialectError, match="DuckDB-only"):
        to_spark(sql)


def test_call_args_respects_brackets_and_quotes():
    assert call_args("'a,b', f(x, y), [1, 2]") == ["'a,b'", "f(x, y)", "[1, 2]"]


def test_every_relation_of_the_every_kind_plan_compiles(tmp_path):
    plan = feature_plan(AsOf(dt.date(2024, 6, 7)), every_kind_catalog(tmp_path))
    for sql in (plan.cohort, plan.query, *(p.sql for p in plan.parts)):
        compiled = to_spark(sql)
        assert "isodow" not in compiled and "list_position" not in compiled and "date_diff" not in compiled


def test_a_bracket_or_quote_inside_quoted_text_does_not_end_a_call():
    assert (list_position("list_position([')', 'it''s ]'], x) + 1")
            == "nullif(array_position(array(')', 'it''s ]'), x), 0) + 1")
