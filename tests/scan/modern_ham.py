"""Modern legitimate mail written for this project: receipts, notifications, newsletters and short business mail as
they look today. The ham corpora are from 2002, so a model trained on them could learn "modern-looking means bad";
these messages check the trap named in ../shared/corpora/README.md. None of them is used for training."""

from __future__ import annotations

from dataclasses import dataclass, field

LIST_HEADERS = {
    "List-Unsubscribe": "<https://email.example-news.com/unsub?u=8841>, <mailto:unsub@example-news.com>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


@dataclass(frozen=True)
class Ham:
    name: str
    sender: str
    subject: str
    body: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    attachments: tuple[tuple[str, str, bytes], ...] = ()
    bulk_ok: bool = False  # newsletters and notifications may be BULK


def _page(*paragraphs: str) -> str:
    inner = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f'<html><body style="font-family:Arial,sans-serif">{inner}</body></html>'


MODERN_HAM: tuple[Ham, ...] = (
    Ham(
        "colleague-review",
        '"Priya Raman" <priya.raman@corp.example>',
        "Q3 budget deck - can you review before Thursday?",
        "Hi Bob,\n\nI've put the Q3 budget deck in the team folder. Could you go through the headcount slide and the "
        "travel numbers before our sync on Thursday? Mostly I want a second pair of eyes on the assumptions.\n\n"
        "Thanks,\nPriya\n",
    ),
    Ham(
        "meeting-notes",
        '"Tom Becker" <tom.becker@corp.example>',
        "Notes from today's planning meeting",
        "Hi all,\n\nQuick summary of what we agreed:\n- Marta owns the migration plan, draft by the 12th\n"
        "- We keep the current release train, next cut on Monday\n- Open question on the vendor contract, Tom to "
        "follow up with "
        "legal\n\nShout if I missed anything.\nTom\n",
    ),
    Ham(
        "team-lunch",
        '"Anna Kowalski" <anna.k@corp.example>',
        "Team lunch on Friday?",
        "Hey team, the Thai place around the corner has a table for eight at 12:30 on Friday. Who's in? Reply by "
        "Wednesday so I can confirm the booking.\n\nAnna\n",
    ),
    Ham(
        "recruiter",
        '"Laura Chen" <laura.chen@talentbridge.example>',
        "Senior platform engineer role - quick chat?",
        "Hi Bob,\n\nI came across your talk on build systems and wanted to reach out about a senior platform engineer "
        "role with one of our clients, a logistics company in Berlin. Hybrid, strong team, interesting scale problems. "
        "Would you be open to a 20-minute call next week? No pressure if the timing isn't right.\n\nBest regards,\n"
        "Laura Chen\nTalentBridge Recruiting\n",
    ),
    Ham(
        "order-confirmation",
        '"Northwind Outdoor" <orders@northwind-outdoor.example>',
        "Your order #NW-448120 is confirmed",
        "Thanks for your order!\n\nOrder #NW-448120\n1 x Trail running shoes, size 43 - 119.00 EUR\n1 x Merino socks "
        "(3 pack) - 24.00 EUR\nShipping: free\nTotal: 143.00 EUR\n\nWe'll email you again when your parcel ships. "
        "View your order: https://www.northwind-outdoor.example/account/orders/NW-448120\n",
        html=_page(
            "Thanks for your order!",
            "Order <b>#NW-448120</b><br>1 x Trail running shoes, size 43 &ndash; 119.00 EUR<br>"
            "1 x Merino socks (3 pack) &ndash; 24.00 EUR<br>Shipping: free<br><b>Total: 143.00 EUR</b>",
            "We'll email you again when your parcel ships.",
            '<a href="https://www.northwind-outdoor.example/account/orders/NW-448120">View your order</a>',
        ),
        bulk_ok=True,
    ),
    Ham(
        "shipping",
        '"Northwind Outdoor" <orders@northwind-outdoor.example>',
        "Your parcel is on its way",
        "Good news: order #NW-448120 has shipped with UPS. Tracking number 1Z999AA10123456784. Estimated delivery: "
        "Thursday. Track it at https://www.ups.com/track?tracknum=1Z999AA10123456784\n",
        html=_page(
            "Good news: order #NW-448120 has shipped with UPS.",
            "Tracking number 1Z999AA10123456784 &middot; Estimated delivery: Thursday",
            '<a href="https://www.ups.com/track?tracknum=1Z999AA10123456784">Track your parcel</a>',
        ),
        bulk_ok=True,
    ),
    Ham(
        "github-review",
        '"Marta Silva" <notifications@github.com>',
        "Re: [corp/api] Add retry budget to the HTTP client (PR #812)",
        "@bob requested changes on this pull request.\n\nThe retry budget looks good, but the jitter should be applied "
        "before the cap, otherwise every client retries at exactly the cap under load.\n\n-- \nReply to this email "
        "directly, view it on GitHub: https://github.com/corp/api/pull/812#pullrequestreview-1\nYou are receiving "
        "this because your review was requested.\n",
        headers={"List-ID": "corp/api <api.corp.github.com>", "X-GitHub-Reason": "review_requested"},
        bulk_ok=True,
    ),
    Ham(
        "jira-assigned",
        '"Jira" <jira@corp.atlassian.net>',
        "[JIRA] (OPS-2291) Rotate the staging database credentials",
        "Tom Becker assigned OPS-2291 to you.\n\nRotate the staging database credentials\nPriority: Medium\n"
        "Due: next sprint\n\nView issue: https://corp.atlassian.net/browse/OPS-2291\n",
        bulk_ok=True,
    ),
    Ham(
        "calendar-invite",
        '"Priya Raman" <priya.raman@corp.example>',
        "Invitation: Architecture review @ Thu 14:00 - 15:00",
        "You have been invited to the following event.\n\nArchitecture review\nThursday 14:00 - 15:00\nRoom 4.12 / "
        "video link in the invite\nOrganizer: Priya Raman\n\nAccept or decline in your calendar.\n",
        attachments=(
            (
                "invite.ics",
                "text/calendar",
                b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:Architecture review\r\n"
                b"DTSTART:20261126T140000Z\r\nDTEND:20261126T150000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            ),
        ),
    ),
    Ham(
        "saas-invoice",
        '"Billing at Cloudnotes" <billing@cloudnotes.example>',
        "Your Cloudnotes invoice INV-2026-0114",
        "Hello,\n\nThank you for your payment. Your invoice INV-2026-0114 for the Team plan (12 seats) is attached. "
        "The amount of 144.00 USD was charged to the card on file.\n\nQuestions about billing? Just reply to this "
        "email.\n\nThe Cloudnotes team\n",
        attachments=(("INV-2026-0114.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),),
    ),
    Ham(
        "vendor-quote",
        '"Jonas Meyer" <jonas.meyer@officeparts.example>',
        "Quote for the meeting room screens",
        "Hi Bob,\n\nas discussed on the phone, please find our quote for the four 65-inch screens including wall "
        "mounts and installation attached. The offer is valid for 30 days. Happy to adjust quantities.\n\n"
        "Kind regards\nJonas Meyer\nOfficeParts GmbH\n",
        attachments=(("quote-2291.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),),
    ),
    Ham(
        "it-maintenance",
        '"IT Service Desk" <servicedesk@corp.example>',
        "Planned maintenance: VPN on Saturday night",
        "Hello everyone,\n\nthe VPN gateways will be updated on Saturday between 22:00 and 02:00. During that window "
        "remote connections may drop for a few minutes. No action is needed on your side.\n\nIT Service Desk\n",
    ),
    Ham(
        "hr-benefits",
        '"People Team" <people@corp.example>',
        "Benefits enrollment closes next Friday",
        "Hi all,\n\nA reminder that open enrollment for next year's benefits closes next Friday. If you want to "
        "change your health plan or add a dependant, do it in the HR portal before then; otherwise your current "
        "choices roll over.\n\nThe People Team\n",
    ),
    Ham(
        "newsletter",
        '"The Weekly Build" <newsletter@example-news.com>',
        "The Weekly Build: faster CI, smaller containers",
        "This week: how one team cut CI time in half with remote caching, a practical guide to distroless images, and "
        "three talks worth watching from the systems conference.\n\nRead online: https://example-news.com/issues/212\n"
        "You are receiving this because you subscribed at example-news.com. Unsubscribe: "
        "https://email.example-news.com/unsub?u=8841\n",
        html=_page(
            "This week: how one team cut CI time in half with remote caching, a practical guide to distroless images,"
            " and three talks worth watching from the systems conference.",
            '<a href="https://example-news.com/issues/212">Read online</a>',
            "You are receiving this because you subscribed at example-news.com. "
            '<a href="https://email.example-news.com/unsub?u=8841">Unsubscribe</a>',
        ),
        headers=LIST_HEADERS,
        bulk_ok=True,
    ),
    Ham(
        "airline-booking",
        '"SkyLark Airways" <booking@skylark-air.example>',
        "Booking confirmation - your trip to Lisbon",
        "Dear Bob Smith,\n\nthank you for booking with SkyLark Airways. Booking reference: K7QX2P\nOutbound: Berlin "
        "BER - Lisbon LIS, Friday 07:15\nReturn: Lisbon LIS - Berlin BER, Monday 18:40\n1 adult, 1 checked bag\n\n"
        "Online check-in opens 30 hours before departure: https://www.skylark-air.example/manage/K7QX2P\n",
        bulk_ok=True,
    ),
    Ham(
        "zoom-invite",
        '"Laura Chen" <laura.chen@talentbridge.example>',
        "Zoom: intro call Tuesday 10:00",
        "Hi Bob,\n\nthanks for making time. Here is the link for Tuesday 10:00:\nhttps://zoom.us/j/93451234567\n"
        "Meeting ID: 934 5123 4567\n\nTalk soon,\nLaura\n",
    ),
    Ham(
        "support-reply",
        '"Cloudnotes Support" <support@cloudnotes.example>',
        "Re: [#48812] Export to PDF cuts off tables",
        "Hi Bob,\n\nthanks for the detailed report and the sample file. We reproduced the problem: tables wider than "
        "the page are clipped instead of scaled. A fix is in the release going out next week; until then, switching "
        "the page to landscape works around it.\n\nBest,\nDana from Cloudnotes Support\n",
    ),
    Ham(
        "conference",
        '"SysConf 2026" <tickets@sysconf.example>',
        "Your SysConf ticket",
        "Hi Bob,\n\nyou're registered for SysConf. Your ticket is attached; show the QR code at the entrance. The "
        "programme and venue details are on https://sysconf.example/programme\n\nSee you there!\n",
        attachments=(("ticket.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"),),
        bulk_ok=True,
    ),
    Ham(
        "drive-share",
        '"Priya Raman (via Google Drive)" <drive-shares-dm-noreply@google.com>',
        'Priya Raman shared "Q3 budget v2" with you',
        "Priya Raman shared a spreadsheet with you.\n\nQ3 budget v2\nOpen: https://docs.google.com/spreadsheets/d/"
        "1aBcD/edit?usp=sharing\n\nGoogle LLC, 1600 Amphitheatre Parkway, Mountain View, CA 94043, USA\n",
        bulk_ok=True,
    ),
    Ham(
        "ride-receipt",
        '"Uber Receipts" <noreply@uber.com>',
        "Your Tuesday evening trip with Uber",
        "Thanks for riding, Bob.\n\nTotal: 18.40 EUR\nTrip fare 15.90, booking fee 2.50\nFrom Alexanderplatz to "
        "Hauptbahnhof, 6.1 km, 17 min\n\nRate or tip your driver in the app.\n",
        bulk_ok=True,
    ),
    Ham(
        "bank-statement",
        '"Greenfield Bank" <statements@greenfieldbank.example>',
        "Your monthly statement is ready",
        "Dear customer,\n\nyour statement for the current account ending 4471 is now available in online banking. "
        "For your security we never include links to sign in; open the banking app or type greenfieldbank.example "
        "into your browser.\n\nGreenfield Bank\n",
        bulk_ok=True,
    ),
    Ham(
        "family",
        '"Mum" <margaret.smith@fastmail.example>',
        "Sunday",
        "Hi love, are you still coming on Sunday? Dad wants to do the barbecue if the weather holds. Bring the kids' "
        "swimming things, the pool is open again.\n\nxx Mum\n",
    ),
)
