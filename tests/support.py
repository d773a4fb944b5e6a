"""Helpers shared by the tests: free ports, a throwaway PostgreSQL, a live `mailsec serve`, small messages."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from cloudflare import Cloudflare

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
MAILSEC = [sys.executable, "-m", "mailsec.cli"]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, never one this process handed out before: a port is only bound later by
    the server it is for, so the kernel could offer it again in between (a gateway's SMTP and API on one port)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def make_eml(
    subject: str = "Hello",
    sender: str = "alice@sender.example",
    to: str = "bob@corp.example",
    body: str = "Hi Bob,\nsee you.\n",
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@sender.example>"
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 +0000"
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    if html:
        msg.add_alternative(html, subtype="html")
    for name, ctype, data in attachments or []:
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


# -- PostgreSQL --------------------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    return None


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster from the local binaries, on a loopback port, fsync off."""

    root: Path
    port: int = field(default_factory=free_port)
    proc_user: str | None = None

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.proc_user:
            cmd = ["runuser", "-u", self.proc_user, "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) are not installed")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            self.proc_user = "postgres"
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
            f"-c synchronous_commit=off -c max_connections=200 -c shared_buffers=256MB"
        )
        self._run(pg_ctl, "-D", str(data), "-o", opts, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        pg_ctl = _pg_bin("pg_ctl")
        if pg_ctl:
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run(pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


# -- a live `mailsec serve` ----------------------------------------------------------------------------------------


@dataclass
class LiveServer:
    data_dir: Path
    database_url: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*MAILSEC, *args], env=self.env, capture_output=True, text=True, check=check, timeout=600)

    def last_line(self, *args: str) -> str:
        out = self.cli(*args).stdout.strip().splitlines()
        return out[-1].strip()

    def create_account(self, name: str = "Test") -> str:
        return self.last_line("account", "create", name)

    def create_token(self, account: str, read_only: bool = False) -> str:
        return self.last_line("token", "create", "--account", account, *(["--read-only"] if read_only else []))

    def start(self, *extra: str, new_session: bool = False) -> None:
        """`new_session`: serve leads a process group of its own, as under systemd (tests signal the whole group)."""
        log = open(self.data_dir / "serve.log", "ab")  # noqa: SIM115 - the child process owns it
        self.proc = subprocess.Popen(
            [*MAILSEC, "serve", "--api", f"127.0.0.1:{self.port}", *extra],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mailsec serve exited: " + (self.data_dir / "serve.log").read_text()[-3000:])
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()  # a fixture that fails in setup gets no teardown: leave no serve (and its workers) behind
        raise TimeoutError("mailsec serve did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def database_url(request: pytest.FixtureRequest, folder: Path) -> str:
    """The database a fixture parametrised on "sqlite"/"postgresql" runs on: a file in `folder`, or a fresh
    database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{folder / 'mailsec.db'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


def make_live_server(data_dir: Path, database_url: str, **env: str) -> LiveServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        "MAILSEC_DATA_DIR": str(data_dir),
        "MAILSEC_DATABASE_URL": database_url,
        "MAILSEC_RATE_LIMIT_PER_MINUTE": "1000000",
        "MAILSEC_RATE_LIMIT_BURST": "1000000",
        "MAILSEC_DNS_SERVERS": "off",  # serve asks the system resolver by default; tests use the loopback zones
        "MAILSEC_AUTH_FAILURES_PER_MINUTE": "1000000",  # tests probe every route with bad credentials
        "MAILSEC_AUTH_FAILURES_BURST": "1000000",
        **env,
    }
    return LiveServer(data_dir=data_dir, database_url=database_url, port=free_port(), env=full_env)


def sdk_client(base_url: str, token: str | None = None, email: str | None = None, key: str | None = None) -> Cloudflare:
    """The official SDK (5.x) in strict mode against a live server: every response must match its models."""
    from cloudflare import Cloudflare

    if token is None:
        return Cloudflare(
            api_email=email, api_key=key, base_url=base_url, _strict_response_validation=True, max_retries=0
        )
    return Cloudflare(api_token=token, base_url=base_url, _strict_response_validation=True, max_retries=0)
