"""Logs and metrics of a live `mailsec serve --smtp` (worker processes, Dovecot as next hop) after real SMTP sessions
and API calls: Postfix-like summary lines in JSON, an access log without secrets or search terms, and Prometheus
metrics that include what the worker processes counted."""

from __future__ import annotations

import json
import shutil
import smtplib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gw_support import Dovecot, Gateway, start_gateway
from prometheus_client.parser import text_string_to_metric_families
from test_gateway_flow import queued_ids, wait_status

from support import free_port, make_eml

METRICS_TOKEN = "scrape-token-3f9a"
SEARCH_TERM = "zebracrossing"


@pytest.fixture(scope="module")
def observed(dovecot: Dovecot) -> Iterator[tuple[Gateway, int]]:
    root = Path(tempfile.mkdtemp(prefix="mailsec-obs-"))
    port = free_port()
    gw = start_gateway(
        root / "data",
        dovecot,
        None,
        MAILSEC_LOG_FORMAT="json",
        MAILSEC_METRICS_LISTEN=f"127.0.0.1:{port}",
        MAILSEC_METRICS_TOKEN=METRICS_TOKEN,
    )
    yield gw, port
    gw.server.stop()
    gw.services.close()
    shutil.rmtree(root, ignore_errors=True)


def log_events(gw: Gateway) -> list[dict[str, Any]]:
    out = []
    for line in (gw.server.data_dir / "serve.log").read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def wait_event(gw: Gateway, match: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in log_events(gw) if match(e)]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError("no such log line; last lines: " + json.dumps(log_events(gw)[-5:], indent=1))


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reply = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert reply.status_code == 200, reply.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_sessions_deliveries_and_api_calls_are_logged_and_counted(
    observed: tuple[Gateway, int], dovecot: Dovecot
) -> None:
    gw, port = observed
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
        client.ehlo("client.example")
        client.mail("alice@sender.example")
        assert client.rcpt("nobody@elsewhere.example")[0] == 550
        assert client.rcpt("bob@corp.example")[0] == 250
        code, reply = client.data(make_eml(subject="observed", body="Quarterly numbers attached as discussed.\n"))
        assert code == 250
        client.mail("alice@sender.example")
        client.rcpt("ann@bcc.example")
        code, reply2 = client.data(make_eml(subject="copy"))
        assert code == 250
    pid, bcc_pid = queued_ids(reply)[0], queued_ids(reply2)[0]
    wait_status(gw, gw.account, pid, {"delivered"})

    session = wait_event(gw, lambda e: e.get("event") == "smtp session" and pid in e.get("queued", []))
    assert session["queued"] == [pid, bcc_pid] and session["rcpt_refused"] == 1
    assert session["client"] == "127.0.0.1" and session["helo"] == "client.example" and session["duration"] >= 0
    queued = wait_event(gw, lambda e: e.get("event") == "queued" and e.get("queue_id") == pid)
    assert queued["from"] == "alice@sender.example" and queued["to"] == ["bob@corp.example"]
    assert queued["size"] > 100 and queued["nrcpt"] == 1
    sent = wait_event(gw, lambda e: e.get("event") == "delivery" and e.get("queue_id") == pid)
    assert sent["to"] == "bob@corp.example" and sent["from"] == "alice@sender.example"
    assert sent["relay"] == dovecot.lmtp_url
    assert sent["status"] == "sent" and sent["reply"].startswith("250") and sent["delay"] >= sent["attempt_seconds"]
    assert sent["level"] == "info" and sent["timestamp"].endswith("Z")

    api = f"{gw.server.base_url}/accounts/{gw.account}/email-security/investigate"
    ok = httpx.get(api, params={"query": SEARCH_TERM}, headers={"Authorization": f"Bearer {gw.token}"})
    assert ok.status_code == 200
    assert httpx.get(api, headers={"Authorization": "Bearer wrong-token-value"}).status_code in (401, 403)
    on_api_port = httpx.get(gw.server.base_url.replace("/client/v4", "/metrics"))
    assert on_api_port.status_code == 404, "not on the API port"  # the console's "no such page"
    assert "mailsec_" not in on_api_port.text and on_api_port.headers["content-type"].startswith("text/html")
    template = "/client/v4/accounts/{account_id}/email-security/investigate"
    line = wait_event(gw, lambda e: e.get("event") == "api request" and e.get("status") == 200)
    assert line["route"] == template and line["method"] == "GET" and line["account"] == gw.account

    text = (gw.server.data_dir / "serve.log").read_text()
    for secret in (SEARCH_TERM, gw.token, "wrong-token-value", METRICS_TOKEN, "Quarterly numbers"):
        assert secret not in text, f"{secret!r} is in the log"

    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401, "the scrape needs the token"
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer no"}).status_code == 401
    samples = scrape(port)
    assert value(samples, "mailsec_smtp_messages_received_total") >= 2
    assert value(samples, "mailsec_smtp_messages_accepted_total") >= 2
    assert value(samples, "mailsec_smtp_recipients_refused_total") >= 1
    assert value(samples, "mailsec_smtp_sessions_total") >= 1
    # counted in the worker processes, summed by the parent
    assert sum(v for (n, _), v in samples.items() if n == "mailsec_messages_scanned_total") >= 2
    assert value(samples, "mailsec_scan_seconds_count") >= 2
    assert value(samples, "mailsec_delivery_recipients_total", status="delivered") >= 1
    assert value(samples, "mailsec_delivery_seconds_count") >= 1
    assert value(samples, "mailsec_api_requests_total", route=template, status="200") >= 1
    requests = {labels: v for (n, labels), v in samples.items() if n == "mailsec_api_requests_total"}
    refused = value(samples, "mailsec_api_requests_total", route=template, status="401") + value(
        samples, "mailsec_api_requests_total", route=template, status="403"
    )
    assert refused >= 1, requests
    assert value(samples, "mailsec_api_request_seconds_count", route=template) >= 2
    assert ("mailsec_queue_oldest_age_seconds", ()) in samples
    assert not any(SEARCH_TERM in n or SEARCH_TERM in str(labels) for n, labels in samples)


def test_queue_depth_shows_deferred_mail(observed: tuple[Gateway, int], dovecot: Dovecot) -> None:
    gw, port = observed
    hop = f"lmtp://127.0.0.1:{free_port()}"
    gw.services.domains.add(gw.account, "nowhere.example", mode="DIRECT", next_hop=hop, verified=True)
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
        client.sendmail("alice@sender.example", ["x@nowhere.example"], make_eml(subject="stuck"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        samples = scrape(port)
        if value(samples, "mailsec_queue_depth", state="deferred") >= 1:
            break
        time.sleep(0.2)
    assert value(samples, "mailsec_queue_depth", state="deferred") >= 1
    assert value(samples, "mailsec_queue_oldest_age_seconds") > 0
    assert value(samples, "mailsec_delivery_recipients_total", status="deferred") >= 1
    line = wait_event(gw, lambda e: e.get("event") == "delivery" and e.get("to") == "x@nowhere.example")
    assert line["status"] == "deferred" and line["reply"].startswith("421")
