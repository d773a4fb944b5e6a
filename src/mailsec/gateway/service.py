"""The gateway's running parts in one process: the queue worker always (it also retries releases), the SMTP
listener when an address is configured."""

from __future__ import annotations

from dataclasses import dataclass

from mailsec.gateway.smtp import SMTPServer
from mailsec.gateway.worker import QueueWorker
from mailsec.services import Services


@dataclass
class Gateway:
    worker: QueueWorker
    smtp: SMTPServer | None

    def stop(self) -> None:
        if self.smtp is not None:
            self.smtp.stop()
        self.worker.stop()


def start_gateway(services: Services, smtp_listen: str | None = None) -> Gateway:
    worker = QueueWorker(services)
    worker.start()
    listen = smtp_listen if smtp_listen is not None else services.settings.smtp_listen
    smtp = SMTPServer(services, listen, on_queued=worker.wake) if listen else None
    if smtp is not None:
        smtp.start()
    return Gateway(worker, smtp)
