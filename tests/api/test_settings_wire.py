"""Wire correctness of settings and domains against a live `mailsec serve` (SQLite and PostgreSQL), with the SDK 5.9
in strict mode: ids that are not plain ASCII digits never name an entry (path or batch body), ids are never handed
out twice, lookback_hops keeps the reference's range, domains batch and bulk delete, and total_count."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cloudflare
import httpx
import pytest
from api_helpers import fill, server_services
from cloudflare import Cloudflare

from mailsec.services import Services
from support import LiveServer, database_url, make_live_server, sdk_client

KIND_BODIES: dict[str, dict[str, Any]] = {
    "allow_policies": {
        "pattern": "ok.example",
        "pattern_type": "DOMAIN",
        "is_regex": False,
        "is_acceptable_sender": False,
        "is_exempt_recipient": False,
        "is_trusted_sender": True,
        "verify_sender": True,
    },
    "block_senders": {"pattern": "bad.example", "pattern_type": "DOMAIN", "is_regex": False},
    "trusted_domains": {"pattern": "partner.example", "is_recent": True, "is_regex": False, "is_similarity": False},
    "impersonation_registry": {"email": "ceo@corp.example", "is_email_regex": False, "name": "The CEO"},
    "url_ignore_patterns": {"pattern": "safe\\.example/"},
    "content_policies": {"enabled": True, "name": "words", "pattern": "wire transfer", "targets": ["BODY"]},
    "sending_domain_restrictions": {"domain": "corp.example", "exclude": []},
}
DOMAIN_BODY = {"allowed_delivery_modes": ["DIRECT"], "drop_dispositions": [], "ip_restrictions": [], "regions": []}
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x660 + i) for i in range(10)))


@dataclass
class Live:
    server: LiveServer
    services: Services
    account: str
    token: str

    def client(self) -> Cloudflare:
        return sdk_client(self.server.base_url, self.token)

    def http(self) -> httpx.Client:
        base = f"{self.server.base_url}/accounts/{self.account}/email-security"
        return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp(f"wire-{request.param}")
    url = database_url(request, tmp)
    server = make_live_server(tmp / "live", url)
    services = server_services(server)
    account = services.accounts.create_account("Wire").id
    server.start()
    yield Live(server, services, account, services.accounts.create_token(account))
    server.stop()
    services.close()


def spellings_of(entry_id: str) -> list[str]:
    """Paths that must not reach entry `entry_id` (percent-encoded where not ASCII)."""
    other_script = entry_id.translate(ARABIC_INDIC)
    return [
        "%C2%B2",  # superscript two: isdigit() but int() fails
        "".join(f"%{b:02X}" for b in other_script.encode()),  # int() reads it as the entry's own number
        "0" + entry_id,
        "+" + entry_id,
        "%20" + entry_id,
        "9" * 25,
    ]


def assert_not_found(r: httpx.Response) -> None:
    assert r.status_code == 404, r.text
    assert r.json()["success"] is False and r.json()["errors"][0]["code"] == 7003


def test_ids_not_in_plain_ascii_digits_are_404_everywhere(live: Live) -> None:
    with live.http() as http:
        for segment, body in [*KIND_BODIES.items(), ("domains", {**DOMAIN_BODY, "domain": "ids.example"})]:
            created = http.post(f"/settings/{segment}", json=body)
            assert created.status_code == 200, created.text
            entry_id = created.json()["result"]["id"]
            for bad in spellings_of(entry_id):
                assert_not_found(http.get(f"/settings/{segment}/{bad}"))
                assert_not_found(http.patch(f"/settings/{segment}/{bad}", json={}))
                assert_not_found(http.delete(f"/settings/{segment}/{bad}"))
            for bad in (entry_id.translate(ARABIC_INDIC), "\u00b2", "0" + entry_id):
                batch = {"deletes": [{"id": bad}], "patches": [], "puts": [], "posts": []}
                assert_not_found(http.post(f"/settings/{segment}/batch", json=batch))
                batch = {"deletes": [], "patches": [{"id": bad}], "puts": [], "posts": []}
                assert_not_found(http.post(f"/settings/{segment}/batch", json=batch))
            for wrong_type in (True, 1.0, 1.5, None):  # never coerced to entry 1
                batch = {"deletes": [{"id": wrong_type}], "patches": [], "puts": [], "posts": []}
                r = http.post(f"/settings/{segment}/batch", json=batch)
                assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"].startswith("/deletes/0/id")
            still = http.get(f"/settings/{segment}/{entry_id}")
            assert still.status_code == 200 and still.json()["result"]["id"] == entry_id
            assert http.delete(f"/settings/{segment}/{entry_id}").status_code == 200


def test_ids_are_never_handed_out_twice(live: Live) -> None:
    cf = live.client().email_security.settings
    seen: list[str] = []
    for _ in range(2):
        allow = cf.allow_policies.create(account_id=live.account, **KIND_BODIES["allow_policies"])
        block = cf.block_senders.create(account_id=live.account, **KIND_BODIES["block_senders"])
        domain = cf.domains.create(account_id=live.account, domain="seq.example", **DOMAIN_BODY)
        assert allow is not None and block is not None and domain is not None
        seen += [allow.id, block.id, domain.id]
        cf.allow_policies.delete(allow.id, account_id=live.account)
        cf.block_senders.delete(block.id, account_id=live.account)
        cf.domains.delete(domain.id, account_id=live.account)
    assert len(set(seen)) == len(seen), seen


def test_lookback_hops_keeps_the_reference_range(live: Live) -> None:
    domains = live.client().email_security.settings.domains
    with live.http() as http:
        for bad in (0, 21, -1):
            r = http.post("/settings/domains", json={**DOMAIN_BODY, "domain": "hops.example", "lookback_hops": bad})
            assert r.status_code == 400, r.text
            assert "from 1 to 20" in r.json()["errors"][0]["message"]
            assert r.json()["errors"][0]["source"]["pointer"] == "/lookback_hops"
    made = domains.create(account_id=live.account, domain="hops.example", **DOMAIN_BODY)
    assert made is not None and made.lookback_hops == 1
    for hops in (1, 20, 7):
        edited = domains.edit(made.id, account_id=live.account, lookback_hops=hops)
        assert edited is not None and edited.lookback_hops == hops
        got = domains.get(made.id, account_id=live.account)
        assert got is not None and got.lookback_hops == hops
    with pytest.raises(cloudflare.BadRequestError, match="from 1 to 20"):
        domains.edit(made.id, account_id=live.account, lookback_hops=0)
    domains.delete(made.id, account_id=live.account)


@pytest.mark.filterwarnings("ignore:This endpoint is deprecated:DeprecationWarning")
def test_domains_batch_and_bulk_delete_in_strict_sdk(live: Live) -> None:
    domains = live.client().email_security.settings.domains
    a = domains.create(
        account_id=live.account, domain="a.batch.example", transport="smtp://127.0.0.1:2526", **DOMAIN_BODY
    )
    b = domains.create(account_id=live.account, domain="b.batch.example", **DOMAIN_BODY)
    c = domains.create(account_id=live.account, domain="c.batch.example", **DOMAIN_BODY)
    assert a is not None and b is not None and c is not None
    result = domains.batch(
        account_id=live.account,
        deletes=[{"id": c.id}],
        patches=[{"id": a.id, "lookback_hops": 3, "drop_dispositions": ["SPAM"]}],
        puts=[{"id": b.id, "allowed_delivery_modes": ["BCC"], "drop_dispositions": [], "ip_restrictions": [],
               "regions": ["GLOBAL"]}],
        posts=[{"domain": "d.batch.example", "allowed_delivery_modes": ["JOURNAL"], "drop_dispositions": [],
                "ip_restrictions": ["192.0.2.0/24"], "regions": []}],
    )  # fmt: skip
    assert result is not None
    assert [d.id for d in result.deletes] == [c.id]
    assert [(p.id, p.lookback_hops, p.drop_dispositions, p.transport) for p in result.patches] == [
        (a.id, 3, ["SPAM"], "smtp://127.0.0.1:2526")
    ]
    assert [(p.id, p.allowed_delivery_modes) for p in result.puts] == [(b.id, ["BCC"])]
    assert [(p.domain, p.allowed_delivery_modes) for p in result.posts] == [("d.batch.example", ["JOURNAL"])]
    names = sorted(d.domain for d in domains.list(account_id=live.account))
    assert names == ["a.batch.example", "b.batch.example", "d.batch.example"]
    # Checked before anything changes: one unknown id and nothing is applied.
    with pytest.raises(cloudflare.NotFoundError):
        domains.batch(account_id=live.account, deletes=[{"id": a.id}, {"id": c.id}], patches=[], puts=[], posts=[])
    assert domains.get(a.id, account_id=live.account) is not None
    # Bulk delete removes exactly the named domains, and never "all of them" for a bare call.
    with pytest.raises(cloudflare.BadRequestError):
        list(domains.bulk_delete(account_id=live.account))
    d_id = next(d.id for d in domains.list(account_id=live.account) if d.domain == "d.batch.example")
    with pytest.raises(cloudflare.NotFoundError):
        list(domains.bulk_delete(account_id=live.account, extra_body={"ids": [a.id, c.id]}))
    assert len(list(domains.list(account_id=live.account))) == 3
    gone = list(domains.bulk_delete(account_id=live.account, extra_body={"ids": [a.id, b.id]}))
    assert [g.id for g in gone] == [a.id, b.id]
    gone = list(domains.bulk_delete(account_id=live.account, extra_query={"id": [d_id]}))
    assert [g.id for g in gone] == [d_id]
    assert list(domains.list(account_id=live.account)) == []


def test_total_count_is_exact_when_one_page_holds_the_result(live: Live) -> None:
    fill(live.server, live.account, 3, prefix="countme")
    with live.http() as http:
        params = {"detections_only": "false", "query": "countme"}
        whole = http.get("/investigate", params={**params, "per_page": 10}).json()["result_info"]
        assert (whole["count"], whole["total_count"]) == (3, 3)
        first = http.get("/investigate", params={**params, "per_page": 2}).json()["result_info"]
        assert (first["count"], first["total_count"]) == (2, 0)
        later = http.get("/investigate", params={**params, "per_page": 2, "page": 2}).json()["result_info"]
        assert (later["count"], later["total_count"]) == (1, 0)
    settings = live.client().email_security.settings.block_senders
    for n in range(3):
        settings.create(account_id=live.account, **{**KIND_BODIES["block_senders"], "pattern": f"b{n}.example"})
    with live.http() as http:
        info = http.get("/settings/block_senders", params={"per_page": 2}).json()["result_info"]
    assert (info["count"], info["total_count"]) == (2, 3)


def test_domains_batch_refuses_a_taken_name_before_changing_anything(live: Live) -> None:
    with live.http() as http:
        keep = http.post("/settings/domains", json={**DOMAIN_BODY, "domain": "keep.batch.example"}).json()["result"]
        taken = http.post("/settings/domains", json={**DOMAIN_BODY, "domain": "taken.batch.example"}).json()["result"]
        post = {**DOMAIN_BODY, "domain": "Taken.Batch.Example"}
        r = http.post(
            "/settings/domains/batch",
            json={"deletes": [{"id": keep["id"]}], "patches": [], "puts": [], "posts": [post]},
        )
        assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"] == "/posts/0/domain", r.text
        twice = {**DOMAIN_BODY, "domain": "new.batch.example"}
        r = http.post(
            "/settings/domains/batch", json={"deletes": [], "patches": [], "puts": [], "posts": [twice, twice]}
        )
        assert r.status_code == 400 and r.json()["errors"][0]["source"]["pointer"] == "/posts/1/domain"
        listed = {d["domain"] for d in http.get("/settings/domains").json()["result"]}
        assert listed == {"keep.batch.example", "taken.batch.example"}
        # Deleting a domain and protecting it again in one batch is allowed: deletes run first.
        r = http.post(
            "/settings/domains/batch",
            json={
                "deletes": [{"id": taken["id"]}, {"id": int(taken["id"])}],
                "patches": [],
                "puts": [],
                "posts": [post],
            },
        )
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        assert [d["id"] for d in result["deletes"]] == [taken["id"]]
        assert result["posts"][0]["domain"] == "taken.batch.example" and result["posts"][0]["id"] != taken["id"]
        for d in http.get("/settings/domains").json()["result"]:
            assert http.delete(f"/settings/domains/{d['id']}").status_code == 200
