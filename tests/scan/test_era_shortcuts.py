"""The content features must not tell the era of a message: the same words wrapped the 2002 way and the 2026 way
give the same model tokens, and a probe classifier trained to tell the two wrappings apart stays at chance."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from mailsec.mime import parse_message
from mailsec.scan.features import extract_text, model_document, model_tokens
from support import make_eml

TOPICS = [
    "the resolver times out when the zone has many records; could you try the patch and report back",
    "we moved the meeting to the small room, bring the slides about the storage migration",
    "the build failed on the arm runner because the toolchain is missing a header, fixed in the next push",
    "thanks for the review, I reworked the locking so that the cache is flushed before the reload",
    "please find the minutes of the board meeting; the budget for the conference travel was approved",
    "the printer on the second floor is out of toner again, facilities have been told",
    "can somebody explain why the daemon ignores the config file when started from the init script",
    "the release candidate is tagged, please test the installer on your machines before the weekend",
]
OLD_FOOTER = (
    "\n\n_______________________________________________\nExmh-users mailing list\nExmh-users@redhat.com\n"
    "https://listman.redhat.com/mailman/listinfo/exmh-users\n"
)
NEW_FOOTER = (
    '\n\n-- \nYou received this message because you are subscribed to the Google Groups "dev" group.\n'
    "To unsubscribe from this group and stop receiving emails from it, send an email to dev+unsubscribe@groups.io.\n"
)


def _old(i: int, topic: str) -> bytes:
    return make_eml(
        subject=f"Re: status {i}",
        sender="Bob Smith <bob@old-list.example>",
        body=f"On 8/29/02 12:{i:02d} PM, Ann wrote:\n> question\n\n{topic}\nSee http://www.old.example/x.html "
        f"for version 1.2.{i}.{OLD_FOOTER}",
        headers={"List-Id": "<exmh-users.redhat.com>"},
    )


def _new(i: int, topic: str) -> bytes:
    return make_eml(
        subject=f"Re: status {i}",
        sender="Bob Smith via dev <dev@groups.example>",
        body=f"On 2025-03-{i + 1:02d}T12:{i:02d}:00Z, Ann wrote:\n> question\n\n{topic}\nSee https://new.example/x "
        f"for version v3.14.{i}.{NEW_FOOTER}",
        headers={"List-Id": "<dev.groups.example>"},
        attachments=[("0001-fix.patch", "text/plain", b"diff --git a/x b/x\n"), ("logo.png", "image/png", b"\x89PNG")],
    )


def _tokens(raw: bytes) -> list[str]:
    return model_tokens(extract_text(parse_message(raw)))


def test_era_wrappings_give_the_same_tokens() -> None:
    for i, topic in enumerate(TOPICS):
        old, new = _tokens(_old(i, topic)), _tokens(_new(i, topic))
        assert old == new, (old, new)
    tokens = set(_tokens(_new(0, TOPICS[0])))
    assert not tokens & {"unsubscribe", "subscribed", "mailing", "listinfo", "groups", "via", "dev", "https"}
    assert not tokens & {"zzatttext", "zzattimage", "0t0", "v0", "mailman"}


def test_era_probe_stays_at_chance() -> None:
    docs, era = [], []
    for i, topic in enumerate(TOPICS * 3):
        for label, make in ((0, _old), (1, _new)):
            docs.append(model_document(extract_text(parse_message(make(i, topic)))))
            era.append(label)
    x = TfidfVectorizer(token_pattern=r"(?u)\b\w\w+\b", ngram_range=(1, 2), lowercase=False).fit_transform(docs)
    accuracy = cross_val_score(LogisticRegression(C=10, max_iter=1000), x, np.array(era), cv=4).mean()
    assert accuracy <= 0.6


def test_risky_attachment_kinds_still_count() -> None:
    raw = make_eml(body="see attached", attachments=[("invoice.html", "text/html", b"<form></form>")])
    assert "zzatthtml" in _tokens(raw)


def test_a_brand_after_via_stays_outside_lists() -> None:
    raw = make_eml(sender="Payment notice via PayPal <pay@evil.example>", body="pay now")
    assert "paypal" in _tokens(raw)
