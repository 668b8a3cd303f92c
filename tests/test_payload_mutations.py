"""One bad record costs that record, never the student: `POST /v1/score` over every kind of broken value.

A real student of the session's generated world is sent to the real app (FastAPI's
TestClient, the session's champion model) with one field of one record changed —
any table, any column, any JSON type (text, a number, a flag, null, a list, an
object, a text far over the limit), a key taken away or added, or the whole record
replaced by a scalar. Whatever the change, the answer is a 200 that leaves out at
most that record beyond what the unchanged payload left out, or a 422 exactly when
the payload without that record has nothing scorable left; never a 5xx. A key
added outside the contract is ignored (as batch ignores an extra column): the
answer is the unchanged payload's, that record kept, the same probability.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest
from conftest import WORLD_KEY
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk.data.contract import TABLES
from risk.data.export_payloads import read_student_tables, student_payloads
from risk.online.payload_records import MAX_TEXT_CHARS
from risk.serve.app import create_app
from risk.serve.settings import ServeSettings
from risk.store import create_key

AS_OF = dt.date(2026, 7, 24)  # ten weeks into the world's last term (2569-1)
STUDENT_TABLES = [name for name, table in TABLES.items() if table.has_student]
FULL = {name: {c.name: c for c in TABLES[name].columns} for name in STUDENT_TABLES}

# Values no column can hold, whatever its kind: the record is left out as bad_type.
NEVER_FITS = st.one_of(st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                            max_size=2),
                       st.text(min_size=MAX_TEXT_CHARS + 1, max_size=MAX_TEXT_CHARS + 50),
                       st.just("x" * 500_000))
ANY_SCALAR = st.one_of(st.text(max_size=30), st.integers(-(2**63) + 1, 2**63 - 1),
                       st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none())


@pytest.fixture(scope="module")
def api(world, champion, tmp_path_factory):
    """The app on the world and the session's champion, an upstream key, and a payload with every table."""
    home = champion[0]
    folder = tmp_path_factory.mktemp("mutations")
    settings = ServeSettings(data=world / "validated", tracking_dir=home, store_url=f"sqlite:///{folder / 'risk.db'}",
                             model_cache=folder / "cache", access_log=False, max_body_kib=1024,
                             rate_limit={"per_second": 100_000, "burst": 100_000})
    app = create_app(settings, id_key=WORLD_KEY)
    with TestClient(app) as client:
        token = create_key(app.state.services.store, "upstream", label="mutations").token
        client.headers["X-API-Key"] = token
        yield client, _payload(client, world / "source")


def _payload(client: TestClient, source: Path) -> dict:
    """A student enrolled at AS_OF with records in every table, scored as sent (their export's own errors kept)."""
    tables = read_student_tables(source)
    current = tables["enrollments"].loc[tables["enrollments"]["term"] == "2569-1", "student_id"]
    for payload in student_payloads(tables, current.drop_duplicates().sample(60, random_state=11)):
        if len(payload["enrollments"]) > 1 and all(payload[t] for t in STUDENT_TABLES):
            body = {"as_of": AS_OF.isoformat(), **payload}
            if client.post("/v1/score", json=body).status_code == 200:
                return body
    raise AssertionError("no student of the world has records in every table and scores at AS_OF")


@pytest.fixture(scope="module")
def unchanged(api) -> dict:
    """The answer to the unchanged payload, asked once (every example compares with it)."""
    client, payload = api
    response = client.post("/v1/score", json=payload)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def _left_out(answer: dict) -> set[tuple[str, int, str]]:
    return {(r["table"], r["record"], r["rule"]) for r in answer["left_out"]}


@st.composite
def mutations(draw, payload: dict):
    """(table, record, how, changed payload, the rule that must leave the record out, or None when it may be valid)."""
    table = draw(st.sampled_from(STUDENT_TABLES))
    index = draw(st.integers(0, len(payload[table]) - 1))
    changed = copy.deepcopy(payload)
    record = changed[table][index]
    how = draw(st.sampled_from(["value", "never fits", "null", "missing key", "extra key", "not an object"]))
    column = draw(st.sampled_from(sorted(FULL[table])))
    expected: str | None = None
    if how == "value":
        record[column] = draw(ANY_SCALAR)
        expected = _wrong_type(FULL[table][column].kind, record[column])
    elif how == "never fits":
        record[column] = draw(NEVER_FITS)
        expected = "bad_type"
    elif how == "null":
        record[column] = None
        expected = "missing_required" if FULL[table][column].required else None
    elif how == "missing key":
        record.pop(column, None)
        expected = "missing_required" if FULL[table][column].required else None
    elif how == "extra key":  # ignored, as batch ignores an extra column: the record is judged as without it
        record[draw(st.text(min_size=1, max_size=20).filter(lambda k: k not in FULL[table]))] = draw(
            st.one_of(ANY_SCALAR, NEVER_FITS))
        expected = None
    else:
        changed[table][index] = draw(st.one_of(ANY_SCALAR, st.lists(st.integers(), max_size=2)))
        expected = "bad_type"
    return table, index, f"{how} {column}", changed, expected


def _follows(changed: str, item: tuple[str, int, str]) -> bool:
    """Whether a record may be left out because another was changed, as batch would.

    A changed record may take a key first that a later one held (that one is now the
    copy), and a changed enrollment decides which days of attendance are the student's.
    """
    table, _, rule = item
    return (table == changed and rule in ("duplicate", "duplicate_key")) or (
        changed == "enrollments" and table == "attendance_daily"
        and rule in ("no_enrollment_that_term", "not_a_school_day", "duplicate", "duplicate_key"))


def _wrong_type(kind: str, value: object) -> str | None:
    """The rule a JSON value of the wrong type for ``kind`` gets, or None when its type may fit."""
    if isinstance(value, str) or value is None:
        return None
    if isinstance(value, bool):
        return None if kind == "bool" else "bad_type"
    return None if kind in ("float", "int") else "bad_type"


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_one_changed_record_is_left_out_or_the_student_had_nothing_else(api, unchanged, data):
    client, payload = api
    base = _left_out(unchanged)
    table, index, how, changed, expected = data.draw(mutations(payload))
    response = client.post("/v1/score", json=changed)
    if how.startswith("extra key"):  # a key outside the contract is ignored: the answer is the unchanged payload's
        assert response.status_code == 200, (how, response.status_code, response.text[:500])
        assert response.json()["left_out"] == unchanged["left_out"], how
        assert response.json()["probability"] == unchanged["probability"], how
        return
    assert response.status_code in (200, 422), (how, response.status_code, response.text[:500])
    if response.status_code == 422:
        without = copy.deepcopy(payload)
        del without[table][index]
        assert table == "enrollments" and client.post("/v1/score", json=without).status_code == 422, how
        return
    found = _left_out(response.json())
    mine = {(t, r, rule) for t, r, rule in found if (t, r) == (table, index)}
    assert not {item for item in found - mine - base if not _follows(table, item)}, how  # nothing else is lost
    if expected is not None:
        assert len(mine) == 1, (how, mine)
        if not {(t, r) for t, r, _ in base} & {(table, index)}:  # a record broken already may break first elsewhere
            assert mine == {(table, index, expected)}, (how, mine)
    for item in response.json()["left_out"]:
        assert len(item["detail"]) <= 301 and "x" * 41 not in item["detail"]


def test_an_extra_key_on_an_attendance_record_is_ignored_and_the_score_is_the_same(api):
    """A key outside the contract is ignored, as batch ignores an extra column: the record stays, nothing changes."""
    client, payload = api
    original = client.post("/v1/score", json=payload).json()
    changed = copy.deepcopy(payload)
    changed["attendance_daily"][0]["note"] = "x"
    response = client.post("/v1/score", json=changed)
    assert response.status_code == 200, response.text[:500]
    assert response.json()["left_out"] == original["left_out"]  # that record is not left out (nor any other)
    assert response.json()["probability"] == original["probability"]


def test_a_huge_text_in_a_record_is_left_out_and_not_echoed(api):
    client, payload = api
    changed = copy.deepcopy(payload)
    changed["enrollments"][0]["classroom"] = "ห้อง" * 60_000  # 240k characters, ~700 KB of UTF-8
    response = client.post("/v1/score", json=changed)
    assert response.status_code in (200, 422)
    assert "ห้อง" * 11 not in response.text and len(response.text) < 20_000
    if response.status_code == 200:
        assert ("enrollments", 0, "bad_type") in _left_out(response.json())


def test_a_raw_id_is_never_echoed_in_a_detail(api):
    client, payload = api
    changed = copy.deepcopy(payload)
    changed["health"][0]["weight_kg"] = "1103700123453"  # an ID typed into a number column
    changed["grades"][0]["grade"] = "1103700123453"
    response = client.post("/v1/score", json=changed)
    assert response.status_code == 200
    assert "1103700123453" not in response.text
    assert {("health", 0), ("grades", 0)} <= {(t, r) for t, r, _ in _left_out(response.json())}


@pytest.mark.parametrize("as_of", [0, 1_785_000_000, "2026-07-24T00:00:00", "24/07/2026", None])
def test_as_of_is_only_a_date_written_yyyy_mm_dd(api, as_of):
    client, payload = api
    response = client.post("/v1/score", json={**payload, "as_of": as_of})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "as_of"


def test_the_openapi_schema_says_as_of_is_a_date_string(api):
    client, _ = api
    schema = client.get("/openapi.json").json()["components"]["schemas"]["ScoreRequest"]["properties"]["as_of"]
    assert (schema["type"], schema["format"]) == ("string", "date")
