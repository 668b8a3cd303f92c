# ruff: noqa: F811  (tests take the imported fixtures by name)
"""The service's edges, over real HTTP: bodies past their limit are 413 before they are read, errors echo nothing.

A real ``risk serve`` on loopback: the fixtures of ``test_serve``, imported, so this
module has a service and store of its own. Limits from configs/serve.yaml: 256 KiB a
request, and for the batch route ``batch_max_students`` (20 here) x 64 KiB.
"""

from __future__ import annotations

import json
import re
import socket
from urllib.parse import urlsplit

import pandas as pd
import psutil
import pytest
from test_serve import call, payload_of, people, registry, scored, service  # noqa: F401

from risk.serve.settings import load_serve_settings

SETTINGS = load_serve_settings()
LIMIT = SETTINGS.max_body_bytes
BATCH_LIMIT = 20 * SETTINGS.batch_kib_per_student * 1024  # the test service takes 20 students a batch


def _connect(service: dict) -> socket.socket:
    address = urlsplit(service["url"])
    sock = socket.create_connection((address.hostname, address.port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(token: str, framing: str) -> bytes:
    return (f"POST /v1/score HTTP/1.1\r\nHost: test\r\nX-API-Key: {token}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()


def _answer(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the response on ``sock`` (read to the end: the server closes it)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)", head, re.I)
        if length and len(body) >= int(length.group(1)):
            break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _send_quietly(sock: socket.socket, data: bytes) -> bool:
    """Send ``data``; False when the server has closed the connection already (it answered)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        return False
    return True


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# ---------------------------------------------------------------- 413
@pytest.mark.parametrize(("path", "limit"), [("/v1/score", LIMIT), ("/v1/score/batch", BATCH_LIMIT)])
def test_a_body_announced_over_the_limit_is_refused_before_a_byte_of_it_is_sent(service, people, path, limit):
    with _connect(service) as sock:
        head = _head(people["tokens"]["upstream"], "Content-Length: 104857600")  # 100 MiB, never sent
        sock.sendall(head.replace(b"/v1/score", path.encode()))
        status, body = _answer(sock)
    assert status == 413
    assert body == {"detail": f"The request body is larger than this route takes ({limit // 1024} KiB)."}


def test_a_chunked_body_is_cut_off_at_the_limit_and_not_echoed(service, people):
    student = people["student_a"]
    piece = json.dumps({student: "x" * 100}).encode() * 600  # ~72 KiB holding the raw ID
    with _connect(service) as sock:
        sock.sendall(_head(people["tokens"]["upstream"], "Transfer-Encoding: chunked"))
        sent = 0
        while sent <= LIMIT and _send_quietly(sock, _chunk(piece)):
            sent += len(piece)
        # No last chunk is ever sent: the answer comes from counting, not from the end of the body.
        status, body = _answer(sock)
    assert status == 413 and student not in json.dumps(body)
    assert body["detail"].endswith(f"({LIMIT // 1024} KiB).")


def test_a_huge_chunked_body_is_not_read_and_does_not_grow_the_server(service, people):
    server = psutil.Process(service["process"].pid)
    before = server.memory_info().rss
    block = _chunk(b" " * (1 << 20))
    with _connect(service) as sock:
        sock.sendall(_head(people["tokens"]["upstream"], "Transfer-Encoding: chunked"))
        sent_mib = 0
        while sent_mib < 100 and _send_quietly(sock, block):  # up to 100 MiB, as the finding sent
            sent_mib += 1
    grown_mib = (server.memory_info().rss - before) / (1 << 20)
    assert sent_mib < 100, "the server read a 100 MiB body to its end"
    assert grown_mib < 30, f"the server grew by {grown_mib:.0f} MiB for a refused body"


def test_a_payload_just_under_the_limit_is_scored(service, people):
    payload = json.dumps(payload_of(people["tables"], people["student_a"])).encode()
    padded = payload[:-1] + b" " * (LIMIT - len(payload)) + b"}"  # JSON white space up to the limit exactly
    assert len(padded) == LIMIT
    response = call(service, "POST", "/v1/score", people["tokens"]["upstream"], content=padded,
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    over = call(service, "POST", "/v1/score", people["tokens"]["upstream"], content=padded + b" ",
                headers={"Content-Type": "application/json"})
    assert over.status_code == 413


def test_the_batch_route_takes_a_full_batch_past_the_single_limit_and_no_more(service, people):
    payload = payload_of(people["tables"], people["student_a"])
    body = json.dumps({"students": [payload] * 20}).encode()
    padded = body[:-1] + b" " * (BATCH_LIMIT - len(body)) + b"}"
    assert LIMIT < len(padded) == BATCH_LIMIT
    response = call(service, "POST", "/v1/score/batch", people["tokens"]["upstream"], content=padded,
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["scored"] == 20
    over = call(service, "POST", "/v1/score/batch", people["tokens"]["upstream"], content=padded + b" ",
                headers={"Content-Type": "application/json"})
    assert over.status_code == 413 and over.json()["detail"].endswith(f"({BATCH_LIMIT // 1024} KiB).")


# ---------------------------------------------------------------- 422 and what it says
def test_a_422_echoes_nothing_the_client_sent(service, people):
    student = people["student_a"]
    dashed = f"{student[0]}-{student[1:5]}-{student[5:10]}-{student[10:12]}-{student[12]}"
    body = {"as_of": f"{dashed} {student}", "enrollments": [{"student_id": student}],
            f"{dashed} and then a very long key a client made up": 1, student: [student]}
    response = call(service, "POST", "/v1/score", people["tokens"]["upstream"], json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert {tuple(e) for e in errors} == {("loc", "msg", "type")}  # no "input", no "ctx"
    assert all(len(part) <= 40 for e in errors for part in e["loc"] if isinstance(part, str))
    text = response.text
    assert student not in text and dashed not in text
    assert not re.search(r"\d(?:-?\d){10,}", text), text


def test_a_blank_action_is_refused_by_the_schema_itself(service, people):
    schema = call(service, "GET", "/openapi.json").json()["components"]["schemas"]["AckRequest"]
    pattern = schema["properties"]["action_taken"]["pattern"]
    for blank in (" ", "\t\n", "\u3000", "\x1c"):
        assert not re.search(pattern, blank)  # the schema says blank is wrong ...
        response = call(service, "POST", "/v1/alerts/1/ack", people["tokens"]["admin"],
                        json={"action_taken": blank})
        assert response.status_code == 422  # ... and the server agrees, before looking for the alert
        assert [e["type"] for e in response.json()["detail"]] == ["string_pattern_mismatch"]
    assert re.search(pattern, " home visit ")


def test_the_limit_holds_the_largest_generated_history_with_a_wide_margin(people):
    """The test world's students with the most records, every record of theirs (2.5 years): 4x under the limit."""
    tables = people["tables"]
    counts = pd.concat([frame["student_id"] for frame in tables.values()]).value_counts()
    largest = max(len(json.dumps(payload_of(tables, s)).encode()) for s in counts.index[:10])
    assert 4 * largest <= LIMIT, f"the largest generated payload is {largest} bytes"


def test_the_schema_states_the_configured_batch_size(service, people):
    schema = call(service, "GET", "/openapi.json").json()["components"]["schemas"]["BatchRequest"]
    assert schema["properties"]["students"]["maxItems"] == 20  # batch_max_students of the test service, not 1,000
    payload = payload_of(people["tables"], people["student_a"])
    assert call(service, "POST", "/v1/score/batch", people["tokens"]["upstream"],
                json={"students": [payload] * 21}).status_code == 422
