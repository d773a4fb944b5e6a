"""Log formats (key=value text, JSON lines) for structlog events and standard-library records alike, and the metrics
listener's token check."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog

from mailsec import observability
from mailsec.config import load_settings
from support import free_port


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    yield
    structlog.configure(**config)
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_json_lines_for_our_events_and_library_records(restore_logging: None) -> None:
    out = io.StringIO()
    observability.configure_logging("info", "json", stream=out)
    observability.logger("mailsec.delivery").info("delivery", queue_id="Q1", to="a@b.example", status="sent")
    logging.getLogger("some.library").warning("plain %s record", "stdlib")
    logging.getLogger("some.library").debug("below the level")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    assert lines[0]["event"] == "delivery" and lines[0]["queue_id"] == "Q1" and lines[0]["level"] == "info"
    assert lines[0]["logger"] == "mailsec.delivery" and lines[0]["timestamp"].endswith("Z")
    assert lines[1]["event"] == "plain stdlib record" and lines[1]["level"] == "warning"


def test_text_lines_are_key_value(restore_logging: None) -> None:
    out = io.StringIO()
    observability.configure_logging("info", "text", stream=out)
    observability.logger("mailsec.smtp").info("queued", queue_id="Q2", size=120)
    line = out.getvalue().strip()
    assert line.startswith("timestamp=") and "event='queued'" in line and "queue_id='Q2'" in line
    assert "size=120" in line and "logger='mailsec.smtp'" in line


def test_metrics_listener_needs_its_token() -> None:
    port = free_port()
    settings = load_settings(env={"MAILSEC_METRICS_LISTEN": f"127.0.0.1:{port}", "MAILSEC_METRICS_TOKEN": "t0k"})
    server = observability.start_metrics(settings, lambda: ({"queued": 3, "deferred": 1}, 42.0))
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/metrics").status_code == 401
        assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer t0k-"}).status_code == 401
        assert httpx.get(f"{base}/other", headers={"Authorization": "Bearer t0k"}).status_code == 404
        reply = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer t0k"})
        assert reply.status_code == 200
        assert 'mailsec_queue_depth{state="queued"} 3.0' in reply.text
        assert "mailsec_queue_oldest_age_seconds 42.0" in reply.text
        assert "mailsec_smtp_messages_accepted_total" in reply.text, "every family is there from the start"
    finally:
        server.stop()
