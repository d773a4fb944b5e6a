"""The console's pure parts: settings forms derived from the API's request models, and the dashboard's SVG chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from starlette.datastructures import FormData

from mailsec.api.routers.domains import DomainCreate
from mailsec.api.routers.settings import AllowPolicyCreate, ContentPolicyCreate
from mailsec.console.chart import COLOURS, volume_svg
from mailsec.console.forms import form_fields, parse_form, values_of
from mailsec.store.dashboard import Bucket, VolumeBucket

T0 = datetime(2026, 11, 30, tzinfo=UTC)


def test_form_fields_follow_the_api_model() -> None:
    fields = {f.name: f for f in form_fields(AllowPolicyCreate)}
    assert "is_spoof" not in fields and "is_sender" not in fields  # deprecated aliases are not offered
    assert fields["is_regex"].widget == "checkbox"
    assert fields["pattern"].widget == "text" and fields["pattern"].required
    assert fields["pattern_type"].widget == "select" and fields["pattern_type"].options == (
        "EMAIL", "DOMAIN", "IP", "UNKNOWN",
    )  # fmt: skip
    content = {f.name: f for f in form_fields(ContentPolicyCreate)}
    assert content["targets"].widget == "choices" and content["targets"].options == ("SUBJECT", "BODY")
    domain = {f.name: f for f in form_fields(DomainCreate)}
    assert domain["ip_restrictions"].widget == "textarea" and domain["lookback_hops"].widget == "number"


def test_a_posted_form_becomes_the_model_input() -> None:
    fields = form_fields(ContentPolicyCreate)
    form = FormData([("name", " Wire "), ("pattern", "wire (now|today)"), ("targets", "SUBJECT"), ("notes", "")])
    data = parse_form(fields, form)
    assert data == {"enabled": False, "name": "Wire", "pattern": "wire (now|today)", "targets": ["SUBJECT"]}
    assert ContentPolicyCreate.model_validate(data).targets == ["SUBJECT"]
    lines = parse_form(form_fields(DomainCreate), FormData([("ip_restrictions", "10.0.0.0/8\n 192.0.2.1 ,\n")]))
    assert lines["ip_restrictions"] == ["10.0.0.0/8", "192.0.2.1"]
    shown = values_of(form_fields(DomainCreate), {"ip_restrictions": ["10.0.0.0/8", "192.0.2.1"], "transport": None})
    assert shown["ip_restrictions"] == "10.0.0.0/8\n192.0.2.1" and shown["transport"] == ""


def test_the_chart_is_one_bar_segment_per_count_and_escapes_its_text() -> None:
    volume = [
        VolumeBucket(T0, {"NONE": 30, "MALICIOUS": 5}),
        VolumeBucket(T0 + timedelta(days=1), {}),
        VolumeBucket(T0 + timedelta(days=2), {"SPAM": 7}),
    ]
    svg = volume_svg(volume, Bucket.DAY, 'Mail <script>alert("x")</script>')
    root = ElementTree.fromstring(svg)  # well-formed XML: nothing unescaped broke it
    ns = "{http://www.w3.org/2000/svg}"
    assert root.find(f"{ns}title").text == 'Mail <script>alert("x")</script>'  # type: ignore[union-attr]
    fills = [str(r.get("fill")) for r in root.iter(f"{ns}rect")]
    assert sorted(fills) == sorted([COLOURS["NONE"], COLOURS["MALICIOUS"], COLOURS["SPAM"]])
    heights = {r.get("fill"): float(r.get("height") or 0) for r in root.iter(f"{ns}rect")}
    assert heights[COLOURS["NONE"]] == 6 * heights[COLOURS["MALICIOUS"]]  # bars are to scale
    titles = [t.text for t in root.iter(f"{ns}title")]
    assert "2026-12-01: no mail" in titles and "2026-11-30: MALICIOUS 5, NONE 30" in titles
    axis = [t.text for t in root.iter(f"{ns}text")][:5]
    assert axis == ["0", "10", "20", "30", "40"]  # 35 at most: four whole steps of ten
