"""The Microsoft Graph and Gmail backends against their contract fakes (tests/mailbox/provider_fakes.py; the real
services cannot run here): every destination, restore after a hard delete, throttling with Retry-After, token
renewal after the provider revoked it, refused credentials, delegation per mailbox; and the move action end to end
through a Graph integration stored with its encrypted secret."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from provider_fakes import GmailContractFake, GraphContractFake, service_account

from mailsec.mailbox import secrets
from mailsec.mailbox.base import MailboxAuthError, MailboxError
from mailsec.mailbox.gmail import RECOVERABLE_LABEL, GmailBackend
from mailsec.mailbox.graph import GraphBackend
from mailsec.mailbox.registry import open_backend
from mailsec.model import Destination
from mailsec.store.integrations import Integration
from support import free_port, make_eml

ANN, BOB = "ann@corp.example", "bob@corp.example"
TENANT, CLIENT, SECRET = "corp.example", "6731de76-14a6-49ae-97bc-6eba6914391e", "graph-secret"


def _mail() -> tuple[bytes, str]:
    raw = make_eml(f"graph {uuid.uuid4().hex[:8]}")
    from email import message_from_bytes

    return raw, str(message_from_bytes(raw)["Message-ID"])


@pytest.fixture
def graph() -> Iterator[GraphContractFake]:
    fake = GraphContractFake(TENANT, CLIENT, SECRET, [ANN, BOB])
    yield fake
    fake.close()


def _graph_backend(fake: GraphContractFake, secret: str = SECRET) -> GraphBackend:
    backend = GraphBackend(TENANT, CLIENT, secret, graph_url=f"{fake.url}/v1.0", login_url=fake.url, timeout=5)
    backend.rest.sleep = lambda s: None
    return backend


def test_graph_every_destination_and_restore(graph: GraphContractFake) -> None:
    raw, mid = _mail()
    graph.deliver(ANN, raw)
    backend = _graph_backend(graph)
    for dest, folder in [
        (Destination.JUNK, "junkemail"),
        (Destination.DELETED, "deleteditems"),
        (Destination.RECOVERABLE_DELETIONS, "recoverableitemsdeletions"),
        (Destination.INBOX, "inbox"),
    ]:
        [ref] = backend.locate(ANN, mid)
        moved = backend.move(ref, dest)
        assert moved is not None and moved.destination is dest and moved.key != ref.key  # Graph gives a new id
        assert graph.folders_of(ANN, mid) == [folder]
        [again] = backend.locate(ANN, mid)
        assert again.destination is dest and backend.move(again, dest) == again
    [ref] = backend.locate(ANN, mid)
    assert backend.move(ref, Destination.RECOVERABLE_PURGES) is None
    assert graph.folders_of(ANN, mid) == ["recoverableitemspurges"] and backend.locate(ANN, mid) == []
    restored = backend.append(ANN, raw, Destination.INBOX)
    assert restored.destination is Destination.INBOX and "inbox" in graph.folders_of(ANN, mid)
    assert graph.folders_of(BOB, mid) == []


def test_graph_throttling_and_token_renewal(graph: GraphContractFake) -> None:
    raw, mid = _mail()
    graph.deliver(ANN, raw)
    backend = _graph_backend(graph)
    waits: list[float] = []
    backend.rest.sleep = waits.append
    graph.throttle(3, retry_after="2")
    [ref] = backend.locate(ANN, mid)
    assert waits == [2.0, 2.0, 2.0] and backend.rest.throttled == 3
    graph.revoke_tokens()  # the provider refuses the cached token: one renewal, then the call goes through
    assert backend.move(ref, Destination.JUNK) is not None
    assert backend._token.fetched == 2
    graph.throttle(100)
    with pytest.raises(MailboxError, match="throttled"):
        backend.locate(ANN, mid)


def test_graph_refusals(graph: GraphContractFake) -> None:
    with pytest.raises(MailboxAuthError, match="refused the credentials"):
        _graph_backend(graph, secret="wrong").locate(ANN, "<x@y>")
    with pytest.raises(MailboxError, match="404"):
        _graph_backend(graph).locate("nobody@corp.example", "<x@y>")
    down = GraphBackend(TENANT, CLIENT, SECRET, graph_url=f"http://127.0.0.1:{free_port()}/v1.0",
                        login_url=f"http://127.0.0.1:{free_port()}", timeout=2)  # fmt: skip
    with pytest.raises(MailboxError, match="unreachable") as info:
        down.locate(ANN, "<x@y>")
    assert not isinstance(info.value, MailboxAuthError)


@pytest.fixture
def gmail_fake() -> Iterator[tuple[GmailContractFake, dict]]:
    email = "mailsec@corp-project.iam.gserviceaccount.com"
    key, public = service_account(email, "")
    fake = GmailContractFake(email, public, [ANN, BOB])
    key["token_uri"] = fake.token_uri
    yield fake, key
    fake.close()


def test_gmail_every_destination_and_restore(gmail_fake: tuple[GmailContractFake, dict]) -> None:
    fake, key = gmail_fake
    raw, mid = _mail()
    fake.deliver(ANN, raw)
    backend = GmailBackend("corp.example", key, gmail_url=fake.url, timeout=5)
    for dest in (Destination.JUNK, Destination.DELETED, Destination.RECOVERABLE_DELETIONS, Destination.INBOX,
                 Destination.DELETED, Destination.JUNK):  # fmt: skip
        [ref] = backend.locate(ANN, mid)
        moved = backend.move(ref, dest)
        assert moved is not None and moved.destination is dest, (dest, moved)
        [again] = backend.locate(ANN, mid)
        assert again.destination is dest and backend.move(again, dest) == again
    [labels] = fake.labels_of(ANN, mid)
    assert labels == ["SPAM"]
    [ref] = backend.locate(ANN, mid)
    backend.move(ref, Destination.RECOVERABLE_DELETIONS)
    hidden = next(k for k, v in fake.labels[ANN].items() if v == RECOVERABLE_LABEL)
    assert fake.labels_of(ANN, mid) == [sorted([hidden, "TRASH"])]
    [ref] = backend.locate(ANN, mid)
    assert backend.move(ref, Destination.RECOVERABLE_PURGES) is None
    assert fake.labels_of(ANN, mid) == [] and backend.locate(ANN, mid) == []
    backend.append(ANN, raw, Destination.INBOX)
    assert fake.labels_of(ANN, mid) == [["INBOX"]]


def test_gmail_tokens_are_per_mailbox_and_checked(gmail_fake: tuple[GmailContractFake, dict]) -> None:
    fake, key = gmail_fake
    raw, mid = _mail()
    fake.deliver(ANN, raw)
    fake.deliver(BOB, raw)
    backend = GmailBackend("corp.example", key, gmail_url=fake.url, timeout=5)
    backend.rest.sleep = lambda s: None
    assert len(backend.locate(ANN, mid)) == 1 and len(backend.locate(BOB, mid)) == 1
    assert set(fake.tokens.values()) == {ANN, BOB}  # one delegated token per mailbox
    fake.throttle(2)
    assert len(backend.locate(ANN, mid)) == 1 and backend.rest.throttled == 2
    with pytest.raises(MailboxAuthError, match="unauthorized_client"):
        backend.locate("eve@corp.example", mid)  # not delegated for this user
    other, _ = service_account(key["client_email"], key["token_uri"])  # a key the provider does not know
    with pytest.raises(MailboxAuthError, match="Invalid JWT Signature"):
        GmailBackend("corp.example", other, gmail_url=fake.url).locate(ANN, mid)
    with pytest.raises(ValueError, match="private_key"):
        GmailBackend("corp.example", {"client_email": "x", "token_uri": "y"})


def test_integrations_open_the_rest_backends(tmp_path, graph: GraphContractFake) -> None:  # type: ignore[no-untyped-def]
    raw, mid = _mail()
    graph.deliver(BOB, raw)
    options = {"client_id": CLIENT, "graph_url": f"{graph.url}/v1.0", "login_url": graph.url}
    integration = Integration("i1", "a" * 32, "corp.example", "graph", f"graph://{TENANT}", options,
                              secrets.encrypt(tmp_path, SECRET), 1)  # fmt: skip
    backend = open_backend(integration, tmp_path)
    [ref] = backend.locate(BOB, mid)
    backend.move(ref, Destination.JUNK)
    assert graph.folders_of(BOB, mid) == ["junkemail"]
    key, _ = service_account("sa@p.iam.gserviceaccount.com", "http://127.0.0.1:1/token")
    gmail = Integration("i2", "a" * 32, "corp.example", "gmail", "gmail://corp.example", {},
                        secrets.encrypt(tmp_path, json.dumps(key)), 1)  # fmt: skip
    assert isinstance(open_backend(gmail, tmp_path), GmailBackend)
    with pytest.raises(ValueError, match="client_id"):
        GraphBackend.from_integration("graph://t", SECRET, {})
