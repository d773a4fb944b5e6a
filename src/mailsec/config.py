"""All settings. Read from `MAILSEC_*` environment variables and an optional TOML file; nothing else reads the
environment. Precedence: explicit arguments > environment > TOML file > defaults."""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def parse_hostport(value: str, default_port: int) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT`, `PORT` or `HOST` (IPv6 in brackets) to a pair."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest.lstrip(":") or default_port)
    if value.isascii() and value.isdigit():
        return "127.0.0.1", int(value)
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host or "127.0.0.1", int(port)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    database_url: str = ""
    blob_dir: Path | None = None
    api_listen: str = "127.0.0.1:8025"
    smtp_listen: str = ""
    search_budget_seconds: float = 5.0
    rate_limit_per_minute: int = 1200
    rate_limit_burst: int = 200
    search_concurrency_per_account: int = 2  # searches one account may have running at once (jobs included)
    api_max_body_bytes: int = 4 * 1024 * 1024  # a larger request body is refused with 413 before it is read
    auth_failures_per_minute: int = 30  # failed authentications per client address and per credential
    auth_failures_burst: int = 10
    max_message_bytes: int = 50 * 1024 * 1024
    log_level: str = "info"
    log_format: str = "text"  # or "json": one JSON object a line
    metrics_listen: str = ""  # HOST:PORT for Prometheus' /metrics (its own listener); empty: no metrics endpoint
    metrics_token: str = ""  # when set, /metrics needs `Authorization: Bearer TOKEN`
    # Detection (scan/) settings.
    dns_timeout_seconds: float = 1.0  # one lookup
    dns_budget_seconds: float = 5.0  # all the lookups of one message together
    dns_servers: tuple[str, ...] = ()  # "system", IP[:PORT]s or "off"; unset: "system" for serve, off elsewhere
    dns_port: int = 53
    dns_resolv_conf: str = "/etc/resolv.conf"
    dnsbl_zones: tuple[str, ...] = ()
    geoip_db: str = ""
    asn_db: str = ""
    trusted_arc_sealers: tuple[str, ...] = ()
    learn_holdout_dir: str = ""  # labelled corpora (the shared corpora layout) a content model update is checked on
    # Gateway settings.
    smtp_hostname: str = "mailsec.local"
    tls_cert: str = ""
    tls_key: str = ""
    smtp_idle_timeout_seconds: float = 300.0  # an SMTP session silent this long gets 421 and is closed
    smtp_error_limit: int = 20  # refused commands (4xx/5xx) one SMTP session may collect before 421 and close
    dsn_relay: str = ""  # smtp://HOST:PORT for bounce notices to senders outside the protected domains
    queue_workers: int = 0  # 0: with --smtp, the CPU count + 1 worker processes (at most 8); else 1 thread
    queue_worker_processes: int = 1  # 1: queue workers are child processes (keep the GIL for SMTP); 0: threads
    queue_poll_seconds: float = 0.5
    queue_retry_seconds: tuple[float, ...] = (60.0, 300.0, 900.0, 1800.0, 3600.0)
    queue_max_age_seconds: float = 5 * 86400.0
    queue_claim_timeout_seconds: float = 600.0
    delivery_timeout_seconds: float = 30.0
    quarantine_dispositions: tuple[str, ...] = ("MALICIOUS", "MALICIOUS-BEC", "SPOOF")
    # Preview settings.
    chromium_path: str = "/usr/bin/chromium"
    preview_pages: int = 2
    preview_timeout_seconds: float = 10.0
    preview_max_bytes: int = 20 * 1024 * 1024
    preview_max_height: int = 4000
    preview_idle_seconds: float = 300.0  # Chromium is closed after this long without a render (0: kept open)
    preview_user: str = "nobody"  # when mailsec runs as root, Chromium runs as this user
    # Web console settings.
    console_idle_seconds: float = 1800.0  # a console session unused this long is signed out
    console_max_age_seconds: float = 12 * 3600.0  # and any session after this long, however busy
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'mailsec.db').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def api_address(self) -> tuple[str, int]:
        return parse_hostport(self.api_listen, 8025)

    def for_serve(self) -> Settings:
        """What `mailsec serve` runs with: sender authentication against the system resolver unless DNS is
        configured (or turned off) explicitly."""
        return self if self.dns_servers else replace(self, dns_servers=("system",))

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    kind = str(_FIELDS[name].type)
    if isinstance(value, str):
        if "tuple" in kind:
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if kind.startswith("Path"):
            return Path(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    if isinstance(value, list):
        return tuple(value)
    if kind.startswith("Path") and value is not None:
        return Path(value)
    return value


def _warn_if_readable_by_others(path: Path) -> None:
    """The file may hold the database password and key material: say so when others can read it."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        logging.getLogger("mailsec.config").warning(
            "%s is readable by other users (mode %o); it may hold secrets: chmod 600 it", path, mode & 0o777
        )


def load_settings(
    config_file: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    path = config_file or env.get("MAILSEC_CONFIG")
    if path:
        _warn_if_readable_by_others(Path(path))
        with open(path, "rb") as fh:
            for key, value in tomllib.load(fh).items():
                if key in _FIELDS and key != "extra":
                    values[key] = _coerce(key, value)
                else:
                    extra[key] = value
    for key, value in env.items():
        if key.startswith("MAILSEC_"):
            name = key[len("MAILSEC_") :].lower()
            if name in _FIELDS and name != "extra":
                values[name] = _coerce(name, value)
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, value)
    return Settings(**values, extra=extra)
