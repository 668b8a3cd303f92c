"""The store behaves the same on SQLite and PostgreSQL: each test runs on both.

PostgreSQL tests work in a schema of their own (dropped afterwards) and skip
when the local server is not reachable.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import thai_id
from sqlalchemy import inspect, select, text

from risk.data.ids import masked_id
from risk.store import (
    SCORE_COLUMNS,
    Store,
    StoreError,
    acknowledge,
    default_store_url,
    done_buckets,
    find_unfinished_run,
    finish_run,
    latest_scores,
    open_alerts,
    open_store,
    previous_scores,
    start_run,
    student_history,
    summaries,
    write_alerts,
    write_bucket_scores,
    write_summaries,
)
from risk.store.migrate import current_revision, head_revision
from risk.store.models import Acknowledgement, AreaSummary, Base, ScoringRun, ScoringRunBucket

TABLES = {"scoring_runs", "scoring_run_buckets", "scores", "alerts", "acknowledgements", "alert_actions",
          "area_summaries", "pilot_plans", "pilot_schools", "impact_estimates"}
SCHOOL_A, SCHOOL_B = "1040100001", "1030200002"
JUNE, JULY, JULY_10, JULY_24 = dt.date(2026, 6, 1), dt.date(2026, 7, 1), dt.date(2026, 7, 10), dt.date(2026, 7, 24)


@pytest.fixture
def store(backend: tuple[str, str | None]) -> Iterator[Store]:
    opened = open_store(backend[0])
    yield opened
    opened.close()


def scores_frame(keys: list[int], classes: list[str], as_of: dt.date, school_id: str = SCHOOL_A) -> pd.DataFrame:
    """One row per student with readable values: probability 0.1/0.4/0.8 for normal/at_risk/problem."""
    probability = {"normal": 0.1, "at_risk": 0.4, "problem": 0.8}
    n = len(keys)
    return pd.DataFrame({
        "student_key": keys,
        "as_of": [as_of] * n,
        "term": ["2569-1"] * n,
        "school_id": [school_id] * n,
        "district_code": [school_id[:4]] * n,
        "province_code": [school_id[:2]] * n,
        "region": ["northeast"] * n,
        "grade_level": ["P6"] * n,
        "classroom": ["6/1"] + [None] * (n - 1),
        "sex": ["female"] * n,
        "id_hint": ["•••••••••" + f"{k % 10_000:04d}" for k in keys],
        "probability": [probability[c] for c in classes],
        "risk_class": classes,
        "reasons_en": [["Attendance under 80%"]] * n,
        "reasons_th": [["มาเรียนต่ำกว่า 80%"]] * n,
        "reason_codes": [["attendance_rate"]] * n,
        "model_version": ["3"] * n,
    })  # fmt: skip


def new_run(store: Store, as_of: dt.date, model_version: str = "3") -> str:
    return start_run(
        store, as_of=as_of, term="2569-1", model_name="dropout-risk", model_version=model_version, settings={"buckets": 4}
    )


def finished_run(store: Store, as_of: dt.date, frame: pd.DataFrame) -> str:
    run_id = new_run(store, as_of)
    write_bucket_scores(store, run_id, 0, frame)
    finish_run(store, run_id, students=len(frame), drift={"score_psi": 0.01})
    return run_id


def alerts_frame(school_ids: list[str]) -> pd.DataFrame:
    n = len(school_ids)
    return pd.DataFrame({
        "student_key": list(range(1, n + 1)),
        "school_id": school_ids,
        "as_of": [JULY_24] * n,
        "kind": ["newly_at_risk"] * n,
        "previous_class": ["normal"] * n,
        "current_class": ["at_risk"] * n,
        "probability": [0.4] * n,
        "grade_level": ["M3"] * n,
        "classroom": ["3/2"] * n,
        "sex": ["male"] * n,
        "id_hint": ["•••••••••0001"] * n,
        "reasons_en": [["Absent 5 of the last 10 days"]] * n,
        "reasons_th": [["ขาดเรียน 5 ใน 10 วันล่าสุด"]] * n,
        "actions_en": [["Home visit"]] * n,
        "actions_th": [["เยี่ยมบ้าน"]] * n,
    })  # fmt: skip


def count(store: Store, table, *where) -> int:
    with store.session() as session:
        return len(session.scalars(select(table).where(*where)).all())


# --- migrations -------------------------------------------------------------------


def test_migrations_create_every_table_at_head(store: Store, backend: tuple[str, str | None]) -> None:
    schema = backend[1]
    names = set(inspect(store.engine).get_table_names(schema=schema))
    assert names >= TABLES
    assert "alembic_version" in names  # on PostgreSQL: inside the test's own schema
    assert current_revision(store.engine) == head_revision() == "0007"


def test_migrated_schema_matches_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def test_opening_an_existing_store_keeps_its_data(store: Store, backend: tuple[str, str | None]) -> None:
    run_id = new_run(store, JULY_24)
    again = open_store(backend[0])
    assert find_unfinished_run(again, as_of=JULY_24, model_version="3") == run_id
    again.close()


# --- runs and buckets ----------------------------------------------------------------


def test_writing_a_bucket_twice_leaves_it_once(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    write_bucket_scores(store, run_id, 0, scores_frame([11, 12, 13], ["normal"] * 3, JULY_24))
    written = write_bucket_scores(store, run_id, 0, scores_frame([11, 12], ["problem", "normal"], JULY_24))
    assert written == 2
    stored = pd.concat(latest_scores(store, run_id)).sort_values("student_key")
    assert stored["student_key"].tolist() == [11, 12]
    assert stored["risk_class"].tolist() == ["problem", "normal"]
    assert count(store, ScoringRunBucket, ScoringRunBucket.run_id == run_id) == 1


def test_done_buckets_are_the_written_ones_of_that_run(store: Store) -> None:
    run_id, other = new_run(store, JULY_24), new_run(store, JULY_24)
    write_bucket_scores(store, run_id, 0, scores_frame([1], ["normal"], JULY_24))
    write_bucket_scores(store, run_id, 2, scores_frame([3], ["normal"], JULY_24))
    assert done_buckets(store, run_id) == {0, 2}
    assert done_buckets(store, other) == set()


def test_only_a_running_run_of_the_same_version_is_resumed(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    assert find_unfinished_run(store, as_of=JULY_24, model_version="3") == run_id
    assert find_unfinished_run(store, as_of=JULY_24, model_version="4") is None
    assert find_unfinished_run(store, as_of=JULY, model_version="3") is None
    finish_run(store, run_id, students=0, drift={})
    assert find_unfinished_run(store, as_of=JULY_24, model_version="3") is None


def test_finish_run_records_count_and_drift(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    finish_run(store, run_id, students=42, drift={"score_psi": 0.3})
    with store.session() as session:
        run = session.get(ScoringRun, run_id)
        assert (run.status, run.students, run.drift) == ("finished", 42, '{"score_psi": 0.3}')
        assert run.finished_at is not None


def test_finishing_an_unknown_run_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no scoring run nope"):
        finish_run(store, "nope", students=1, drift={})


# --- scores --------------------------------------------------------------------------


def test_previous_scores_take_the_latest_earlier_finished_run(store: Store) -> None:
    finished_run(store, JUNE, scores_frame([1, 2], ["normal", "problem"], JUNE))
    finished_run(store, JULY, scores_frame([1], ["at_risk"], JULY))
    unfinished = new_run(store, JULY_10)  # never finished: not a previous run
    write_bucket_scores(store, unfinished, 0, scores_frame([1, 2], ["normal", "normal"], JULY_10))

    previous = previous_scores(store, before_as_of=JULY_24).set_index("student_key")
    assert previous.loc[1, "risk_class"] == "at_risk" and previous.loc[1, "as_of"] == JULY
    assert previous.loc[2, "risk_class"] == "problem" and previous.loc[2, "as_of"] == JUNE
    assert previous.loc[1, "id_hint"] == "•••••••••0001"

    # Strictly earlier: the July run does not count before 1 July.
    before_july = previous_scores(store, before_as_of=JULY).set_index("student_key")
    assert before_july.loc[1, "risk_class"] == "normal"


def test_previous_scores_filtered_by_school(store: Store) -> None:
    finished_run(store, JUNE, pd.concat([
        scores_frame([1], ["normal"], JUNE, SCHOOL_A), scores_frame([2], ["problem"], JUNE, SCHOOL_B),
    ]))  # fmt: skip
    assert previous_scores(store, before_as_of=JULY, school_ids=[SCHOOL_B])["student_key"].tolist() == [2]
    assert previous_scores(store, before_as_of=JUNE).empty


def test_latest_scores_come_back_in_chunks_with_lists(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    write_bucket_scores(store, run_id, 0, scores_frame([1, 2, 3], ["normal"] * 3, JULY_24))
    write_bucket_scores(store, run_id, 1, scores_frame([4, 5], ["at_risk"] * 2, JULY_24))
    chunks = list(latest_scores(store, run_id, chunk_rows=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    everything = pd.concat(chunks)
    assert set(SCORE_COLUMNS) <= set(everything.columns)
    assert everything["bucket"].tolist() == [0, 0, 0, 1, 1]
    assert everything["reasons_th"].iloc[0] == ["มาเรียนต่ำกว่า 80%"]
    assert everything["classroom"].iloc[0] == "6/1" and pd.isna(everything["classroom"].iloc[1])


def test_latest_scores_read_only_the_columns_asked_for(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    write_bucket_scores(store, run_id, 0, scores_frame([1, 2], ["normal", "problem"], JULY_24))
    (frame,) = latest_scores(store, run_id, columns=["school_id", "risk_class"])
    assert frame.columns.tolist() == ["school_id", "risk_class"]
    assert frame["risk_class"].tolist() == ["normal", "problem"]
    with pytest.raises(StoreError, match="no column student_id"):
        next(latest_scores(store, run_id, columns=["student_id"]))


def test_student_history_is_newest_first(store: Store) -> None:
    finished_run(store, JUNE, scores_frame([7, 8], ["normal", "normal"], JUNE))
    finished_run(store, JULY, scores_frame([7], ["problem"], JULY))
    history = student_history(store, 7)
    assert history["as_of"].tolist() == [JULY, JUNE]
    assert history["risk_class"].tolist() == ["problem", "normal"]
    assert history["run_status"].tolist() == ["finished", "finished"]
    assert student_history(store, 999).empty


def test_scores_missing_a_column_are_refused(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    with pytest.raises(StoreError, match="lack the columns probability"):
        write_bucket_scores(store, run_id, 0, scores_frame([1], ["normal"], JULY_24).drop(columns="probability"))
    assert done_buckets(store, run_id) == set()


def test_a_refused_bucket_leaves_nothing_behind(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    write_bucket_scores(store, run_id, 0, scores_frame([1, 2], ["normal", "normal"], JULY_24))
    twice = scores_frame([3, 3], ["normal", "problem"], JULY_24)  # one student twice in a run
    with pytest.raises(StoreError, match="Cannot store bucket 0 of run"):
        write_bucket_scores(store, run_id, 0, twice)
    # The old bucket 0 survives whole: delete, insert and bucket row are one transaction.
    assert pd.concat(latest_scores(store, run_id))["student_key"].tolist() == [1, 2]
    assert done_buckets(store, run_id) == {0}


def test_scores_of_an_unknown_run_are_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="Cannot store bucket 0 of run nope"):
        write_bucket_scores(store, "nope", 0, scores_frame([1], ["normal"], JULY_24))


def test_unknown_risk_class_is_refused(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    with pytest.raises(StoreError, match="'high' is not one of"):
        write_bucket_scores(store, run_id, 0, scores_frame([1], ["normal"], JULY_24).assign(risk_class="high"))


def test_a_raw_id_never_reaches_the_database(store: Store, backend: tuple[str, str | None]) -> None:
    raw = thai_id("110370012345")
    frame = scores_frame([5], ["problem"], JULY_24).assign(id_hint=masked_id(raw))
    run_id = new_run(store, JULY_24)
    write_bucket_scores(store, run_id, 0, frame)
    with pytest.raises(StoreError, match="more than four digits"):
        write_bucket_scores(store, run_id, 1, scores_frame([6], ["normal"], JULY_24).assign(id_hint=raw))
    write_alerts(store, run_id, alerts_frame([SCHOOL_A]).assign(id_hint=masked_id(raw)))

    seen = []
    inspector = inspect(store.engine)
    with store.engine.connect() as conn:
        for table in inspector.get_table_names(schema=backend[1]):
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                seen.extend(str(value) for value in row)
    assert any(value == "•••••••••" + raw[-4:] for value in seen)  # the hint is there ...
    assert not any(raw in value or raw[:-1] in value for value in seen)  # ... the ID is not


# --- alerts --------------------------------------------------------------------------


def test_acknowledging_an_alert_closes_it(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    assert write_alerts(store, run_id, alerts_frame([SCHOOL_A, SCHOOL_A, SCHOOL_B]))["new"] == 3
    alerts = open_alerts(store, SCHOOL_A)
    assert len(alerts) == 2
    assert alerts["actions_th"].iloc[0] == ["เยี่ยมบ้าน"]

    ack_id = acknowledge(store, int(alerts["id"].iloc[0]), "Visited the family", JULY_24, recorded_by="key-7")
    remaining = open_alerts(store, SCHOOL_A)
    assert remaining["id"].tolist() == [alerts["id"].iloc[1]]
    assert len(open_alerts(store, SCHOOL_B)) == 1
    with store.session() as session:
        record = session.get(Acknowledgement, ack_id)
        assert (record.action_taken, record.acted_on, record.recorded_by) == ("Visited the family", JULY_24, "key-7")


def test_acknowledging_an_unknown_alert_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no alert 12345"):
        acknowledge(store, 12345, "Called the parents", JULY_24)


def test_alerts_of_a_run_written_again_stay_one_per_student_and_keep_an_acknowledgement(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    write_alerts(store, run_id, alerts_frame([SCHOOL_A, SCHOOL_A]))
    write_alerts(store, run_id, alerts_frame([SCHOOL_A]))  # student 2 no longer qualifies: withdrawn
    alerts = open_alerts(store, SCHOOL_A)
    assert alerts["student_key"].tolist() == [1]
    acknowledge(store, int(alerts["id"].iloc[0]), "Met the student", JULY_24)
    assert write_alerts(store, run_id, alerts_frame([SCHOOL_A]))["kept_acknowledged"] == 1
    assert open_alerts(store, SCHOOL_A).empty


# --- summaries -----------------------------------------------------------------------


def test_summaries_round_trip(store: Store) -> None:
    run_id = new_run(store, JULY_24)
    frame = pd.DataFrame({
        "level": ["school", "school", "province"],
        "area_code": [SCHOOL_B, SCHOOL_A, "40"],
        "students": [10, 20, 30],
        "normal": [8, 15, 23],
        "at_risk": [1, 4, 5],
        "problem": [1, 1, 2],
        "flagged_rate": [0.2, 0.25, 7 / 30],
        "at_risk_by_rule": [1, 0, 1],
        "problem_by_rule": [0, 1, 1],
    })  # fmt: skip
    write_summaries(store, run_id, frame)
    write_summaries(store, run_id, frame)  # written again: replaced, not doubled
    schools = summaries(store, run_id, "school")
    assert schools["area_code"].tolist() == [SCHOOL_B, SCHOOL_A]  # sorted by area code
    assert schools["students"].tolist() == [10, 20]
    assert (schools["at_risk_by_rule"].tolist(), schools["problem_by_rule"].tolist()) == ([1, 0], [0, 1])
    assert summaries(store, run_id, "province")["flagged_rate"].tolist() == [pytest.approx(7 / 30)]
    assert summaries(store, run_id, "nation").empty


def test_summaries_stored_without_rule_counts_read_as_none_raised_by_a_rule(store: Store) -> None:
    # A run stored before rule marks (its rows NULL): the model's class stood for every student.
    run_id = new_run(store, JULY_24)
    write_summaries(store, run_id, pd.DataFrame({
        "level": ["nation"], "area_code": ["TH"], "students": [10], "normal": [7], "at_risk": [2], "problem": [1],
        "flagged_rate": [0.3]}))
    with store.engine.connect() as conn:
        stored = conn.execute(select(AreaSummary.at_risk_by_rule, AreaSummary.problem_by_rule)
                              .where(AreaSummary.run_id == run_id)).all()
    assert [tuple(r) for r in stored] == [(None, None)]
    nation = summaries(store, run_id, "nation")
    assert (nation["at_risk_by_rule"].tolist(), nation["problem_by_rule"].tolist()) == ([0], [0])


def test_unknown_summary_level_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="'village' is not one of"):
        summaries(store, "any", "village")


# --- opening -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("sqlite:////no/such/folder/risk.db", "sqlite:////no/such/folder/risk.db"),
        ("nosuchdb://user:secret@host/db", "nosuchdb://user:***@host/db"),
        ("not a url at all", "not a url at all"),
    ],
)
def test_a_bad_url_is_a_one_line_store_error(url: str, named: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert named in message
    assert "secret" not in message and "\n" not in message


@pytest.mark.postgres
def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    # Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    with pytest.raises(StoreError) as caught:
        open_store("postgresql+psycopg://postgres:secret@127.0.0.1:1/test")
    message = str(caught.value)
    assert "postgres:***@127.0.0.1:1/test" in message
    assert "secret" not in message and "\n" not in message


def test_default_url_is_a_sqlite_file_in_the_data_folder(tmp_path: Path) -> None:
    assert default_store_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/risk.db"


def test_sqlite_store_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = open_store(default_store_url(tmp_path))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
    store.close()
