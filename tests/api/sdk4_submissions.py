"""Drives reclassify and submissions with the official SDK 4.3 (strict mode); run in a subprocess whose path puts
4.3 first (api_helpers.run_sdk4). Reads one JSON request on stdin, prints one JSON answer. Not a test module."""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> None:
    import cloudflare
    from cloudflare import Cloudflare

    req = json.load(sys.stdin)
    assert cloudflare.__version__.startswith("4.3"), cloudflare.__version__
    client = Cloudflare(
        api_token=req["token"], base_url=req["base_url"], _strict_response_validation=True, max_retries=0
    )
    es = client.email_security
    account = req["account"]
    out: dict[str, Any] = {"version": cloudflare.__version__, "reclassified": []}
    for ref, disposition in req.get("reclassify", []):
        out["reclassified"].append(
            es.investigate.reclassify.create(ref, account_id=account, expected_disposition=disposition)
        )
    out["submissions"] = [
        s.model_dump(mode="json") for s in es.submissions.list(account_id=account, per_page=2, **req.get("filters", {}))
    ]
    out["submitted_ids"] = [
        m.id for m in es.investigate.list(account_id=account, extra_query={"submissions": "true"}, per_page=50)
    ]
    out["got"] = {
        ref: es.investigate.get(ref, account_id=account).model_dump(mode="json", by_alias=True)
        for ref, _ in req.get("reclassify", [])
    }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
