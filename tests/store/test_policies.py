"""The settings rows behind the API and the scanner's cached `Policy`, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from mailsec.services import Services
from mailsec.store import policies as kinds
from mailsec.store.policies import PolicyNotFound, PolicyRepo


def test_crud_is_scoped_by_account_and_kind(services: Services) -> None:
    a = services.accounts.create_account("A").id
    b = services.accounts.create_account("B").id
    repo = services.policies
    row = repo.create(a, kinds.BLOCK, {"pattern": "x.example", "pattern_type": "DOMAIN", "is_regex": False})
    assert repo.get(a, kinds.BLOCK, row.id) == row
    assert repo.get(b, kinds.BLOCK, row.id) is None
    assert repo.get(a, kinds.ALLOW, row.id) is None
    assert repo.get(a, kinds.BLOCK, "junk") is None and repo.get(a, kinds.BLOCK, "9" * 40) is None
    assert repo.update(b, kinds.BLOCK, row.id, {"comments": "x"}) is None
    assert not repo.delete(b, kinds.BLOCK, row.id)
    patched = repo.update(a, kinds.BLOCK, row.id, {"comments": "c"})
    assert patched is not None and patched.data["pattern"] == "x.example" and patched.updated_us > row.updated_us
    replaced = repo.update(a, kinds.BLOCK, row.id, {"pattern": "y.example"}, replace=True)
    assert replaced is not None and replaced.data == {"pattern": "y.example"}
    assert repo.delete(a, kinds.BLOCK, row.id) and repo.list(a, kinds.BLOCK) == []


def test_batch_rolls_back_on_unknown_id(services: Services) -> None:
    a = services.accounts.create_account("A").id
    repo = services.policies
    keep = repo.create(a, kinds.URL_IGNORE, {"pattern": "https://a.example/"})
    with pytest.raises(PolicyNotFound):
        repo.batch(
            a, kinds.URL_IGNORE, deletes=[keep.id], posts=[{"pattern": "https://b.example/"}], patches=[(12345, {})]
        )
    assert [r.data["pattern"] for r in repo.list(a, kinds.URL_IGNORE)] == ["https://a.example/"]
    out = repo.batch(a, kinds.URL_IGNORE, deletes=[keep.id], posts=[{"pattern": "https://b.example/"}])
    assert out.deletes == [keep.id] and [r.data["pattern"] for r in repo.list(a, kinds.URL_IGNORE)] == [
        "https://b.example/"
    ]


def test_policy_cache_sees_writes_from_another_repo(services: Services) -> None:
    a = services.accounts.create_account("A").id
    reader = services.policies
    writer = PolicyRepo(services.engine)  # another process's repository, with its own cache
    assert reader.policy(a).block == ()
    first = reader.policy(a)
    assert reader.policy(a) is first  # unchanged: served from the cache
    row = writer.create(a, kinds.BLOCK, {"pattern": "x.example", "pattern_type": "DOMAIN", "is_regex": False})
    assert [b.pattern for b in reader.policy(a).block] == ["x.example"]
    writer.update(a, kinds.BLOCK, row.id, {"pattern": "z.example"})
    assert [b.pattern for b in reader.policy(a).block] == ["z.example"]
    writer.create(a, kinds.ALLOW, {"pattern": "ok@y.example", "pattern_type": "EMAIL", "is_spoof": True})
    allow = reader.policy(a).allow
    assert len(allow) == 1 and allow[0].is_acceptable_sender and allow[0].verify_sender  # deprecated alias read
    writer.delete(a, kinds.BLOCK, row.id)
    assert reader.policy(a).block == ()
    services.domains.add(a, "corp.example")
    assert reader.policy(a).protected_domains == ("corp.example",)


def test_worker_revalidates_the_policy_at_most_every_revalidate_seconds(services: Services) -> None:
    a = services.accounts.create_account("A").id
    worker = PolicyRepo(services.engine, revalidate_seconds=3600.0)  # as a queue worker process, stretched
    writer = PolicyRepo(services.engine)
    assert worker.policy(a).block == ()
    writer.create(a, kinds.BLOCK, {"pattern": "x.example", "pattern_type": "DOMAIN", "is_regex": False})
    assert worker.policy(a).block == ()  # within the window: the policy it checked, no query
    assert [b.pattern for b in writer.policy(a).block] == ["x.example"]  # revalidate_seconds=0 sees it at once
    worker.revalidate_seconds = 0.0
    assert [b.pattern for b in worker.policy(a).block] == ["x.example"]
