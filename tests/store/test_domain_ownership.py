"""A domain belongs to one account: public suffixes, names with control characters and domains above or below
another account's are refused without naming it; API claims stay PENDING (no mail) until the DNS TXT record is
found; every change is audited. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from mailsec.services import Services
from mailsec.store.accounts import AlreadyExists
from mailsec.store.domains import ACTIVE, PENDING, DomainRefused, validate_transport


def two_accounts(services: Services) -> tuple[str, str]:
    return services.accounts.create_account("Owner").id, services.accounts.create_account("Intruder").id


def test_subdomains_and_parents_of_another_accounts_domain_are_refused(services: Services) -> None:
    owner, intruder = two_accounts(services)
    services.domains.add(owner, "corp.example", verified=True)
    for name in ("corp.example", "mail.corp.example", "a.b.corp.example", "CORP.example."):
        with pytest.raises(DomainRefused) as refused:
            services.domains.add(intruder, name, verified=True)
        assert owner not in str(refused.value) and "Owner" not in str(refused.value)
    services.domains.add(owner, "deep.sub.other.example", verified=True)
    with pytest.raises(DomainRefused):
        services.domains.add(intruder, "other.example", verified=True)  # would catch the rest of other.example
    assert services.domains.owner_of("ceo@mail.corp.example").account_id == owner  # type: ignore[union-attr]
    assert [d.domain for d in services.domains.list(intruder)] == []
    # the owner may protect its own subdomains, and is told plainly when it repeats itself
    services.domains.add(owner, "mail.corp.example", verified=True)
    with pytest.raises(AlreadyExists):
        services.domains.add(owner, "corp.example", verified=True)


@pytest.mark.parametrize("name", ["com", "co.uk", "github.io", "example", "localhost", "xn--p1ai"])
def test_public_suffixes_are_refused(services: Services, name: str) -> None:
    account, _ = two_accounts(services)
    with pytest.raises(DomainRefused, match="public suffix"):
        services.domains.add(account, name, verified=True)
    assert services.domains.owner_of(f"anyone@victim.{name}") is None


@pytest.mark.parametrize(
    "name",
    ["corp\x00.example", "corp.example\r\nX: y", "co rp.example", "corp\u200b.example", "-corp.example", "c%.example"],
)
def test_names_with_control_characters_or_bad_labels_are_refused(services: Services, name: str) -> None:
    account, _ = two_accounts(services)
    with pytest.raises(ValueError, match="not a domain name"):
        services.domains.add(account, name, verified=True)


def test_pending_domain_takes_no_mail_until_verified(services: Services) -> None:
    account, _ = two_accounts(services)
    pending = services.domains.add(account, "pending.example", mode="BCC")
    assert pending.status == PENDING and pending.verify_token
    assert pending.challenge_name == "_mailsec-challenge.pending.example"
    assert services.domains.owner_of("a@pending.example") is None
    lookups: list[str] = []

    def txt(name: str) -> list[str]:
        lookups.append(name)
        return ["v=spf1 -all"]

    assert services.domains.check_txt(account, pending.id, txt).status == PENDING  # type: ignore[union-attr]
    assert services.domains.check_txt(account, pending.id, txt).status == PENDING  # type: ignore[union-attr]
    assert lookups == ["_mailsec-challenge.pending.example"]  # the second ask came too soon: no lookup
    done = services.domains.mark_verified(account, pending.id, actor="cli")
    assert done.status == ACTIVE and done.verify_token is None
    assert services.domains.owner_of("a@pending.example").id == pending.id  # type: ignore[union-attr]


def test_a_pending_claim_does_not_hold_the_real_owners_domain(services: Services) -> None:
    owner, squatter = two_accounts(services)
    services.domains.add(squatter, "www.bank.example")  # pending: the squatter cannot publish the TXT record
    real = services.domains.add(owner, "bank.example")
    services.domains.mark_verified(owner, real.id)
    stuck = services.domains.list(squatter)[0]
    with pytest.raises(DomainRefused):
        services.domains.mark_verified(squatter, stuck.id)
    assert services.domains.owner_of("x@www.bank.example").account_id == owner  # type: ignore[union-attr]
    with pytest.raises(DomainRefused):  # the same name, pending elsewhere and fresh: refused
        services.domains.add(squatter, "bank.example")


def test_concurrent_overlapping_claims_leave_one_owner(services: Services) -> None:
    a, b = two_accounts(services)
    names = {a: "race.example", b: "mx.race.example"}
    outcome: dict[str, str] = {}

    def claim(account: str) -> None:
        try:
            services.domains.add(account, names[account], verified=True)
            outcome[account] = "ok"
        except DomainRefused:
            outcome[account] = "refused"

    for _ in range(5):
        threads = [threading.Thread(target=claim, args=(acc,)) for acc in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcome.values()) == ["ok", "refused"], outcome
        for acc in (a, b):
            for d in services.domains.list(acc):
                services.domains.delete(acc, d.id)
        outcome.clear()


def test_ownership_changes_are_audited(services: Services) -> None:
    owner, intruder = two_accounts(services)
    d = services.domains.add(owner, "audit.example", actor="token:abc")
    services.domains.mark_verified(owner, d.id, actor="cli")
    services.domains.update(owner, d.id, actor="token:abc", next_hop="smtp://mx.audit.example:25")
    with pytest.raises(DomainRefused):
        services.domains.add(intruder, "x.audit.example", actor="token:evil")
    services.domains.delete(owner, d.id, actor="token:abc")
    trail = [(e.account_id, e.domain, e.event, e.actor) for e in services.domains.audit()]
    assert trail == [
        (owner, "audit.example", "claimed", "token:abc"),
        (owner, "audit.example", "verified", "cli"),
        (owner, "audit.example", "updated", "token:abc"),
        (intruder, "x.audit.example", "claim_refused", "token:evil"),
        (owner, "audit.example", "deleted", "token:abc"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "file:///etc/passwd",
        "http://mx.example/",
        "smtp://user:pw@mx.example",
        "smtp://mx.example/path",
        "smtp://169.254.169.254:25",
        "smtp://0.0.0.0:25",
        "smtp://mx.example:99999",
        "not a host",
        "mx.example\r\n",
    ],
)
def test_transports_that_are_not_a_mail_hop_are_refused(services: Services, value: str) -> None:
    account, _ = two_accounts(services)
    with pytest.raises(ValueError, match="transport"):
        validate_transport(value)
    with pytest.raises(ValueError):
        services.domains.add(account, "t.example", next_hop=value, verified=True)
    assert services.domains.list(account) == []


@pytest.mark.parametrize(
    "value", ["", "mx.corp.example", "mx.corp.example:2525", "smtp://10.0.0.5:25", "lmtp://[::1]:24"]
)
def test_usable_transports_are_kept(value: str) -> None:
    assert validate_transport(value) == value
