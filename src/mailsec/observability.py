"""Logs and metrics. Logs go through structlog, as key=value text or one JSON object a line
(`MAILSEC_LOG_FORMAT=json`); the standard library's loggers (ours, uvicorn's, aiosmtpd's) are formatted the same way.
Metrics are Prometheus counters and histograms; `mailsec serve` runs queue workers in child processes, so it keeps
them in prometheus-client's multiprocess files and serves the sum of every process on `MAILSEC_METRICS_LISTEN`, a
listener of its own (every route of the API port needs a credential; a scraper gets a bearer token here, if any).

What is logged never includes a secret, a message body or a search term: events carry queue ids, addresses, sizes,
statuses, route templates (not paths with their query strings) and timings."""

from __future__ import annotations

import hmac
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog

from mailsec.config import Settings, parse_hostport

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own switch, inherited by spawned workers
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


# -- logs ------------------------------------------------------------------------------------------------------------


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's plain writer, carrying the logger's name for `add_logger_name`."""

    def __init__(self, file: Any, name: str) -> None:
        super().__init__(file)
        self.name = name


def _ordered(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """timestamp, level, logger and event first: the line reads as it is scanned."""
    head: dict[str, Any] = {k: event.pop(k) for k in ("timestamp", "level", "logger", "event") if k in event}
    head.update(event)
    return head


def configure_logging(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Every log line of the process in one format on one stream. Our events take structlog's direct path (a few
    tens of microseconds a line: they are written on the SMTP event loop); the standard library's records (ours,
    uvicorn's, aiosmtpd's) are rendered by the same processors."""
    stream = stream or sys.stderr
    level_no = logging.getLevelName(level.strip().upper())
    if not isinstance(level_no, int):
        level_no = logging.INFO
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt.strip().lower() == "json"
        else structlog.processors.KeyValueRenderer(
            key_order=["timestamp", "level", "logger", "event"], drop_missing=True
        )
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, stamp],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _ordered,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_no)
    logging.getLogger("alembic").setLevel(max(level_no, logging.WARNING))  # "Context impl SQLiteImpl." per process
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            stamp,
            structlog.processors.format_exc_info,
            _ordered,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=lambda *args: _NamedWriteLogger(stream, str(args[0]) if args else "mailsec"),
        cache_logger_on_first_use=True,
    )


def logger(name: str) -> Any:
    return structlog.get_logger(name)


if not structlog.is_configured():  # until configure_logging: our events are plain stdlib records, never on stdout
    structlog.configure(
        processors=[structlog.processors.KeyValueRenderer(key_order=["event"])],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )


# -- metrics ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    smtp_sessions: Any
    smtp_received: Any
    smtp_accepted: Any
    smtp_refused: Any
    smtp_recipients_refused: Any
    scanned: Any
    scan_seconds: Any
    deliveries: Any
    delivery_seconds: Any
    api_requests: Any
    api_seconds: Any
    preview_renders: Any


def enable_multiprocess(directory: Path) -> None:
    """Counts of every process of `serve` (the workers too) go to files in `directory`, emptied first (files of an
    earlier run would add up). Call before the first metric is touched; spawned workers inherit it."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)
    from prometheus_client import values

    if metrics.cache_info().currsize == 0:
        values.ValueClass = values.MultiProcessValue()


@cache
def metrics() -> Metrics:
    """The metrics of this process, made on first use (after `enable_multiprocess`, when `serve` calls it)."""
    from prometheus_client import Counter, Histogram

    return Metrics(
        smtp_sessions=Counter("mailsec_smtp_sessions", "SMTP connections closed"),
        smtp_received=Counter("mailsec_smtp_messages_received", "Messages whose DATA was received"),
        smtp_accepted=Counter("mailsec_smtp_messages_accepted", "Messages answered 250 (queued durably)"),
        smtp_refused=Counter(
            "mailsec_smtp_messages_refused", "Messages refused at the end of DATA, by reply class", ["code"]
        ),
        smtp_recipients_refused=Counter("mailsec_smtp_recipients_refused", "RCPT TO refused (relay denied)"),
        scanned=Counter("mailsec_messages_scanned", "Messages scanned and stored, by disposition", ["disposition"]),
        scan_seconds=Histogram("mailsec_scan_seconds", "Time to parse and scan one message", buckets=LATENCY_BUCKETS),
        deliveries=Counter(
            "mailsec_delivery_recipients",
            "Recipients handed to a next hop, by outcome (delivered, deferred, bounced)",
            ["status"],
        ),
        delivery_seconds=Histogram(
            "mailsec_delivery_seconds", "Time of one transaction with a next hop", buckets=LATENCY_BUCKETS
        ),
        api_requests=Counter("mailsec_api_requests", "API requests by route template and status", ["route", "status"]),
        api_seconds=Histogram(
            "mailsec_api_request_seconds", "API request time by route template", ["route"], buckets=LATENCY_BUCKETS
        ),
        preview_renders=Counter("mailsec_preview_renders", "Message previews by outcome", ["result"]),
    )


class QueueCollector:
    """Queue depth by state and the age of the oldest row not yet done, read from the database at each scrape."""

    def __init__(self, read: Callable[[], tuple[dict[str, int], float | None]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            counts, oldest = self._read()
        except Exception:
            logging.getLogger("mailsec.metrics").exception("queue metrics unavailable")
            return
        depth = GaugeMetricFamily("mailsec_queue_depth", "Queue rows by state", labels=["state"])
        for state, count in sorted(counts.items()):
            depth.add_metric([state], count)
        yield depth
        yield GaugeMetricFamily(
            "mailsec_queue_oldest_age_seconds", "Age of the oldest queue row not done", value=oldest or 0.0
        )


class _Union:
    """Several collectors as one (this process's registry and the queue), for a registry of the scrape's own."""

    def __init__(self, collectors: Iterable[Any]) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterator[Any]:
        for collector in self._collectors:
            yield from collector.collect()


def registry(collectors: Iterable[Any] = ()) -> Any:
    """What a scrape reads: every process's files in multiprocess mode (else this process's metrics), plus
    `collectors` (the queue)."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    metrics()  # the families exist (at zero) from the first scrape
    directory = os.environ.get(MULTIPROC_ENV)
    reg = CollectorRegistry()
    if directory:
        MultiProcessCollector(reg, path=directory)
        reg.register(_Union(collectors))
    else:
        reg.register(_Union([REGISTRY, *collectors]))
    return reg


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _ThreadingServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        threading.Thread(target=self._handle, args=(request, client_address), daemon=True).start()

    def _handle(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


class MetricsServer:
    """`GET /metrics` on its own address; with a token, only for `Authorization: Bearer TOKEN`."""

    def __init__(self, listen: str, token: str, reg: Any) -> None:
        from prometheus_client import make_wsgi_app

        self.host, self.port = parse_hostport(listen, 9125)
        self._token = token.encode()
        self._app = make_wsgi_app(reg)
        self._server = make_server(self.host, self.port, self._wsgi, _ThreadingServer, handler_class=_QuietHandler)
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="mailsec-metrics", daemon=True)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in ("/metrics", "/metrics/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found; metrics are at /metrics\n"]
        if self._token:
            given = environ.get("HTTP_AUTHORIZATION", "").encode()
            if not hmac.compare_digest(given, b"Bearer " + self._token):
                start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
                return [b"a bearer token is required\n"]
        result: Iterable[bytes] = self._app(environ, start_response)
        return result

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_metrics(settings: Settings, read_queue: Callable[[], tuple[dict[str, int], float | None]]) -> MetricsServer:
    server = MetricsServer(settings.metrics_listen, settings.metrics_token, registry([QueueCollector(read_queue)]))
    server.start()
    return server


class Timer:
    """Seconds since it was made."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started
