"""The teacher page in headless Chromium (Debian's ``chromium`` and ``fonts-thai-tlwg``, installed by the
fixture of test_report_browser when missing): log in with a teacher key, see the school's alerts in Thai,
acknowledge one through the page's own form, and keep a screenshot under tests/artifacts/.

Chromium is driven over the DevTools protocol with a few lines of WebSocket (no browser download, no
client library): the page is loaded, its login form and one alert's form are filled and submitted by the page.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
from urllib.parse import urlparse

import httpx
import pytest
from test_report_browser import ARTIFACTS, chromium  # noqa: F401  (the session fixture that installs it)
from test_serve import free_port, people, registry, scored, service  # noqa: F401  (module fixtures)

from risk.store import latest_finished_run, open_alerts
from risk.store.context import school_context
from risk.store.models import Acknowledgement

pytestmark = pytest.mark.browser


class DevTools:
    """A minimal DevTools client: one WebSocket to one page, commands answered in order."""

    def __init__(self, ws_url: str) -> None:
        url = urlparse(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {url.path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0

    def send(self, method: str, **params: object) -> dict:
        self.next_id += 1
        data = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        header = bytearray([0x81])
        n = len(data)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            header += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        self.sock.sendall(bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
        while True:
            message = self._receive()
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message.get("result", {})

    def evaluate(self, expression: str) -> object:
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def _receive(self) -> dict:
        payload = b""
        while True:
            b0, b1 = self._exactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._exactly(2), "big")
            elif n == 127:
                n = int.from_bytes(self._exactly(8), "big")
            payload += self._exactly(n)
            if b0 & 0x80:
                return json.loads(payload) if (b0 & 0x0F) in (0x1, 0x0) else {}

    def _exactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            out += chunk
        return out


def wait_for(tools: DevTools, expression: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not tools.evaluate(f"document.readyState === 'complete' && !!({expression})"):
        assert time.monotonic() < deadline, f"the page never showed: {expression}"
        time.sleep(0.2)


@pytest.fixture
def browser(chromium, tmp_path):  # noqa: F811
    port = free_port()
    process = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                f"--remote-debugging-port={port}", "--remote-allow-origins=*",
                                f"--user-data-dir={tmp_path / 'profile'}", "--window-size=412,1400", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                page = next(p for p in pages if p.get("type") == "page")
                break
            except (httpx.HTTPError, StopIteration):
                assert time.monotonic() < deadline, "chromium's DevTools did not answer"
                time.sleep(0.3)
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.send("Page.enable")
        yield tools
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_a_teacher_logs_in_sees_alerts_in_thai_and_acknowledges_one(browser, service, people):  # noqa: F811
    tools = browser
    tools.send("Page.navigate", url=f"{service['url']}/teacher")
    wait_for(tools, "document.querySelector('#login')")
    token = people["tokens"]["teacher_a"]
    tools.evaluate(f"document.querySelector('#key').value = {json.dumps(token)};"
                   "document.querySelector('#login').requestSubmit(); true")
    wait_for(tools, "document.querySelector('section.alert')")
    text = tools.evaluate("document.body.innerText")
    assert "นักเรียนที่ต้องติดตาม" in text and "เหตุผล" in text and "สิ่งที่ควรทำ" in text
    assert people["school_a"] in text and "•••" in text
    assert people["school_b"] not in text  # only the teacher's own school
    the_page_says_what_a_teacher_can_act_on(tools, people, text)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = tools.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    (ARTIFACTS / "teacher_page_th.png").write_bytes(base64.b64decode(shot["data"]))

    alert_id = int(tools.evaluate("document.querySelector('section.alert').id.split('-')[1]"))
    tools.evaluate(f"document.querySelector('#action-{alert_id}').value = 'โทรคุยกับผู้ปกครอง';"
                   f"document.querySelector('#date-{alert_id}').value = '2026-07-28';"
                   f"document.querySelector('#alert-{alert_id} button').click(); true")
    wait_for(tools, "document.querySelector('#done')")
    assert not tools.evaluate(f"!!document.querySelector('#alert-{alert_id}')")
    with people["store"].session() as session:
        ack = session.query(Acknowledgement).filter_by(alert_id=alert_id).one()
        assert (ack.action_taken, ack.acted_on.isoformat()) == ("โทรคุยกับผู้ปกครอง", "2026-07-28")
        assert ack.recorded_by in token

    tools.evaluate("document.querySelector('#lang-toggle').click(); true")
    wait_for(tools, "location.search.includes('lang=en') && document.querySelector('section.alert, p.card')")
    assert "Students to follow up" in tools.evaluate("document.body.innerText")
    shot = tools.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    (ARTIFACTS / "teacher_page_en.png").write_bytes(base64.b64decode(shot["data"]))


PROTECTED_WORDS = ("หญิง", "ชาย", "เพศ", "สัญชาติ", "พิการ", "female", "male", "girl", "boy", "Sex",
                   "nationality", "disabilit")


def the_page_says_what_a_teacher_can_act_on(tools: DevTools, known: dict, text: str) -> None:
    """Issue 28 on the scored world: context once at the top, rule marks as stored, a standing for each child."""
    store, school = known["store"], known["school_a"]
    context = school_context(store, latest_finished_run(store), school)
    assert tools.evaluate("document.querySelectorAll('#school-context').length") == (1 if context else 0)
    if context:
        assert tools.evaluate("document.querySelector('main > .card') === document.querySelector('#school-context')")
        assert text.count(context[0].th) == 1
    # Each card carries its alert's stored rule mark; the marked ones come after the model's, marked.
    stored = open_alerts(store, school)
    marks = dict(zip(stored["id"].astype(int), stored["raised_by"].where(stored["raised_by"].notna(), ""),
                     strict=True))
    shown = tools.evaluate("[...document.querySelectorAll('section.alert')].map(s => [+s.id.split('-')[1], "
                           "s.dataset.raisedBy, s.classList.contains('ruled'), !!s.querySelector('.rule-mark')])")
    assert {alert_id: mark for alert_id, mark, _, _ in shown} == marks
    assert all(ruled == marked == bool(mark) for _, mark, ruled, marked in shown)
    flags = [bool(mark) for _, mark, _, _ in shown]
    assert flags == sorted(flags), "a rule-flagged child shown among the model's"
    # Where each child stands, before the probability; no child's sex, nationality or disability.
    standings = tools.evaluate("document.querySelectorAll('section.alert p.standing').length")
    assert standings == len(shown) and ("ที่เสี่ยงที่สุดของโรงเรียน" in text or "ครึ่งที่เสี่ยงน้อยกว่า" in text)
    assert not [w for w in PROTECTED_WORDS if w in text]
