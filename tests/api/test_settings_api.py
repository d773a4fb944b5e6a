"""The settings API driven by the official SDK (5.9 in strict mode here, 4.3 in a subprocess) against a live
`mailsec serve`: CRUD and batch for every settings kind, pages, protected domains, account isolation, the
read-only scope; and the policies changing the verdicts of messages ingested afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cloudflare
import httpx
import pytest
from api_helpers import sdk4_path, server_services
from cloudflare import Cloudflare

from mailsec.pipeline import process_message
from mailsec.services import Services
from support import LiveServer, database_url, make_eml, make_live_server, sdk_client

HAM = (
    "Hello from the Gardening Club!\n\nThis month we planted tomatoes and basil in the community garden. The next "
    "meeting is on Saturday at ten in the library hall, where Anna will talk about composting. Bring your own seeds "
    "for the swap table.\n\nSee you there,\nThe Gardening Club committee\n"
)
BULK_HEADERS = {"List-Unsubscribe": "<mailto:u@club.example>", "Precedence": "bulk", "List-Id": "news.club.example"}
EXE = ("report.exe", "application/octet-stream", b"MZ\x90\x00" + b"\x00" * 200)


@dataclass
class Site:
    live: LiveServer
    services: Services  # the live server's own database, opened here: ingest runs the real pipeline in-process
    account: str
    token: str
    read_token: str
    other_account: str
    other_token: str

    def client(self, token: str | None = None) -> Cloudflare:
        return sdk_client(self.live.base_url, token or self.token)

    def url(self, path: str, account: str | None = None) -> str:
        return f"{self.live.base_url}/accounts/{account or self.account}/email-security/settings/{path}"

    def ingest(self, name: str, raw: bytes) -> dict[str, Any]:
        """Store one message through the pipeline (it reads the policy the server wrote) and read it via the API."""
        stored = process_message(self.services, raw, self.account, dedupe=False)
        got = self.client().email_security.investigate.get(stored.id, account_id=self.account)
        assert got.subject == name
        return got.model_dump(mode="json", by_alias=True)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"settings-{request.param}")
    url = database_url(request, tmp)
    live = make_live_server(tmp / "live", url)
    services = server_services(live)
    account = services.accounts.create_account("Settings").id
    other = services.accounts.create_account("Other").id
    site = Site(
        live,
        services,
        account,
        services.accounts.create_token(account),
        services.accounts.create_token(account, can_write=False),
        other,
        services.accounts.create_token(other),
    )
    live.start()
    yield site
    live.stop()
    services.close()


def allow_body(pattern: str, **flags: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "is_acceptable_sender": False,
        "is_exempt_recipient": False,
        "is_regex": False,
        "is_trusted_sender": False,
        "pattern": pattern,
        "pattern_type": "EMAIL",
        "verify_sender": False,
    }
    body.update(flags)
    return body


def test_allow_policies_crud(site: Site) -> None:
    ap = site.client().email_security.settings.allow_policies
    created = ap.create(account_id=site.account, comments="vendor", **allow_body("billing@vendor.example"))
    assert created is not None
    assert created.pattern == "billing@vendor.example" and created.pattern_type == "EMAIL"
    assert created.comments == "vendor" and created.verify_sender is False and created.is_trusted_sender is False
    assert created.id.isdigit() and created.created_at.tzinfo is not None
    got = ap.get(created.id, account_id=site.account)
    assert got is not None and got.model_dump() == created.model_dump()
    edited = ap.edit(created.id, account_id=site.account, is_acceptable_sender=True, comments=None)
    assert edited is not None
    assert edited.is_acceptable_sender is True and edited.is_spoof is True  # the deprecated alias mirrors it
    assert edited.comments is None and edited.pattern == "billing@vendor.example"
    assert edited.modified_at is not None and edited.modified_at > created.created_at
    listed = list(ap.list(account_id=site.account, is_acceptable_sender=True))
    assert created.id in [p.id for p in listed]
    assert created.id not in [p.id for p in ap.list(account_id=site.account, is_acceptable_sender=False)]
    assert [p.id for p in ap.list(account_id=site.account, search="VENDOR.example")] == [created.id]
    deleted = ap.delete(created.id, account_id=site.account)
    assert deleted is not None and deleted.id == created.id
    with pytest.raises(cloudflare.NotFoundError):
        ap.get(created.id, account_id=site.account)
    with pytest.raises(cloudflare.NotFoundError):
        ap.delete(created.id, account_id=site.account)


def test_every_other_kind_crud(site: Site) -> None:
    s = site.client().email_security.settings
    acc = site.account
    cases: list[tuple[Any, dict[str, Any], dict[str, Any], str]] = [
        (
            s.block_senders,
            {"is_regex": False, "pattern": "spam.example", "pattern_type": "DOMAIN"},
            {"is_regex": True},
            "pattern",
        ),
        (
            s.trusted_domains,
            {"is_recent": True, "is_regex": False, "is_similarity": False, "pattern": "partner.example"},
            {"is_similarity": True},
            "pattern",
        ),
        (
            s.impersonation_registry,
            {"email": "ceo@corp.example", "is_email_regex": False, "name": "Chief Executive"},
            {"name": "CEO"},
            "email",
        ),
        (s.url_ignore_patterns, {"pattern": "https://intranet.corp.example/"}, {"comments": "intranet"}, "pattern"),
        (
            s.content_policies,
            {"enabled": True, "name": "wire", "pattern": "wire transfer", "targets": ["SUBJECT", "BODY"]},
            {"enabled": False},
            "pattern",
        ),
        (
            s.sending_domain_restrictions,
            {"domain": "corp.example", "exclude": ["legacy.corp.example"]},
            {"exclude": []},
            "domain",
        ),
    ]
    for resource, body, patch, key in cases:
        created = resource.create(account_id=acc, **body)
        assert created is not None and getattr(created, key) == body[key], resource
        got = resource.get(created.id, account_id=acc)
        assert got is not None and got.id == created.id
        edited = resource.edit(created.id, account_id=acc, **patch)
        assert edited is not None
        for k, v in patch.items():
            assert getattr(edited, k) == v, (resource, k)
        assert getattr(edited, key) == body[key]
        assert created.id in [x.id for x in resource.list(account_id=acc)]
        resource.delete(created.id, account_id=acc)
        assert created.id not in [x.id for x in resource.list(account_id=acc)]
        with pytest.raises(cloudflare.NotFoundError):
            resource.get(created.id, account_id=acc)


def test_batch_is_ordered_and_atomic(site: Site) -> None:
    bs = site.client().email_security.settings.block_senders
    acc = site.account
    a = bs.create(account_id=acc, is_regex=False, pattern="a@batch.example", pattern_type="EMAIL")
    b = bs.create(account_id=acc, is_regex=False, pattern="b@batch.example", pattern_type="EMAIL")
    c = bs.create(account_id=acc, is_regex=False, pattern="c@batch.example", pattern_type="EMAIL")
    assert a and b and c
    result = bs.batch(
        account_id=acc,
        deletes=[{"id": a.id}],
        patches=[{"id": b.id, "comments": "patched"}],  # type: ignore[typeddict-unknown-key]
        puts=[{"id": c.id, "is_regex": True, "pattern": r"c\d+@batch\.example", "pattern_type": "EMAIL"}],  # type: ignore[typeddict-unknown-key]
        posts=[{"is_regex": False, "pattern": "d@batch.example", "pattern_type": "EMAIL"}],
    )
    assert result is not None
    assert [d.id for d in result.deletes or []] == [a.id]
    assert [(p.id, p.comments, p.pattern) for p in result.patches or []] == [(b.id, "patched", "b@batch.example")]
    assert [(p.id, p.is_regex, p.pattern) for p in result.puts or []] == [(c.id, True, r"c\d+@batch\.example")]
    assert [p.pattern for p in result.posts or []] == ["d@batch.example"]
    patterns = {p.pattern for p in bs.list(account_id=acc, search="@batch")}
    assert patterns == {"b@batch.example", r"c\d+@batch\.example", "d@batch.example"}
    # One unknown id and nothing happens, not even the creations listed with it.
    with pytest.raises(cloudflare.NotFoundError):
        bs.batch(
            account_id=acc,
            deletes=[{"id": b.id}, {"id": a.id}],
            patches=[],
            puts=[],
            posts=[{"is_regex": False, "pattern": "e@batch.example", "pattern_type": "EMAIL"}],
        )
    assert {p.pattern for p in bs.list(account_id=acc, search="@batch")} == patterns
    # Invalid entries are a 400 before anything is written.
    with pytest.raises(cloudflare.BadRequestError):
        bs.batch(
            account_id=acc,
            deletes=[{"id": b.id}],
            patches=[],
            puts=[],
            posts=[{"is_regex": True, "pattern": "([unclosed", "pattern_type": "EMAIL"}],
        )
    assert {p.pattern for p in bs.list(account_id=acc, search="@batch")} == patterns
    for p in bs.list(account_id=acc, search="@batch"):
        bs.delete(p.id, account_id=acc)


def test_pages_and_order(site: Site) -> None:
    tds = site.client().email_security.settings.trusted_domains
    acc = site.account
    made = tds.batch(
        account_id=acc,
        deletes=[],
        patches=[],
        puts=[],
        posts=[
            {"is_recent": False, "is_regex": False, "is_similarity": True, "pattern": f"p{i:02d}.paging.example"}
            for i in range(25)
        ],
    )
    assert made is not None and len(made.posts or []) == 25
    every = [t.pattern for t in tds.list(account_id=acc, per_page=10, search="paging.example")]
    assert every == [f"p{i:02d}.paging.example" for i in range(25)]  # the auto-pager walked pages 1, 2, 3, 4 (empty)
    third = tds.list(account_id=acc, per_page=10, page=3, search="paging.example")
    assert [t.pattern for t in third.result] == [f"p{i:02d}.paging.example" for i in range(20, 25)]
    assert third.result_info is not None and third.result_info.page == 3 and third.result_info.per_page == 10
    assert tds.list(account_id=acc, per_page=10, page=4, search="paging.example").result == []
    desc = tds.list(account_id=acc, per_page=3, order="pattern", direction="desc", search="paging.example")
    assert [t.pattern for t in desc.result] == ["p24.paging.example", "p23.paging.example", "p22.paging.example"]
    tds.batch(account_id=acc, deletes=[{"id": p.id} for p in made.posts or []], patches=[], puts=[], posts=[])
    assert list(tds.list(account_id=acc, search="paging.example")) == []


def test_bad_input_is_a_clear_400(site: Site) -> None:
    ap = site.client().email_security.settings.allow_policies
    for body in (
        allow_body("not-an-address"),
        allow_body("([", is_regex=True),
        allow_body("300.1.2.3", pattern_type="IP"),
        allow_body("exa mple.com", pattern_type="DOMAIN"),
    ):
        with pytest.raises(cloudflare.BadRequestError):
            ap.create(account_id=site.account, **body)
    r = httpx.post(site.url("allow_policies"), headers={"Authorization": f"Bearer {site.token}"}, json={"pattern": 1})
    assert r.status_code == 400 and r.json()["success"] is False and r.json()["errors"][0]["code"] >= 1000
    created = ap.create(account_id=site.account, **allow_body("ok@vendor.example"))
    assert created is not None
    with pytest.raises(cloudflare.BadRequestError):  # the merged entry is checked: an address is not a domain
        ap.edit(created.id, account_id=site.account, pattern_type="DOMAIN")
    ap.delete(created.id, account_id=site.account)
    for bad_id in ("abc", "99999999999999999999999", "-1"):
        r = httpx.get(site.url(f"allow_policies/{bad_id}"), headers={"Authorization": f"Bearer {site.token}"})
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == 7003


def test_accounts_are_isolated_and_read_only_cannot_write(site: Site) -> None:
    mine = site.client().email_security.settings.block_senders
    entry = mine.create(account_id=site.account, is_regex=False, pattern="iso@x.example", pattern_type="EMAIL")
    assert entry is not None
    theirs = site.client(site.other_token).email_security.settings.block_senders
    with pytest.raises(cloudflare.PermissionDeniedError):  # another account's credential on my account
        theirs.list(account_id=site.account)
    for call in (
        lambda: theirs.get(entry.id, account_id=site.other_account),
        lambda: theirs.edit(entry.id, account_id=site.other_account, comments="x"),
        lambda: theirs.delete(entry.id, account_id=site.other_account),
    ):
        with pytest.raises(cloudflare.NotFoundError):  # my id under their account: not found, not my data
            call()
    assert list(theirs.list(account_id=site.other_account)) == []
    ro = site.client(site.read_token).email_security.settings.block_senders
    assert entry.id in [b.id for b in ro.list(account_id=site.account)]
    assert ro.get(entry.id, account_id=site.account) is not None
    for call in (
        lambda: ro.create(account_id=site.account, is_regex=False, pattern="ro@x.example", pattern_type="EMAIL"),
        lambda: ro.edit(entry.id, account_id=site.account, comments="x"),
        lambda: ro.delete(entry.id, account_id=site.account),
        lambda: ro.batch(account_id=site.account, deletes=[{"id": entry.id}], patches=[], puts=[], posts=[]),
    ):
        with pytest.raises(cloudflare.PermissionDeniedError):
            call()
    with pytest.raises(cloudflare.PermissionDeniedError):
        site.client(site.read_token).email_security.settings.domains.delete("1", account_id=site.account)
    assert mine.get(entry.id, account_id=site.account) is not None
    mine.delete(entry.id, account_id=site.account)


def test_domains(site: Site) -> None:
    # the mail administrator's way in: the domain repository behind the CLI
    admin_made = site.services.domains.add(
        site.account, "mail.corp.example", mode="BCC", next_hop="mx.corp.example:25", verified=True
    )
    d = site.client().email_security.settings.domains
    acc = site.account
    got = d.get(str(admin_made.id), account_id=acc)
    assert got is not None
    assert (got.domain, got.allowed_delivery_modes, got.transport) == (
        "mail.corp.example",
        ["BCC"],
        "mx.corp.example:25",
    )
    created = d.create(
        account_id=acc,
        domain="Corp2.Example",
        allowed_delivery_modes=["DIRECT"],
        drop_dispositions=["MALICIOUS"],
        ip_restrictions=["192.0.2.0/24"],
        regions=["GLOBAL"],
        transport="smtp.corp2.example",
    )
    assert created is not None and created.domain == "corp2.example" and created.drop_dispositions == ["MALICIOUS"]
    with pytest.raises(cloudflare.BadRequestError):  # already protected
        d.create(
            account_id=acc,
            domain="corp2.example",
            allowed_delivery_modes=["DIRECT"],
            drop_dispositions=[],
            ip_restrictions=[],
            regions=["GLOBAL"],
        )
    edited = d.edit(created.id, account_id=acc, allowed_delivery_modes=["JOURNAL"], lookback_hops=2)
    assert edited is not None and edited.allowed_delivery_modes == ["JOURNAL"] and edited.lookback_hops == 2
    assert edited.drop_dispositions == ["MALICIOUS"] and edited.transport == "smtp.corp2.example"
    names = [x.domain for x in d.list(account_id=acc)]
    assert names == ["mail.corp.example", "corp2.example"]
    assert [x.domain for x in d.list(account_id=acc, allowed_delivery_mode="JOURNAL")] == ["corp2.example"]
    with pytest.raises(cloudflare.NotFoundError):
        site.client(site.other_token).email_security.settings.domains.get(created.id, account_id=site.other_account)
    for x in (created.id, str(admin_made.id)):
        d.delete(x, account_id=acc)
    assert list(d.list(account_id=acc)) == []
    with pytest.raises(cloudflare.NotFoundError):
        d.get(created.id, account_id=acc)


# -- policies drive the verdict ------------------------------------------------------------------------------------


def test_block_policy_makes_ingested_mail_malicious(site: Site) -> None:
    s = site.client().email_security.settings
    before = site.ingest(
        "garden news before block", make_eml(subject="garden news before block", sender="news@club.example", body=HAM)
    )
    assert before["final_disposition"] != "MALICIOUS"
    entry = s.block_senders.create(
        account_id=site.account, is_regex=False, pattern="club.example", pattern_type="DOMAIN"
    )
    assert entry is not None
    try:
        after = site.ingest(
            "garden news after block", make_eml(subject="garden news after block", sender="news@club.example", body=HAM)
        )
        assert after["final_disposition"] == "MALICIOUS"
        assert after["properties"]["blocklisted_pattern"] == "club.example"
        assert after["properties"]["blocklisted_message"] is True
        assert "Blocklisted" in after["threat_categories"]
        other = site.ingest(
            "garden news other sender",
            make_eml(subject="garden news other sender", sender="news@club-other.example", body=HAM),
        )
        assert other["properties"].get("blocklisted_pattern") is None
    finally:
        s.block_senders.delete(entry.id, account_id=site.account)


def test_acceptable_sender_exempts_bulk(site: Site) -> None:
    s = site.client().email_security.settings

    def bulk(subject: str, sender: str = "news@club.example") -> bytes:
        return make_eml(subject=subject, sender=sender, body=HAM, headers=BULK_HEADERS)

    before = site.ingest("club bulk before", bulk("club bulk before"))
    assert before["final_disposition"] == "BULK", before["findings"]
    entry = s.allow_policies.create(
        account_id=site.account, **allow_body("news@club.example", is_acceptable_sender=True)
    )
    assert entry is not None
    try:
        after = site.ingest("club bulk after", bulk("club bulk after"))
        assert after["final_disposition"] == "NONE"
        assert after["properties"]["allowlisted_pattern"] == "news@club.example"
        assert after["properties"]["allowlisted_pattern_type"] == "acceptable_sender"
        assert any("exempts it from SPOOF, SPAM and BULK" in r for r in after["detection_reasons"])
        other = site.ingest("club bulk stranger", bulk("club bulk stranger", sender="someone@club.example"))
        assert other["final_disposition"] == "BULK"
        # With verify_sender on, an unauthenticated sender is not honoured (no SPF/DKIM/DMARC pass here).
        s.allow_policies.edit(entry.id, account_id=site.account, verify_sender=True)
        unverified = site.ingest("club bulk unverified", bulk("club bulk unverified"))
        assert unverified["final_disposition"] == "BULK"
    finally:
        s.allow_policies.delete(entry.id, account_id=site.account)


def test_trusted_sender_clears_malicious(site: Site) -> None:
    s = site.client().email_security.settings

    def exe(subject: str) -> bytes:
        return make_eml(subject=subject, sender="it@partner.example", body=HAM, attachments=[EXE])

    before = site.ingest("partner tool before", exe("partner tool before"))
    assert before["final_disposition"] == "MALICIOUS"
    acceptable = s.allow_policies.create(
        account_id=site.account, **allow_body("partner.example", pattern_type="DOMAIN", is_acceptable_sender=True)
    )
    assert acceptable is not None
    mid = site.ingest("partner tool acceptable", exe("partner tool acceptable"))
    assert mid["final_disposition"] == "MALICIOUS"  # acceptable senders are still held to MALICIOUS
    s.allow_policies.delete(acceptable.id, account_id=site.account)
    trusted = s.allow_policies.create(
        account_id=site.account, **allow_body(r"it@partner\.example", is_regex=True, is_trusted_sender=True)
    )
    assert trusted is not None
    try:
        after = site.ingest("partner tool trusted", exe("partner tool trusted"))
        assert after["final_disposition"] == "NONE"
        assert after["properties"]["allowlisted_pattern_type"] == "allowed_sender"
        assert any("trusted" in r for r in after["detection_reasons"])
    finally:
        s.allow_policies.delete(trusted.id, account_id=site.account)


def test_trusted_domain_similarity_lifts_a_lookalike_spoof(site: Site) -> None:
    s = site.client().email_security.settings
    acc = site.account
    site.services.domains.add(acc, "acmebank.example", mode="DIRECT", next_hop="mx.acmebank.example:25")

    def partner(subject: str) -> bytes:
        return make_eml(subject=subject, sender='"Billing" <billing@acmebenk.example>', body=HAM)

    before = site.ingest("partner invoice before trust", partner("partner invoice before trust"))
    assert before["final_disposition"] == "SPOOF", before["findings"]
    assert any("acmebank.example" in r for r in before["detection_reasons"])
    recent_only = s.trusted_domains.create(
        account_id=acc, is_recent=True, is_regex=False, is_similarity=False, pattern="acmebenk.example"
    )
    assert recent_only is not None
    mid = site.ingest("partner invoice recent only", partner("partner invoice recent only"))
    assert mid["final_disposition"] == "SPOOF"  # is_recent does not excuse a lookalike
    similar = s.trusted_domains.create(
        account_id=acc, is_recent=False, is_regex=False, is_similarity=True, pattern="acmebenk.example"
    )
    assert similar is not None
    try:
        after = site.ingest("partner invoice trusted", partner("partner invoice trusted"))
        assert after["final_disposition"] == "NONE", after["findings"]
        names = {f["name"] for f in after["findings"]}
        assert "TRUSTED_DOMAIN_SIMILARITY" in names and "SENDER_LOOKALIKE_PROTECTED_DOMAIN" not in names
        stranger = site.ingest(
            "stranger invoice",
            make_eml(subject="stranger invoice", sender='"Billing" <billing@acrnebank.example>', body=HAM),
        )
        assert stranger["final_disposition"] in ("SPOOF", "MALICIOUS-BEC")
    finally:
        for entry in (recent_only, similar):
            s.trusted_domains.delete(entry.id, account_id=acc)


# -- SDK 4.3 ---------------------------------------------------------------------------------------------------------


SDK4_SCRIPT = """
import json, sys
import cloudflare
from cloudflare import Cloudflare
assert cloudflare.__version__.startswith("4.3"), cloudflare.__version__
req = json.load(sys.stdin)
c = Cloudflare(api_token=req["token"], base_url=req["base_url"], _strict_response_validation=True, max_retries=0)
s, acc, out = c.email_security.settings, req["account"], {}
ap = s.allow_policies.create(account_id=acc, is_acceptable_sender=True, is_exempt_recipient=False, is_regex=False,
    is_trusted_sender=False, pattern="sdk4@vendor.example", pattern_type="EMAIL", verify_sender=False)
out["allow_id"] = ap.id
out["allow_get"] = s.allow_policies.get(ap.id, account_id=acc).pattern
out["allow_edit"] = s.allow_policies.edit(ap.id, account_id=acc, comments="four").comments
out["allow_list"] = [p.id for p in s.allow_policies.list(account_id=acc, per_page=5)]
bs = s.block_senders.create(account_id=acc, is_regex=False, pattern="bad4.example", pattern_type="DOMAIN")
out["block_list"] = [p.pattern for p in s.block_senders.list(account_id=acc)]
td = s.trusted_domains.create(account_id=acc, is_recent=True, is_regex=False, is_similarity=False, pattern="t4.example")
out["trusted_list"] = [p.pattern for p in s.trusted_domains.list(account_id=acc)]
im = s.impersonation_registry.create(account_id=acc, email="cfo@corp.example", is_email_regex=False, name="CFO")
out["imp_list"] = [p.email for p in s.impersonation_registry.list(account_id=acc)]
out["domains"] = [d.domain for d in s.domains.list(account_id=acc)]
for res, x in ((s.allow_policies, ap), (s.block_senders, bs), (s.trusted_domains, td), (s.impersonation_registry, im)):
    res.delete(x.id, account_id=acc)
print(json.dumps(out))
"""


def test_sdk4_settings(site: Site) -> None:
    import json
    import os
    import subprocess
    import sys

    path = sdk4_path()
    dom = site.services.domains.add(site.account, "sdk4.corp.example")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
    req = {"token": site.token, "base_url": site.live.base_url, "account": site.account}
    proc = subprocess.run(
        [sys.executable, "-c", SDK4_SCRIPT], input=json.dumps(req), capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert isinstance(out["allow_id"], int)
    assert out["allow_get"] == "sdk4@vendor.example" and out["allow_edit"] == "four"
    assert out["allow_id"] in out["allow_list"]
    assert "bad4.example" in out["block_list"] and "t4.example" in out["trusted_list"]
    assert "cfo@corp.example" in out["imp_list"] and "sdk4.corp.example" in out["domains"]
    site.client().email_security.settings.domains.delete(str(dom.id), account_id=site.account)
