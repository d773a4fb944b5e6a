"""Who sent a message, computed once per scan and shared by the auth, sender, impersonation, policy and history
checks, so that they all judge the same sender: before this, an IP policy matched the SMTP client (an internal relay)
while SPF judged the first public hop behind it.

The connecting host is the SMTP client when it is public; behind trusted relays (private addresses: the gateway's
own MTA, an internal hop) it is the first public `Received` hop from the top. The envelope sender is MAIL FROM, or
for imported mail the topmost Return-Path. `authenticated_domain` is filled in after authentication: the From
domain when DMARC passed aligned (or a trusted ARC sealer vouched for it), else empty."""

from __future__ import annotations

from dataclasses import dataclass, replace

from mailsec.model import Envelope, Finding, ParsedMessage
from mailsec.scan.lookalike import FREEMAIL, is_established, registered_domain
from mailsec.scan.registry import spec
from mailsec.scan.sender import address_domain, connecting_host, envelope_sender


@dataclass(frozen=True)
class SenderIdentity:
    envelope_sender: str = ""
    envelope_domain: str = ""
    from_address: str = ""
    from_name: str = ""
    from_domain: str = ""
    """The one From domain DMARC judges; empty when the message has no From or several."""
    from_org: str = ""
    """The registered (organisational) domain of the From domain."""
    client_ip: str | None = None
    helo: str = ""
    authenticated_domain: str = ""

    @property
    def authenticated(self) -> bool:
        return bool(self.authenticated_domain)

    def addresses(self) -> list[str]:
        """The sender addresses a policy may name: From, then the envelope sender."""
        out = [self.from_address, self.envelope_sender]
        return list(dict.fromkeys(a for a in out if a))

    def authenticate(self, domain: str) -> SenderIdentity:
        return replace(self, authenticated_domain=domain.lower().rstrip("."))


def identify(parsed: ParsedMessage, envelope: Envelope) -> SenderIdentity:
    ip, helo = connecting_host(parsed, envelope)
    mail_from = envelope_sender(parsed, envelope)
    sender = parsed.from_
    single = len(parsed.header_all("From")) == 1 and sender is not None
    from_domain = sender.domain.rstrip(".").lower() if single and sender is not None else ""
    return SenderIdentity(
        envelope_sender=mail_from,
        envelope_domain=address_domain(mail_from),
        from_address=(sender.email.strip() if sender else ""),
        from_name=(sender.name or "" if sender else ""),
        from_domain=from_domain,
        from_org=registered_domain(from_domain) if from_domain else "",
        client_ip=ip,
        helo=helo,
    )


def identity_findings(who: SenderIdentity) -> list[Finding]:
    """SENDER_AUTHENTICATED when DMARC passed for an established organisation's domain: that organisation vouches for
    the message, so its wording must be weighed against a sender who answers for it. A free mailbox proves only that
    someone has an account there, and an unknown domain only that someone registered it: no relief for either."""
    if not who.authenticated or who.from_org in FREEMAIL or not is_established(who.from_org):
        return []
    return [
        spec("SENDER_AUTHENTICATED").make(
            f"Authenticated sender: DMARC passes for {who.authenticated_domain}, the domain of an established "
            f"organisation ({who.from_org}).",
            field="from",
            value=who.authenticated_domain,
        )
    ]
