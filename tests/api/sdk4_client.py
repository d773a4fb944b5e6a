"""Drives a live server with the official SDK 4.3 (strict mode); run in a subprocess whose path puts 4.3 first.
Reads one JSON request on stdin, prints one JSON answer. Not a test module."""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    import cloudflare
    from cloudflare import Cloudflare

    req = json.load(sys.stdin)
    assert cloudflare.__version__.startswith("4.3"), cloudflare.__version__
    if req.get("token"):
        client = Cloudflare(
            api_token=req["token"], base_url=req["base_url"], _strict_response_validation=True, max_retries=0
        )
    else:
        client = Cloudflare(
            api_email=req["email"],
            api_key=req["key"],
            base_url=req["base_url"],
            _strict_response_validation=True,
            max_retries=0,
        )
    inv = client.email_security.investigate
    account = req["account"]
    out: dict[str, Any] = {"version": cloudflare.__version__}
    if req["mode"] == "read":
        listed = list(inv.list(account_id=account, detections_only=False, per_page=req.get("per_page", 50)))
        out["list"] = [m.model_dump(mode="json", by_alias=True) for m in listed]
        out["get"] = {}
        for ref in req["refs"]:
            got = inv.get(ref, account_id=account)
            det = inv.detections.get(ref, account_id=account)
            raw = inv.raw.get(ref, account_id=account)
            trace = inv.trace.get(ref, account_id=account)
            out["get"][ref] = {
                "message": got.model_dump(mode="json", by_alias=True),
                "detections": det.model_dump(mode="json"),
                "raw": raw.raw,
                "trace": trace.model_dump(mode="json"),
            }
        filtered = inv.list(account_id=account, detections_only=False, query=req["query"])
        out["query"] = [m.id for m in filtered]
    elif req["mode"] == "page":
        out["ids"] = [m.id for m in inv.list(account_id=account, detections_only=False, per_page=req["per_page"])]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
