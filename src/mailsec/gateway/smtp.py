"""The SMTP face of the gateway (aiosmtpd). The protocol lives in aiosmtpd; this handler only decides: RCPT is
accepted for protected domains (no open relay), and DATA is answered 250 after the receive stage made the message
durable. Blocking work (database, fsync) runs in a thread pool so one slow disk never stalls other sessions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import idna
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from mailsec.config import parse_hostport
from mailsec.gateway.receive import GroupCommit, prepare, receive
from mailsec.gateway.receive import Session as ReceiveSession
from mailsec.observability import logger, metrics
from mailsec.services import Services
from mailsec.store.domains import Domain
from mailsec.store.queue import QueueRepo, now_us

log = logging.getLogger("mailsec.gateway.smtp")
events = logger("mailsec.smtp")
OWNER_TTL = 1.0  # seconds a recipient domain's owner is remembered (a removed domain stops accepting after this)
INLINE_MAX = 512 * 1024  # messages up to this size are hashed on the event loop (about a millisecond at most)


def _trace(session: Session) -> list[tuple[str, int]]:
    lines: list[tuple[str, int]] = getattr(session, "mailsec_trace", None) or []
    if not hasattr(session, "mailsec_trace"):
        session.mailsec_trace = lines  # type: ignore[attr-defined]
    return lines


class _SessionStats:
    """What the session's summary line says when the connection closes (Postfix's smtpd disconnect line)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.queued: list[str] = []
        self.rcpt_refused = 0
        self.data_refused = 0


def _stats(session: Session) -> _SessionStats:
    stats: _SessionStats | None = getattr(session, "mailsec_stats", None)
    if stats is None:
        stats = _SessionStats()
        session.mailsec_stats = stats  # type: ignore[attr-defined]
    return stats


def _owners(envelope: Envelope) -> dict[str, Domain]:
    """The owning domain of each recipient RCPT accepted (aiosmtpd makes a fresh Envelope per transaction)."""
    owners: dict[str, Domain] | None = getattr(envelope, "mailsec_owners", None)
    if owners is None:
        owners = {}
        envelope.mailsec_owners = owners  # type: ignore[attr-defined]
    return owners


# Sender-specified routing in a local part (`user%other@`, `host!user@`, `"user@other"@`): a relay that honours it
# is an open relay, so it is refused as Postfix does by default (allow_untrusted_routing = no).
_ROUTING_CHARS = re.compile(r"[%!@]")


# A domain as RCPT may name it: dot-separated labels (U-labels too) or an address literal
_ADDRESS_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)*[^\W_](?:[\w-]{0,61}[^\W_])?\.?|\[[^\[\]\s]+\]")


def routed_local_part(address: str) -> bool:
    return _ROUTING_CHARS.search(address.rpartition("@")[0]) is not None


def a_label_address(address: str) -> str | None:
    """The address with its domain in A-label (punycode) form, so a recipient written in U-labels finds the domain
    it belongs to; None when the domain is no valid IDN."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    try:
        ascii_domain = idna.encode(domain.rstrip("."), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return f"{local}@{ascii_domain}"


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP, noting the connection (and TLS) in the session's trace. Lines longer than RFC 5321's 1,000
    octets are accepted (as Postfix does): real mail has them, and refusing would bounce legitimate messages (they
    are re-encoded before relaying). Session rules as Postfix's: a malformed address gets a plain `501`, a session
    that collects `error_limit` refusals or stays silent for `timeout` seconds gets `421` and is closed."""

    line_length_limit = 1024 * 1024

    def __init__(self, *args: Any, error_limit: int = 20, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_limit = error_limit
        self.error_count = 0

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's parse, where any failure (the stdlib's header parser raises more than HeaderParseError on
        input such as `<'@[@corp.example>`) means a malformed address, not a Python error in the reply."""
        try:
            address, rest = super()._getaddr(arg)
        except Exception:
            return None, None
        if address and address != "<>" and not _ADDRESS_DOMAIN.fullmatch(address.rpartition("@")[2]):
            return None, None  # no domain, or one no DNS name or address literal can be (`"@corp.example>"`)
        return address, rest

    async def _refuse_malformed(self, keyword: str, arg: str | None, what: str) -> bool:
        stripped = self._strip_command_keyword(keyword, arg) if arg else None
        if stripped and self._getaddr(stripped)[0] is None:
            await self.push(f"501 5.1.3 Bad {what} address syntax")
            return True
        return False

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        greeted = bool(self.session and self.session.host_name)
        ready = greeted and self.envelope is not None and not self.envelope.mail_from
        if ready and await self._refuse_malformed("FROM:", arg, "sender"):
            return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        ready = self.envelope is not None and bool(self.envelope.mail_from)
        if ready and await self._refuse_malformed("TO:", arg, "recipient"):
            return
        await super().smtp_RCPT(arg)

    async def push(self, status: Any) -> None:
        await super().push(status)
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else str(status)
        if text[:1] in ("4", "5") and not text.startswith("421"):
            self.error_count += 1
            if self.error_count >= self.error_limit and self.transport is not None:
                await super().push(f"421 4.7.0 {self.hostname} Error: too many errors")
                self.transport.close()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):
                self._writer.write(f"421 4.4.2 {self.hostname} Error: timeout exceeded\r\n".encode("ascii"))
        super()._timeout_cb()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = self.session.peer if self.session else None
        ip = peer[0] if isinstance(peer, tuple) else str(peer)
        if self.session is not None:
            _stats(self.session)
            lines = _trace(self.session)
            if self.session.ssl is not None:
                obj = transport.get_extra_info("ssl_object")
                version = obj.version() if obj is not None else "TLS"
                cipher = transport.get_extra_info("cipher")
                lines.append((f"TLS established: {version} {cipher[0] if cipher else ''}".strip(), now_us()))
            else:
                lines.append((f"connect from {ip}", now_us()))

    def connection_lost(self, error: Exception | None) -> None:
        try:
            self._log_session()
        except Exception:  # the summary line must never keep the connection from being cleaned up
            log.exception("session summary failed")
        super().connection_lost(error)

    def _log_session(self) -> None:
        """Postfix's `disconnect` line, with what the session did."""
        session = self.session
        if session is None:
            return
        stats = _stats(session)
        peer = session.peer
        tls = _protocol(self, session) if session.ssl is not None and self.transport is not None else {}
        metrics().smtp_sessions.inc()
        events.info(
            "smtp session",
            client=peer[0] if isinstance(peer, tuple) else str(peer),
            helo=session.host_name or None,
            tls=tls.get("tls_version") or (session.ssl is not None),
            queued=stats.queued,
            rcpt_refused=stats.rcpt_refused,
            data_refused=stats.data_refused,
            duration=round(time.monotonic() - stats.started, 3),
        )


def _protocol(server: SMTP, session: Session) -> dict[str, Any]:
    """What the Received line says of the session: the protocol name (RFC 3848) and the TLS in use."""
    tls = session.ssl is not None
    name = "LMTP" if isinstance(server, LMTP) else "ESMTP" if session.extended_smtp else "SMTP"
    out: dict[str, Any] = {"protocol": name + ("S" if tls and name != "LMTP" else "")}
    obj = server.transport.get_extra_info("ssl_object") if tls and server.transport is not None else None
    if obj is not None:
        cipher = obj.cipher()
        out.update(tls_version=obj.version() or "", tls_cipher=cipher[0] if cipher else "")
        out["tls_bits"] = int(cipher[2]) if cipher and cipher[2] else 0
    return out


class GatewayHandler:
    def __init__(
        self,
        services: Services,
        executor: ThreadPoolExecutor,
        on_queued: Any = None,
        committer: GroupCommit | None = None,
    ) -> None:
        self.services = services
        self.executor = executor
        self.on_queued = on_queued
        self.committer = committer
        self._owner_cache: dict[str, tuple[Domain, float]] = {}

    async def _blocking(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _owner_of(self, address: str) -> Domain | None:
        """The owning domain; a hit is remembered for OWNER_TTL seconds so a busy sender's RCPTs skip the thread
        pool and the query. Misses are never cached: a domain just added is protected at once."""
        key = address.rpartition("@")[2].strip().lower()
        now = time.monotonic()
        hit = self._owner_cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        owner: Domain | None = await self._blocking(self.services.domains.owner_of, address)
        if owner is not None:
            if len(self._owner_cache) > 10_000:
                self._owner_cache.clear()
            self._owner_cache[key] = (owner, now + OWNER_TTL)
        return owner

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        _trace(session).append((f"EHLO {hostname}", now_us()))
        out = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        out.insert(1, "250-PIPELINING")
        out.insert(2, "250-ENHANCEDSTATUSCODES")
        return out

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        lines = _trace(session)
        base = getattr(session, "mailsec_base", None)
        if base is not None:  # lines of an earlier transaction in this session (done, RSET or abandoned)
            del lines[base:]
        session.mailsec_base = len(lines)  # type: ignore[attr-defined]
        lines.append((f"MAIL FROM:<{address}> {' '.join(mail_options)}".strip(), now_us()))
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if "@" in address and routed_local_part(address):
            _trace(session).append((f"RCPT TO:<{address}> refused: sender-specified routing", now_us()))
            return f"550 5.7.1 <{address}>: relay access denied (sender-specified routing)"
        ascii_address = a_label_address(address)
        if ascii_address is None:
            return "501 5.1.3 Bad recipient address syntax"
        address = ascii_address
        try:
            owner = await self._owner_of(address)
        except Exception:
            log.exception("domain lookup failed")
            return "451 4.3.0 temporary failure, try again later"
        if owner is None or "@" not in address:
            _stats(session).rcpt_refused += 1
            metrics().smtp_recipients_refused.inc()
            _trace(session).append((f"RCPT TO:<{address}> refused: relay access denied", now_us()))
            return f"550 5.7.1 <{address}>: relay access denied"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        _owners(envelope)[address] = owner
        _trace(session).append((f"RCPT TO:<{address}> accepted for {owner.domain} ({owner.mode})", now_us()))
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        peer = session.peer
        info = ReceiveSession(
            client_ip=peer[0] if isinstance(peer, tuple) else None,
            helo=session.host_name or None,
            tls=session.ssl is not None,
            trace=list(_trace(session)),
            **_protocol(server, session),
        )
        rcpts, owners = list(envelope.rcpt_tos), _owners(envelope)
        stats, counters = _stats(session), metrics()
        counters.smtp_received.inc()
        try:
            if self.committer is not None and len(raw) <= INLINE_MAX and all(r in owners for r in rcpts):
                # Nothing to look up and little to hash: build the rows here and wait for the group commit
                # without a trip through the thread pool (each thread hop is a wake-up on a busy machine).
                items, accepted = prepare(self.services, raw, envelope.mail_from or "", rcpts, info, owners)
                if items:
                    await asyncio.wrap_future(self.committer.submit(items))
            else:
                accepted = await self._blocking(
                    receive, self.services, raw, envelope.mail_from or "", rcpts, info, owners, self.committer
                )
        except Exception:
            log.exception("receive failed; the client will retry")
            stats.data_refused += 1
            counters.smtp_refused.labels(code="451").inc()
            return "451 4.3.0 temporary failure storing the message, try again later"
        if not accepted:
            stats.data_refused += 1
            counters.smtp_refused.labels(code="554").inc()
            return "554 5.7.1 no valid recipients"
        counters.smtp_accepted.inc()
        for a in accepted:
            stats.queued.append(a.postfix_id)
            fields = {"queue_id": a.postfix_id, "account": a.account_id, "from": envelope.mail_from or ""}
            events.info("queued", **fields, to=list(a.recipients), nrcpt=len(a.recipients), size=len(raw))
        if self.on_queued is not None:
            self.on_queued()
        return "250 2.0.0 Ok: queued as " + " ".join(a.postfix_id for a in accepted)


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key or None)
    return ctx


class SMTPServer:
    """The listener in a thread of its own with its own event loop, so it runs beside uvicorn in `mailsec serve`."""

    def __init__(self, services: Services, listen: str, on_queued: Any = None) -> None:
        self.services = services
        self.host, self.port = parse_hostport(listen, 25)
        self.executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mailsec-smtp")
        self.committer = GroupCommit(QueueRepo(services.engine))
        self.handler = GatewayHandler(services, self.executor, on_queued, self.committer)
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    def _factory(self) -> SMTP:
        s = self.services.settings
        return GatewaySMTP(
            self.handler,
            data_size_limit=s.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=s.smtp_hostname,
            ident="mailsec ESMTP",
            tls_context=tls_context(s.tls_cert, s.tls_key),
            timeout=s.smtp_idle_timeout_seconds,
            error_limit=s.smtp_error_limit,
            loop=self.loop,
        )

    def start(self) -> None:
        logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self._server = self.loop.run_until_complete(
                    self.loop.create_server(self._factory, self.host, self.port, reuse_address=True)
                )
                if self.port == 0:
                    self.port = int(self._server.sockets[0].getsockname()[1])
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="mailsec-smtp", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._server is not None:
            self.loop.call_soon_threadsafe(self._server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self.executor.shutdown(wait=False)
        self.committer.stop()
