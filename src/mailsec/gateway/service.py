"""The gateway's running parts: the queue workers always (they also retry releases), the SMTP listener when an
address is configured. With a listener, workers run in child processes by default (`queue_worker_processes`), so
scanning never holds the GIL that the SMTP loop needs to answer 250 quickly; with 0 (or no listener) they are threads
of this process."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from mailsec.gateway.smtp import SMTPServer
from mailsec.gateway.worker import QueueWorker, WorkerProcesses
from mailsec.services import Services

log = logging.getLogger("mailsec.gateway")


@dataclass
class Gateway:
    worker: QueueWorker | WorkerProcesses
    smtp: SMTPServer | None

    def stop(self) -> None:
        """The listener first (no new 250s), then the workers finish the message in hand."""
        started = time.monotonic()
        if self.smtp is not None:
            self.smtp.stop()
        self.worker.stop()
        log.info("gateway stopped in %.1f s", time.monotonic() - started)


def start_gateway(services: Services, smtp_listen: str | None = None) -> Gateway:
    listen = smtp_listen if smtp_listen is not None else services.settings.smtp_listen
    # Without an SMTP listener the worker only retries releases: a thread, not a process importing the scanner.
    processes = bool(listen) and services.settings.queue_worker_processes > 0
    worker: QueueWorker | WorkerProcesses = WorkerProcesses(services) if processes else QueueWorker(services)
    worker.start()
    smtp = SMTPServer(services, listen, on_queued=worker.wake) if listen else None
    if smtp is not None:
        smtp.start()
    return Gateway(worker, smtp)
