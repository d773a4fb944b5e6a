"""Sender memory: the verdict an analyst gave on a sender. A false positive reclassified NONE relieves later mail of
that sender (scan/learned.py applies it only when the later message is authenticated for it); a sender reclassified
MALICIOUS, MALICIOUS-BEC or SUSPICIOUS is treated as such (SPOOF names a forger, not the sender; SPAM and BULK are
about one message's content, which campaign memory keeps).

The address is always remembered; the registered domain only when the reclassified message was authenticated for it
(an unauthenticated From names nobody) and it is not a free-mail domain (one address there says nothing about the
others). A bad verdict on unauthenticated mail is held against later unauthenticated mail only: a forger must not
make a real sender's authenticated mail malicious."""

from __future__ import annotations

import time

from sqlalchemy import Connection, Engine, delete, insert, select

from mailsec.learn.campaigns import reading
from mailsec.model import Disposition
from mailsec.scan.identity import SenderIdentity
from mailsec.scan.learned import Lesson
from mailsec.scan.lookalike import FREEMAIL
from mailsec.store.schema import learn_senders

D = Disposition
MAX_VALUE = 320
SENDER_BAD = frozenset({D.MALICIOUS_BEC, D.MALICIOUS, D.SUSPICIOUS})


def sender_keys(who: SenderIdentity, with_domain: bool) -> list[tuple[str, str]]:
    """(kind, value) pairs naming this sender, most specific first."""
    out: list[tuple[str, str]] = []
    if who.from_address:
        out.append(("address", who.from_address.strip().lower()[:MAX_VALUE]))
    if with_domain and who.from_org and who.from_org not in FREEMAIL:
        out.append(("domain", who.from_org.lower()[:MAX_VALUE]))
    return out


def learns_sender(requested: Disposition) -> bool:
    return requested in SENDER_BAD or requested is D.NONE


class SenderLessonRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def remember(
        self,
        account_id: str,
        who: SenderIdentity,
        submission_id: str,
        requested: Disposition,
        original: Disposition | None,
    ) -> list[tuple[str, str]]:
        """The newest verdict on each key wins. Returns the keys written (none for a disposition that says nothing
        about the sender)."""
        if not learns_sender(requested):
            return []
        keys = sender_keys(who, with_domain=who.authenticated)
        now = time.time_ns() // 1000
        with self.engine.begin() as conn:
            for kind, value in keys:
                conn.execute(
                    delete(learn_senders).where(
                        learn_senders.c.account_id == account_id,
                        learn_senders.c.kind == kind,
                        learn_senders.c.value == value,
                    )
                )
                conn.execute(
                    insert(learn_senders).values(
                        account_id=account_id, kind=kind, value=value, requested=requested.value,
                        original=original.value if original else None, submission_id=submission_id,
                        authenticated=who.authenticated, created_us=now,
                    )
                )  # fmt: skip
        return keys

    def lesson_for(self, account_id: str, who: SenderIdentity, conn: Connection | None = None) -> Lesson | None:
        """The lesson on the address, else on the domain. `who` is not yet authenticated (the scan does that):
        `learned.py` grants relief to authenticated mail only, and holds a bad lesson from unauthenticated mail
        against unauthenticated mail only."""
        keys = sender_keys(who, with_domain=True)
        if not keys:
            return None
        c = learn_senders.c
        with reading(self.engine, conn) as db:
            rows = db.execute(
                select(c.kind, c.value, c.requested, c.original, c.submission_id, c.authenticated).where(
                    c.account_id == account_id, c.kind.in_({k for k, _ in keys}), c.value.in_({v for _, v in keys})
                )
            ).all()
        found = {(r.kind, r.value): r for r in rows}
        for key in keys:
            r = found.get(key)
            if r is None:
                continue
            try:
                requested = Disposition(r.requested)
                original = Disposition(r.original) if r.original else None
            except ValueError:
                continue
            what = f"the sender {r.value}" if r.kind == "address" else f"the domain {r.value}"
            return Lesson(r.submission_id, requested, original, what, authenticated=bool(r.authenticated))
        return None
