"""Moves with the official SDK 4.3 in strict mode; run in a subprocess whose path puts 4.3 first. Reads one JSON
request on stdin, prints one JSON answer. Not a test module."""

from __future__ import annotations

import json
import sys


def main() -> None:
    import cloudflare
    from cloudflare import Cloudflare

    req = json.load(sys.stdin)
    assert cloudflare.__version__.startswith("4.3"), cloudflare.__version__
    client = Cloudflare(
        api_token=req["token"], base_url=req["base_url"], _strict_response_validation=True, max_retries=0
    )
    move = client.email_security.investigate.move
    one = move.create(req["one"], account_id=req["account"], destination=req["destination"])
    many = move.bulk(account_id=req["account"], destination=req["destination"], postfix_ids=req["many"])
    got = client.email_security.investigate.get(req["one"], account_id=req["account"])
    moved = client.email_security.investigate.list(
        account_id=req["account"], message_action="MOVED", detections_only=False
    )
    print(json.dumps({
        "version": cloudflare.__version__,
        "one": [i.model_dump(mode="json") for i in one],
        "many": [i.model_dump(mode="json") for i in many],
        "got": got.model_dump(mode="json"),
        "moved_ids": [m.id for m in moved],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
