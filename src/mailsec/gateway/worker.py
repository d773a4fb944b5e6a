"""The queue worker: claims due rows and runs each through idempotent stages — store (parse, scan, save unless
already saved), then dispatch (quarantine, or deliver the recipients not yet final). A row is finished only after
its stages are; a crash leaves it claimed by a dead process, and the next start resumes it."""

from __future__ import annotations

import contextlib
import ctypes
import email
import email.message
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from datetime import UTC, datetime
from email import policy as email_policy
from typing import Any

from mailsec import pipeline
from mailsec.actions import auto_move, user_reports
from mailsec.actions.move import move_stored
from mailsec.config import Settings
from mailsec.gateway import bounce, decide, dispatch
from mailsec.gateway.deliver import Connections, NextHop
from mailsec.model import DeliveryMode, DeliveryStatus, Destination, Envelope, TraceDirection
from mailsec.services import Services, open_services
from mailsec.store.blobs import BlobNotFound
from mailsec.store.messages import StoredMessage
from mailsec.store.policies import QuarantinePolicy
from mailsec.store.queue import Finish, QueueItem, QueueRepo, now_us, worker_identity
from mailsec.store.records import MessageRecord, from_us

log = logging.getLogger("mailsec.gateway.worker")
INBOUND = TraceDirection.INBOUND.value
BLOB_SYNC_SECONDS = 1.0


def unwrap_journal(raw: bytes) -> bytes:
    """A journal report carries the original as an attached message/rfc822 part; that part is what is scanned."""
    try:
        report = email.message_from_bytes(raw, policy=email_policy.compat32)
    except Exception:  # hostile input: keep the report itself
        return raw
    for part in report.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message):
                return payload[0].as_bytes()
            if isinstance(payload, str | bytes):
                return payload.encode("latin-1", "replace") if isinstance(payload, str) else payload
    return raw


backoff_us = decide.backoff_us


class QueueWorker:
    """Worker threads sharing one process; `wake()` lets the receive stage skip the poll delay."""

    def __init__(self, services: Services, threads: int | None = None, wake: Any = None, stop: Any = None) -> None:
        self.services = services
        self.queue = QueueRepo(services.engine)
        self.identity = worker_identity()
        self.threads = max(1, threads or services.settings.queue_workers)
        self._stop = stop if stop is not None else threading.Event()
        self._wake = wake if wake is not None else threading.Event()
        self._threads: list[threading.Thread] = []
        self._unsynced = False  # blobs written without fsync since the last sync_blobs
        self._syncer: threading.Thread | None = None
        self._syncer_lock = threading.Lock()

    def start(self) -> None:
        freed = self.queue.release_dead_claims()
        if freed:
            log.info("resuming %d message(s) claimed by a process that stopped", freed)
        for n in range(self.threads):
            t = threading.Thread(
                target=self._run, name=f"mailsec-queue-{n}", args=(f"{self.identity}:{n}",), daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def sync_blobs(self) -> None:
        """One filesystem sync for every blob written since the last one (instead of two fsyncs a message), then
        the queue rows of those messages drop their copy of the bytes. The queue row stays the durable copy until
        then, so a power cut between the two loses nothing."""
        started = now_us()
        os.sync()
        dropped = self.queue.drop_synced_raw(started)
        if dropped:
            log.debug("synced blobs; %d queue row(s) dropped their bytes", dropped)

    def _run(self, identity: str, batch: int = 8) -> None:
        settings = self.services.settings
        claim_timeout = int(settings.queue_claim_timeout_seconds * 1_000_000)
        self._start_syncer()
        while not self._stop.is_set():
            try:
                items = self.queue.claim(identity, batch, claim_timeout)
            except Exception:
                log.exception("queue claim failed")
                items = []
            if items:
                self.run_batch(items)
            else:
                self._wake.wait(settings.queue_poll_seconds)
                self._wake.clear()
        if self._unsynced:
            self._sync_quietly()

    def _start_syncer(self) -> None:
        """The once-a-second blob sync runs beside the workers, not in their loop: a filesystem sync can take tens
        of milliseconds on a busy disk, and the worker goes on scanning meanwhile. Correct either way: only rows
        finished before the sync began drop their bytes, and their blobs were written before that."""
        with self._syncer_lock:
            if self._syncer is not None:
                return
            self._syncer = threading.Thread(target=self._sync_loop, name="mailsec-blob-sync", daemon=True)
            self._syncer.start()

    def _sync_loop(self) -> None:
        while not self._stop.wait(BLOB_SYNC_SECONDS):
            if self._unsynced:
                self._sync_quietly()

    def _sync_quietly(self) -> None:
        self._unsynced = False
        try:
            self.sync_blobs()
        except Exception:
            log.exception("blob sync failed")

    def run_batch(self, items: list[QueueItem]) -> None:
        """The claimed rows one after the other, sharing what a batch can share: open sessions to next hops, the
        next hops of recipient domains, and one commit that finishes every row at the end. A row is finished
        only after its message's own writes are committed, so a kill in between reruns idempotent stages."""
        batch = _Batch()
        try:
            for item in items:
                if self._stop.is_set():  # stopping: the rows not begun go back to the queue, unclaimed
                    batch.finish(Finish(item.id, item.state))
                    continue
                self._run_one(item, batch)
            self._run_auto_moves(batch)
        finally:
            batch.connections.close()
            self._flush(batch)

    def run_item(self, item: QueueItem) -> None:
        self.run_batch([item])

    def _run_one(self, item: QueueItem, batch: _Batch) -> None:
        try:
            self._process(item, batch)
        except Exception as exc:
            log.exception("queue item %s failed; will retry", item.postfix_id)
            self._retry_later(item, batch, exc)

    def _retry_later(self, item: QueueItem, batch: _Batch, exc: Exception) -> None:
        attempts = item.attempts + 1
        if attempts >= 10:
            batch.finish(Finish(item.id, "failed", attempts=attempts, data={**item.data, "error": repr(exc)[:500]}))
        else:
            delay = backoff_us(self.services.settings.queue_retry_seconds, attempts)
            batch.finish(Finish(item.id, item.state, attempts=attempts, next_attempt_us=now_us() + delay))

    def _flush(self, batch: _Batch) -> None:
        if not batch.finishes:
            return
        try:
            self.queue.finish_many(batch.finishes)
        except Exception:  # rows stay claimed by this live process until the claim times out; the stages rerun
            log.exception("finishing %d queue row(s) failed", len(batch.finishes))
        batch.finishes = []

    # -- stages ---------------------------------------------------------------------------------------------

    def store(self, item: QueueItem) -> StoredMessage | None:
        """Parse, scan and save unless this postfix_id is already saved (a rerun after a crash stores nothing new)."""
        found = self._store(item, _Batch())
        return found[0] if found is not None else None

    def _store(
        self, item: QueueItem, batch: _Batch
    ) -> tuple[StoredMessage, list[dict[str, Any]] | None, bytes | None] | None:
        """The stored message, its recipient rows when this call wrote them (None: read them), and the original
        bytes when they are in memory."""
        services = self.services
        pk = services.messages.stored_pk(item.postfix_id)
        stored = services.messages.get_by_pk(pk) if pk is not None else None
        if stored is not None and stored.account_id == item.account_id:
            return stored, None, None  # a rerun: dispatch reads the stored bytes (a journal row's raw is the report)
        env = item.envelope
        try:
            if item.raw is not None:  # accepted bytes from the queue row; synced in groups (sync_blobs)
                services.blobs.put(item.raw, fsync=False)
                self._unsynced = True
                raw = item.raw
            else:  # accepted by an older version, or the row's bytes were already moved
                raw = services.blobs.get(item.raw_sha256)
        except BlobNotFound:
            log.error("queue item %s: raw message %s is missing", item.postfix_id, item.raw_sha256)
            batch.finish(Finish(item.id, "failed", data={**item.data, "error": "raw message missing"}))
            return None
        try:
            mode = DeliveryMode(str(env.get("mode", "DIRECT")).upper())
        except ValueError:
            mode = DeliveryMode.DIRECT
        content = unwrap_journal(raw) if mode is DeliveryMode.JOURNAL else raw
        trace: list[tuple[str, str, datetime]] = [(INBOUND, str(m), from_us(int(us))) for m, us in env.get("trace", [])]
        if content is not raw:
            trace.append(
                (INBOUND, f"journal report unwrapped: original message of {len(content)} bytes", from_us(now_us()))
            )
        helo, ip = env.get("helo"), env.get("client_ip")
        envelope = Envelope(
            mail_from=str(env.get("mail_from") or ""),
            rcpt_to=tuple(env.get("rcpt_to") or ()),
            client_ip=ip,
            helo=helo,
            tls=bool(env.get("tls")),
            received_header=str(env.get("received_header") or ""),
            received_us=int(env.get("received_us") or 0),
        )
        processed = pipeline.process_message(
            services,
            content,
            item.account_id,
            envelope,
            mode=mode,
            source=f"{helo or 'unknown'} [{ip or 'unknown'}]",
            dedupe=False,
            postfix_id=item.postfix_id,
            received_at=from_us(int(env.get("received_us") or now_us())),
            delivery_status="queued" if mode is DeliveryMode.DIRECT else None,
            extra_trace=trace,
            before_save=(lambda rec: self._first_step(item, rec, batch)) if mode is DeliveryMode.DIRECT else None,
        )
        message = processed.stored or services.messages.get_by_pk(processed.pk)
        if message is None:
            return None
        # the bytes stored are `content` (a journal report's original): what the next hop gets
        return message, processed.recipients, content

    def _policy(self, account_id: str, batch: _Batch) -> QuarantinePolicy:
        policy = batch.policies.get(account_id)  # read once a batch: holding and subject tags
        if policy is None:
            policy = batch.policies[account_id] = dispatch.quarantine_policy(self.services, account_id)
        return policy

    def _first_step(self, item: QueueItem, rec: MessageRecord, batch: _Batch) -> None:
        """Decided before the message is saved, and written in its transaction (one commit instead of two): held
        by the account's policy (quarantined, with its trace line), or its recipients' hand-off begins (`sending`,
        what dispatch would otherwise commit on its own just before contacting the next hop)."""
        if item.data.get("release"):
            return
        disposition = str(rec.verdict.disposition)
        routes = {a: dispatch.hop_for(self.services, a, batch.hops) for a in rec.envelope_to}
        step = decide.first_step(disposition, self._policy(rec.account_id, batch).holds(disposition), routes)
        if step.held:
            rec.delivery_status, rec.is_quarantined = DeliveryStatus.QUARANTINED.value, True
        rec.recipient_states.update({a: (state.value, detail) for a, (state, detail) in step.states.items()})
        if step.trace is not None:
            rec.trace.append((INBOUND, step.trace, datetime.now(UTC)))

    def _process(self, item: QueueItem, batch: _Batch | None = None) -> None:
        batch = batch if batch is not None else _Batch()
        services = self.services
        found = self._store(item, batch)
        if found is None:
            return
        message, rows, raw = found
        mode = message.delivery_mode.value
        if mode == DeliveryMode.REVIEW_SUBMISSION.value:  # sent to a report address: a user's report
            user_reports.record_report(services, message, raw or services.blobs.get(message.raw_sha256))
            batch.finish(Finish(item.id, "done", attempts=item.attempts + 1))
            return
        if mode != DeliveryMode.DIRECT.value:
            if item.state == "queued":
                services.messages.add_trace(
                    message.pk, INBOUND, f"{mode} copy: stored for investigation, not delivered"
                )
            self._auto_move(item, message, batch)
            return
        released = bool(item.data.get("release"))
        policy = self._policy(message.account_id, batch)
        # `sending` states this run wrote with the message (_first_step) are no sign of an interrupted hand-off
        sending_written = rows is not None
        if rows is None:
            rows = services.messages.recipient_states(message.pk)
        if not released and dispatch.account_quarantines(services, message, policy):
            dispatch.quarantine(services, message, rows)
            batch.finish(Finish(item.id, "done"))
            return
        states = dispatch.known_states(rows)
        pending = decide.to_hand_off(states)
        attempts = item.attempts + 1
        if not pending:
            status = decide.message_status(states.values())
            services.messages.set_state(message.pk, delivery_status=status, is_quarantined=False)
            batch.finish(Finish(item.id, "done", attempts=attempts))
            return
        settings = services.settings
        attempt = decide.Attempt(
            attempts,
            now_us() - item.created_us,
            int(settings.queue_max_age_seconds * 1_000_000),
            tuple(settings.queue_retry_seconds),
        )
        mail_from = str(item.envelope.get("mail_from", message.envelope_from))
        label = f"{'release ' if released else ''}delivery attempt {attempts}"
        outcome = dispatch.deliver_message(
            services,
            message,
            pending,
            mail_from,
            label,
            policy=policy,
            states=rows,
            raw=raw,
            connections=batch.connections,
            hops=batch.hops,
            attempt=attempt,
            sending_written=sending_written,
        )
        bounced = outcome.conclusion.bounced
        if bounced:  # accepted with 250, now refused for good: the sender is told (RFC 3464)
            failed = {r: outcome.replies[r] for r in bounced if r in outcome.replies}
            expired = frozenset(r for r, reply in failed.items() if not reply.permanent)
            bounce.notify_sender(services, message, mail_from, failed, raw, from_us(item.created_us), expired)
        wait = outcome.conclusion.requeue_in_us
        if wait is None:
            batch.finish(Finish(item.id, "done", attempts=attempts))
        else:
            batch.finish(Finish(item.id, "deferred", attempts=attempts, next_attempt_us=now_us() + wait))

    def _auto_move(self, item: QueueItem, message: StoredMessage, batch: _Batch) -> None:
        """A copy (BCC, JOURNAL, API) whose disposition the account moves: set aside, and moved with the batch's
        other copies for that folder once the batch's rows are worked (_run_auto_moves)."""
        rules = batch.auto_moves.get(message.account_id)
        if rules is None:
            rules = batch.auto_moves[message.account_id] = auto_move.get_rules(self.services.engine, message.account_id)
        destination = auto_move.destination_of(message, rules)
        if destination is None:
            batch.finish(Finish(item.id, "done", attempts=item.attempts + 1))
        else:
            batch.moves_due.setdefault(destination, []).append((item, message))

    def _run_auto_moves(self, batch: _Batch) -> None:
        """The batch's copies moved per folder as one request moves them (one lookup and one move per mailbox and
        folder), each row finished from its own message's items: looked for again later while a copy is not there
        yet (the mail may reach the mailbox after mailsec). Rows finish only after the moves' record is committed,
        so a kill in between reruns the moves, which find the copies already in place."""
        due, batch.moves_due = batch.moves_due, {}
        for destination, pairs in due.items():
            try:
                moved = move_stored(self.services, [m for _, m in pairs], destination, auto_move.REQUESTED_BY)
            except Exception as exc:
                log.exception("auto-move of %d message(s) failed; will retry", len(pairs))
                for item, _ in pairs:
                    self._retry_later(item, batch, exc)
                continue
            for (item, _), items in zip(pairs, moved, strict=True):
                attempts = item.attempts + 1
                if items and auto_move.look_again(items) and attempts < auto_move.ATTEMPTS:
                    delay = backoff_us(self.services.settings.queue_retry_seconds, attempts)
                    batch.finish(Finish(item.id, "deferred", attempts=attempts, next_attempt_us=now_us() + delay))
                else:
                    batch.finish(Finish(item.id, "done", attempts=attempts))


class _Batch:
    """What the rows of one claim share while they are worked on (see QueueWorker.run_batch)."""

    def __init__(self) -> None:
        self.connections = Connections()
        self.hops: dict[str, NextHop | str] = {}
        # The policy of the moment the batch is worked on (a change applies from the next batch: milliseconds)
        self.policies: dict[str, QuarantinePolicy] = {}
        self.finishes: list[Finish] = []
        self.auto_moves: dict[str, dict[str, Destination]] = {}
        self.moves_due: dict[Destination, list[tuple[QueueItem, StoredMessage]]] = {}

    def finish(self, f: Finish) -> None:
        self.finishes.append(f)


# -- worker processes -----------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """When `mailsec serve` dies (SIGKILL), each worker sees the end of its pipe, finishes the message in hand and
    exits; the fork server, their parent, ends once they are gone. Should the fork server be killed first, Linux
    PR_SET_PDEATHSIG takes the workers along. Either way a restart finds their claims held by dead processes and
    resumes them, exactly as with worker threads."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def warm_up() -> None:
    """Load the parser, the content model and the macro scanner (oletools takes ~0.4 s to import) before the
    first message, not while it waits (offline: no lookups). Done once in the fork server (gateway/preload.py);
    again, nearly free, in each worker."""
    from mailsec.mime import parse_message
    from mailsec.scan import scan_message
    from mailsec.scan.attachments import load_macro_scanner

    try:
        scan_message(parse_message(b"From: a@example.org\r\nSubject: warm-up\r\n\r\nhello\r\n"), Envelope())
        load_macro_scanner()
    except Exception:
        log.exception("warm-up scan failed")


WORKER_NICE = 10
# A worker process checks whether the account's scanning policy changed at most this often, not for every message
POLICY_REVALIDATE_SECONDS = 1.0
# Rows a worker process claims at once: they share one claim, one finishing commit, the next hop's session and
# the policy read; small, so that a burst is still spread over every worker.
PROCESS_BATCH = 4


class StopFlag:
    """Set once, never cleared, without a lock: a signal handler sets it (a handler that took a lock the
    interrupted code held would deadlock). Waiters select on a pipe that becomes readable for good once set.
    Quacks like the threading.Event QueueWorker stops on."""

    def __init__(self) -> None:
        self._set = False
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        with contextlib.suppress(OSError):
            os.write(self._w, b"s")

    def wait(self, timeout: float | None = None) -> bool:
        if not self._set:
            with contextlib.suppress(OSError, ValueError):
                select.select([self._r], [], [], timeout)
        return self._set


class ParentPipe:
    """A worker process's wake-up and stop signal, without a lock a killed process could leave held (a
    multiprocessing Event is a Condition over a semaphore: a worker killed inside `wait()` hangs the parent's next
    `set()` for ever). The parent writes a byte to wake the worker and closes its end to stop it; end of file also
    means the parent is gone. SIGTERM to the worker itself (systemd signals the whole group) sets the same stop.
    Quacks like the threading.Event QueueWorker waits on for work."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._fd: int = reader.fileno()
        self.stopped = StopFlag()

    def wait(self, timeout: float | None = None) -> bool:
        if self.stopped.is_set():
            return True
        try:
            ready, _, _ = select.select([self._fd, self.stopped._r], [], [], timeout)
        except (OSError, ValueError):
            self.stopped.set()
            return True
        if self._fd in ready:
            try:
                data = os.read(self._fd, 4096)
            except OSError:
                data = b""
            if not data:
                self.stopped.set()
        return bool(ready)

    def clear(self) -> None:
        """Every wake-up was read by `wait`."""

    def set(self) -> None:
        """Only the parent wakes a worker process."""


# Once told to stop, a worker has this long to finish the message in hand before it exits regardless (a worker
# orphaned by a SIGKILL of `serve` must not linger holding its claims).
STOP_GRACE_SECONDS = 20.0


def _exit_when_overdue(stopped: StopFlag) -> None:
    stopped.wait()
    time.sleep(STOP_GRACE_SECONDS)
    log.warning("queue worker %d did not finish within %g s of being stopped; exiting", os.getpid(), STOP_GRACE_SECONDS)
    os._exit(1)


def _child_main(settings: Settings, reader: Any) -> None:
    _die_with_parent()
    pipe = ParentPipe(reader)
    signal.signal(signal.SIGTERM, lambda signum, frame: pipe.stopped.set())  # finish the message in hand, exit
    if pipe.wait(0) and pipe.stopped.is_set():  # `serve` went away before this worker was up
        os._exit(1)
    threading.Thread(target=_exit_when_overdue, args=(pipe.stopped,), name="mailsec-stop-grace", daemon=True).start()
    # Accepting mail is latency-bound (a client waits for 250), scanning is throughput-bound (the queue absorbs
    # bursts): when the cores are busy, the SMTP process goes first.
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (Ctrl-C reaches the group)
    from mailsec.observability import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    services = open_services(settings)
    try:
        services.policies.revalidate_seconds = POLICY_REVALIDATE_SECONDS
        if not pipe.stopped.is_set():
            warm_up()
        worker = QueueWorker(services, threads=1, wake=pipe, stop=pipe.stopped)
        worker._run(f"{worker.identity}:0", batch=PROCESS_BATCH)
    finally:
        services.close()
    # Everything is committed and synced: skip the interpreter's teardown of the scanner's modules (2-3 s here).
    logging.shutdown()
    os._exit(0)


PRELOAD_MODULE = "mailsec.gateway.preload"


def worker_context() -> Any:
    """Workers are forked from a fork server that preloaded the scanner (shared copy-on-write; see preload.py),
    never from `serve`, which has threads and open connections. Without a fork server (not Unix): spawn."""
    try:
        ctx = multiprocessing.get_context("forkserver")
    except ValueError:
        return multiprocessing.get_context("spawn")
    ctx.set_forkserver_preload([PRELOAD_MODULE])
    return ctx


def default_worker_processes(cpus: int | None = None) -> int:
    """`queue_workers = 0` (the default) with worker processes: one more than the cores, at most 8. Workers run at
    nice 10 and wait on the database and the next hop part of the time, so one more than the cores keeps them busy
    (2 cores: 3 measured best, see docs/gateway.md); beside the scanner they share, each holds ~30 MB of its own
    (docs/benchmarks.md, "Footprint"), and more workers than cores only contend, hence the cap."""
    count = cpus if cpus is not None else (os.cpu_count() or 1)
    return min(8, max(2, count + 1))


class WorkerProcesses:
    """`queue_workers` queue workers, each in a process of its own: scanning is CPU-bound Python, and in threads it
    would hold the GIL against the SMTP loop (slow 250s). Same claims, same stages, same restart story: the queue
    is the truth and a worker's identity carries its pid."""

    def __init__(self, services: Services, processes: int | None = None) -> None:
        self.services = services
        self.count = max(1, processes or services.settings.queue_workers or default_worker_processes())
        self._ctx = worker_context()
        self._lock = threading.Lock()
        self._stopping = False
        self._procs: list[Any] = []
        self._writers: list[Any] = []  # our end of each worker's ParentPipe
        self._launcher: threading.Thread | None = None

    def start(self) -> None:
        """Returns at once: the first worker waits for the fork server to preload the scanner (seconds), and
        `serve` answers SMTP and the API meanwhile (accepted mail waits in the queue)."""
        freed = QueueRepo(self.services.engine).release_dead_claims()
        if freed:
            log.info("resuming %d message(s) claimed by a process that stopped", freed)
        self._launcher = threading.Thread(target=self._launch_all, name="mailsec-worker-launcher", daemon=True)
        self._launcher.start()

    def _launch_all(self) -> None:
        for n in range(self.count):
            if self._stopping:
                return
            reader, writer = self._ctx.Pipe(duplex=False)
            proc = self._ctx.Process(
                target=_child_main, args=(self.services.settings, reader), name=f"mailsec-queue-{n}", daemon=True
            )
            try:
                proc.start()
            except Exception:
                log.exception("starting queue worker %d failed", n)
                writer.close()
                return
            finally:
                reader.close()  # the worker's copy is its own: when it dies, a wake-up fails instead of piling up
            os.set_blocking(writer.fileno(), False)
            with self._lock:
                self._procs.append(proc)
                if self._stopping:  # stop() came while this one started: it stops at once
                    writer.close()
                    continue
                self._writers.append(writer)
            with contextlib.suppress(OSError):
                os.write(writer.fileno(), b"w")  # mail may have queued up while it started

    def running(self) -> list[Any]:
        """The worker processes started so far (multiprocessing.Process objects)."""
        with self._lock:
            return list(self._procs)

    def wake(self) -> None:
        """Never blocks: a full pipe already holds a wake-up, a dead worker's pipe is broken."""
        with self._lock:
            writers = list(self._writers)
        for writer in writers:
            with contextlib.suppress(OSError, ValueError):
                os.write(writer.fileno(), b"w")

    def stop(self, timeout: float = 10.0) -> None:
        """Each worker finishes the message in hand (claims stay in the queue for the next start otherwise); one
        deadline for all of them, then the stragglers are killed. Safe when the workers are already gone."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._stopping = True
            writers, self._writers = self._writers, []
        for writer in writers:
            with contextlib.suppress(OSError):
                writer.close()
        if self._launcher is not None:
            self._launcher.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            with contextlib.suppress(OSError, ValueError):
                proc.terminate()
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in procs:
            if proc.is_alive():
                log.warning("queue worker %s did not stop within %g s; killing it", proc.pid, timeout)
                proc.kill()
                proc.join(1)
