"""A console in front of a real gateway for the dashboard, quarantine, bulk and settings tests: `mailsec serve
--smtp` (tests/gateway/gw_support.py) delivering to a private Dovecot over LMTP, mail sent over SMTP to an account
that holds every disposition, so releases and deletions act on real held mail."""

from __future__ import annotations

import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gateway"))

from gw_support import Dovecot, Gateway, make_dovecot, start_gateway
from test_gateway_flow import send, wait_status

from support import make_eml

PAT, SAM = "pat@hold.example", "sam@hold.example"
HOSTILE_SUBJECT = '<img src=x onerror="alert(1)"><script>alert(2)</script> Invoice'
HOSTILE_NAME = '"<script>alert(3)</script>" <evil@attacker.example>'


@dataclass
class HeldMail:
    """The running gateway, its Dovecot, and the account whose mail is all held."""

    gw: Gateway
    dovecot: Dovecot
    root: Path

    @property
    def account(self) -> str:
        return self.gw.hold_account

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gw.server.port}"

    def hold(self, subject: str, rcpts: tuple[str, ...] = (PAT, SAM), sender: str = "alice@sender.example") -> str:
        """Send one message through SMTP; its postfix id once the gateway has quarantined it."""
        raw = make_eml(subject, sender=sender, to=", ".join(rcpts))
        (postfix_id,) = send(self.gw, raw, list(rcpts), sender=sender.rpartition("<")[2].rstrip(">"))
        wait_status(self.gw, self.account, postfix_id, {"quarantined"})
        return postfix_id

    def in_inbox(self, user: str, marker: str) -> int:
        with self.dovecot.imap(user) as c:
            c.select_folder("INBOX", readonly=True)
            return len(c.search(["SUBJECT", marker]))

    def stop(self) -> None:
        self.gw.server.stop()
        self.gw.services.close()
        self.dovecot.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_held_mail(tmp: Path) -> HeldMail:
    root = Path(tempfile.mkdtemp(prefix="mailsec-console-dovecot-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes read the users file
    dovecot = make_dovecot(root, [PAT, SAM])
    try:
        gw = start_gateway(tmp / "data", dovecot, None)
    except BaseException:
        dovecot.stop()
        raise
    return HeldMail(gw, dovecot, root)


def marker() -> str:
    return uuid.uuid4().hex[:10]
