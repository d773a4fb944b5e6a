"""Real renders with the shared headless Chromium: corpus messages, inline cid images, charsets, reference images,
a hostile message against a loopback server, oversized and deeply nested input, timeouts and a killed browser."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from preview_helpers import (
    RecordingServer,
    charset_eml,
    check_reference,
    cid_eml,
    mean_abs_diff,
    open_png,
    variance,
)

from mailsec.config import load_settings
from mailsec.mime import parse_message
from mailsec.preview import Preview, PreviewService, PreviewTimeout, PreviewTooLarge, PreviewUnavailable, Renderer
from mailsec.preview.document import build_document
from mailsec.preview.errors import PreviewError
from mailsec.preview.renderer import MIN_HEIGHT
from mailsec.preview.service import render_message
from mailsec.services import Services
from mailsec.store.previews import PreviewCacheRepo
from support import make_eml

MIN_VARIANCE = 50.0  # a blank page is 0; a few lines of text are well above a hundred

CORPUS_CASES = {
    "newsletter-latin1": "spamassassin/hard-ham-1/00007.d24e99a602ee7fb442714c0d448cd08e.eml",
    "phishing-page": "phishing_pot/sample-2648.eml",
    "plain-text": "spamassassin/easy-ham-1/00001.7c53336b37003a9286aba55d2945844c.eml",
    "cid-images": "phishing_pot/sample-1204.eml",
}


def service_for(services: Services, renderer: Renderer, **settings: object) -> PreviewService:
    s = load_settings(env={}, data_dir=services.settings.data_dir, **settings)
    return PreviewService(s, services.messages, services.blobs, PreviewCacheRepo(services.engine), renderer=renderer)


def render_raw(renderer: Renderer, raw: bytes, max_bytes: int = 20 * 1024 * 1024, timeout: float = 10.0) -> Preview:
    return render_message(renderer, raw, max_bytes, timeout)


@pytest.mark.parametrize("case", sorted(CORPUS_CASES))
def test_corpus_messages_render(case: str, corpora: Path, renderer: Renderer) -> None:
    raw = (corpora / CORPUS_CASES[case]).read_bytes()
    doc = build_document(parse_message(raw))
    shot = renderer.render(doc.html)
    image = open_png(shot.png)
    assert image.width == 800
    assert MIN_HEIGHT <= image.height <= 4000
    assert variance(image) > MIN_VARIANCE, f"{case} rendered (nearly) blank"
    if case == "plain-text":
        assert not doc.is_html and "<pre>" in doc.html
    if case == "newsletter-latin1":
        # ISO-8859-1 with windows-1252 punctuation: decoded to real characters, no C1 controls left for empty boxes
        assert "Überblick" in doc.html and not any("\x80" <= c <= "\x9f" for c in doc.html)
    if case == "cid-images":
        assert doc.inlined_cids >= 1 and "cid:" not in doc.html.lower().split("<body", 1)[-1]
    assert not any(url.startswith("cid:") for url, _ in shot.requests)


def test_inline_cid_image_is_drawn(renderer: Renderer) -> None:
    raw = cid_eml()
    doc = build_document(parse_message(raw))
    assert doc.inlined_cids == 1 and doc.remote == []
    shot = renderer.render(doc.html)
    image = open_png(shot.png)
    assert shot.requests == []
    # The logo sits at the top-left corner (body margin 0): blue, with a yellow bar across rows 50-69.
    assert image.getpixel((150, 20)) == (20, 60, 200)
    assert image.getpixel((150, 60)) == (250, 210, 0)
    assert image.getpixel((150, 100)) == (20, 60, 200)
    check_reference("cid-inline", shot.png)


def test_plain_text_wraps_and_matches_reference(renderer: Renderer) -> None:
    words = " ".join(f"word{i}" for i in range(90))
    body = (
        "Hi Bob,\n\nThe quarterly numbers are attached. <b>This is not bold</b> & this is not an entity: &amp;.\n\n"
        f"{words}\n\nhttps://unbroken.example/{'x' * 200}\n\n  - indented item one\n  - indented item two\n\n"
        "Cheers,\nAlice\n"
    )
    doc = build_document(parse_message(make_eml(body=body)))
    assert "&lt;b&gt;This is not bold&lt;/b&gt; &amp; this is not an entity: &amp;amp;" in doc.html
    shot = renderer.render(doc.html)
    image = open_png(shot.png)
    assert image.width == 800 and variance(image) > MIN_VARIANCE
    # Long lines and unbroken tokens wrap inside the page: the right padding stays white.
    assert np.asarray(image)[:, 790:, :].min() == 255
    check_reference("plain-text", shot.png)


CYRILLIC = "Съешь же ещё этих мягких французских булок, да выпей чаю.\nПривет, Боб! Счёт во вложении."  # noqa: RUF001


def test_charsets_render_the_same_text(renderer: Renderer) -> None:
    """The same words sent in KOI8-R, windows-1251 and UTF-8 give the same picture; a wrong decoding would not."""
    shots = {
        cs: renderer.render(build_document(parse_message(charset_eml(CYRILLIC, cs))).html)
        for cs in ("utf-8", "koi8-r", "cp1251")
    }
    images = {cs: open_png(s.png) for cs, s in shots.items()}
    assert mean_abs_diff(images["koi8-r"], images["utf-8"]) == 0
    assert mean_abs_diff(images["cp1251"], images["utf-8"]) == 0
    wrong = build_document(parse_message(charset_eml(CYRILLIC, "koi8-r").replace(b"charset=koi8-r", b"charset=cp1251")))
    assert mean_abs_diff(open_png(renderer.render(wrong.html).png), images["utf-8"]) > 0.5
    check_reference("cyrillic-koi8r", shots["koi8-r"].png)


def test_windows_1252_labelled_latin1_reads_as_browsers_read_it(renderer: Renderer) -> None:
    text = "“Quoted” — dash – and the euro € in Grüße"  # noqa: RUF001
    as_cp1252 = charset_eml(text, "cp1252", "html").replace(b"charset=cp1252", b"charset=iso-8859-1")
    a = renderer.render(build_document(parse_message(as_cp1252)).html)
    b = renderer.render(build_document(parse_message(charset_eml(text, "utf-8", "html"))).html)
    assert mean_abs_diff(open_png(a.png), open_png(b.png)) == 0


HOSTILE = """<html><head>
<link rel="stylesheet" href="{base}/style.css">
<link rel="preconnect" href="{base}/">
<link rel="prefetch" href="{base}/prefetch.html">
<link rel="preload" as="image" href="{base}/preload.png">
<link rel="dns-prefetch" href="//tracker.invalid">
<link rel="icon" href="{base}/favicon.ico">
<link rel="manifest" href="{base}/manifest.json">
<meta http-equiv="refresh" content="0; url={base}/refresh">
<base href="{base}/base/">
<style>
@import url("{base}/import.css");
@font-face {{ font-family: Evil; src: url("{base}/font.woff2") format("woff2"); }}
body {{ font-family: Evil, sans-serif; background: #fff url("{base}/bg.png"); margin: 0 }}
#marker {{ width: 400px; height: 200px; background: #000 }}
</style></head>
<body background="{base}/body-bg.gif">
<div id="marker"></div>
<p style="background-image: url('{base}/inline-style.png')">Account suspended: verify now</p>
<img src="{base}/pixel.gif?u=bob" width="1" height="1">
<img src="relative.png" srcset="{base}/hi.png 2x">
<table background="{base}/table-bg.png"><tr><td>cell</td></tr></table>
<iframe src="{base}/frame.html"></iframe>
<object data="{base}/object.swf"></object>
<video poster="{base}/poster.jpg"></video>
<svg width="10" height="10"><image href="{base}/svg.png" width="10" height="10"/></svg>
<script>
document.body.style.background = "rgb(255,0,0)";
document.getElementById("marker").remove();
document.body.insertAdjacentHTML("beforeend", "<img src='{base}/script.gif'>");
</script>
<script src="{base}/external.js"></script>
</body></html>"""


def test_hostile_message_no_script_no_network(renderer: Renderer) -> None:
    server = RecordingServer()
    try:
        base = server.base
        raw = make_eml(subject="Verify your account", html=HOSTILE.format(base=base))
        result = render_raw(renderer, raw)
        time.sleep(0.5)  # anything that escaped would have arrived by now
        assert server.requests == [] and server.connections == 0, (server.requests, server.connections)
    finally:
        server.close()
    image = open_png(result.png)
    # The script would paint the page red and remove the black marker: the marker is there, no red anywhere.
    assert image.getpixel((200, 100)) == (0, 0, 0)
    pixels = np.asarray(image)
    reds = (pixels[:, :, 0] > 200) & (pixels[:, :, 1] < 60) & (pixels[:, :, 2] < 60)
    assert not reds.any()
    found = {r["url"]: r for r in result.remote_resources}
    expected_kinds = {
        f"{base}/style.css": "stylesheet",
        f"{base}/prefetch.html": "prefetch",
        f"{base}/preload.png": "prefetch",
        f"{base}/": "prefetch",
        f"{base}/favicon.ico": "icon",
        f"{base}/manifest.json": "link",
        f"{base}/refresh": "refresh",
        f"{base}/import.css": "import",
        f"{base}/font.woff2": "font",
        f"{base}/bg.png": "css",
        f"{base}/inline-style.png": "css",
        f"{base}/body-bg.gif": "background",
        f"{base}/pixel.gif?u=bob": "image",
        f"{base}/hi.png": "image",
        f"{base}/base/relative.png": "image",
        f"{base}/table-bg.png": "background",
        f"{base}/frame.html": "frame",
        f"{base}/object.swf": "object",
        f"{base}/poster.jpg": "media",
        f"{base}/svg.png": "image",
        f"{base}/external.js": "script",
        "http://tracker.invalid": "prefetch",
    }
    for url, kind in expected_kinds.items():
        assert url in found, f"{url} not reported; got {sorted(found)}"
        assert found[url]["kind"] == kind, (url, found[url])
    # Chromium did try some of them (and was refused by the route handler): they are marked as requested.
    assert found[f"{base}/pixel.gif?u=bob"]["requested"] is True
    assert found[f"{base}/style.css"]["requested"] is True
    assert not any("script.gif" in url for url in found)  # the script never ran


def _big_html_eml(size: int) -> bytes:
    row = "<tr><td>row {i}</td><td>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do</td></tr>\n"
    rows, total, i = [], 0, 0
    while total < size:
        line = row.format(i=i)
        rows.append(line)
        total += len(line)
        i += 1
    return make_eml(subject="Big", html="<html><body><table>" + "".join(rows) + "</table></body></html>")


def _finishes_or_fails_clearly(renderer: Renderer, raw: bytes, budget: float) -> None:
    started = time.monotonic()
    try:
        result = render_raw(renderer, raw, timeout=budget)
    except (PreviewTimeout, PreviewTooLarge) as exc:
        assert exc.status in (413, 504) and exc.message
    else:
        image = open_png(result.png)
        assert image.width == 800 and image.height <= 4000
    assert time.monotonic() - started < budget * 2 + 10
    # The renderer keeps serving.
    ok = renderer.render(build_document(parse_message(make_eml(body="still alive"))).html)
    assert open_png(ok.png).width == 800


def test_ten_megabyte_html(renderer: Renderer) -> None:
    raw = _big_html_eml(10 * 1024 * 1024)
    assert len(raw) > 10 * 1024 * 1024
    _finishes_or_fails_clearly(renderer, raw, budget=10.0)


def test_deeply_nested_html(renderer: Renderer) -> None:
    depth = 20_000
    html = "<html><body>" + "<div style='padding-left:1px'>" * depth + "deep" + "</div>" * depth
    html += "<table><tr><td>" * 2000 + "cell" + "</td></tr></table>" * 2000 + "</body></html>"
    _finishes_or_fails_clearly(renderer, make_eml(html=html), budget=10.0)


def test_deeply_nested_mime(renderer: Renderer) -> None:
    depth = 300
    head = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth))
    tail = "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(depth)))
    raw = (
        "From: a@b.example\r\nSubject: nested\r\nMIME-Version: 1.0\r\n" + head + "Content-Type: text/plain\r\n\r\n"
        "innermost text" + tail
    ).encode()
    _finishes_or_fails_clearly(renderer, raw, budget=10.0)


def test_too_large_is_refused_before_rendering(renderer: Renderer) -> None:
    with pytest.raises(PreviewTooLarge) as info:
        render_raw(renderer, _big_html_eml(300_000), max_bytes=100_000)
    assert info.value.status == 413 and "100000" in info.value.message


def test_timeout_discards_the_page_and_the_renderer_keeps_serving(renderer: Renderer) -> None:
    html = build_document(parse_message(_big_html_eml(3 * 1024 * 1024))).html
    with pytest.raises(PreviewTimeout) as info:
        renderer.render(html, timeout=0.05)
    assert info.value.status == 504
    ok = renderer.render(build_document(parse_message(make_eml(body="after a timeout"))).html)
    assert open_png(ok.png).width == 800


def test_concurrent_renders_share_the_pool(renderer: Renderer) -> None:
    errors: list[BaseException] = []
    results: list[int] = []

    def work(i: int) -> None:
        try:
            shot = renderer.render(build_document(parse_message(make_eml(body=f"message {i}\n" * 20))).html)
            results.append(open_png(shot.png).width)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and results == [800] * 6


def _own_chromium_browser_pids() -> list[int]:
    """Main Chromium processes (no --type=) descending from this test process: ours to kill."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdlines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    me = os.getpid()

    def descends(pid: int) -> bool:
        seen = 0
        while pid > 1 and seen < 64:
            pid = parents.get(pid, 0)
            if pid == me:
                return True
            seen += 1
        return False

    return [
        pid
        for pid, cmd in cmdlines.items()
        if "chromium" in cmd and "--type=" not in cmd and "--remote-debugging-pipe" in cmd and descends(pid)
    ]


def test_browser_restarted_after_it_dies(renderer: Renderer) -> None:
    renderer.render(build_document(parse_message(make_eml(body="before"))).html)
    pids = _own_chromium_browser_pids()
    assert pids, "could not find this test's Chromium"
    launches = renderer.launches
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    shot = renderer.render(build_document(parse_message(make_eml(body="after the crash"))).html)
    assert open_png(shot.png).width == 800
    assert renderer.launches == launches + 1


def test_missing_chromium_names_the_package() -> None:
    r = Renderer(chromium_path="/nonexistent/chromium")
    try:
        with pytest.raises(PreviewUnavailable) as info:
            r.render("<p>x</p>")
    finally:
        r.close()
    assert info.value.status == 503
    assert "apt-get install chromium" in info.value.message


def test_cache_and_action_log(sqlite_services: Services, renderer: Renderer) -> None:
    from mailsec.pipeline import process_message

    account = sqlite_services.accounts.create_account("Preview").id
    stored = process_message(sqlite_services, cid_eml(), account)
    message = sqlite_services.messages.get(account, stored.id)
    assert message is not None
    svc = service_for(sqlite_services, renderer)
    first = svc.preview(message, requested_by="token:abc")
    second = svc.preview(message, requested_by="soc@corp.example")
    assert not first.cached and second.cached and first.png == second.png
    actions = sqlite_services.messages.actions([message.pk])[message.pk]
    assert [(a.operation, a.requested_by) for a in actions] == [
        ("PREVIEW", "token:abc"),
        ("PREVIEW", "soc@corp.example"),
    ]
    # The key is content + renderer version: another height cap is another entry (that renderer never starts).
    other = service_for(sqlite_services, Renderer(max_height=2000))
    assert other.cache_key(message.raw_sha256) != svc.cache_key(message.raw_sha256)
    assert svc.cache.get(svc.cache_key(message.raw_sha256)) is not None
    # A missing blob (and no cache) is a clear error, not a crash.
    sqlite_services.blobs.path_for(message.raw_sha256).unlink()
    svc.cache.prune(older_than_us=2**62)
    with pytest.raises(PreviewError) as info:
        svc.preview(message, requested_by="x")
    assert "blob store" in info.value.message


@pytest.mark.skipif(
    not subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True).stdout.strip(),
    reason="no Japanese font installed (Debian package fonts-noto-cjk; `make system-deps` installs it as root)",
)
def test_cjk_text_is_drawn_with_real_glyphs(renderer: Renderer) -> None:
    """Missing CJK fonts draw every character as the same empty box, so two different sentences of equal length would
    give the same picture; with fonts-noto-cjk they differ, and ISO-2022-JP decodes to the same picture as UTF-8."""
    first, second = "お支払い情報を更新してください。", "アカウントが一時停止されました。"
    assert len(first) == len(second)
    shot = {
        text: open_png(renderer.render(build_document(parse_message(charset_eml(text, "utf-8"))).html).png)
        for text in (first, second)
    }
    assert mean_abs_diff(shot[first], shot[second]) > 0.1  # one line of text on an 800x600 page
    jis = open_png(renderer.render(build_document(parse_message(charset_eml(first, "iso-2022-jp"))).html).png)
    assert mean_abs_diff(jis, shot[first]) == 0


PLACEHOLDER_FILL = (0xEE, 0xF1, 0xF5)
IMAGE_ONLY = (
    "<html><body><a href='https://login.{host}/verify'>"
    "<img src='{base}/banner.png' width='570' height='400' alt='Verify your account' style='display:block'></a>"
    "<img src='{base}/footer.jpg' style='display:block;width:570px;height:120px'>"
    "<img src='{base}/open.gif' width='1' height='1'></body></html>"
)


def test_image_only_message_shows_placeholders_cropped_to_the_content(renderer: Renderer) -> None:
    """Image-only phishing: the remote pictures are not fetched, but their boxes are drawn, labelled with the host,
    and the picture ends where they end (no blank page below)."""
    server = RecordingServer()
    try:
        raw = make_eml(subject="Your parcel", html=IMAGE_ONLY.format(host="phish.example", base=server.base))
        result = render_raw(renderer, raw)
        time.sleep(0.3)
        assert server.requests == [] and server.connections == 0
    finally:
        server.close()
    image = open_png(result.png)
    assert variance(image) > MIN_VARIANCE, "rendered (nearly) blank"
    # Body margin 8 + 400 + 120 + the 1 px pixel's line, then the 16 px kept below the content.
    assert 8 + 400 + 120 <= result.height <= 8 + 400 + 120 + 40, result.height
    assert image.height == result.height and not result.truncated
    # The banner's box: filled inside, its dashed border on the left edge, the label's dark text in its middle.
    assert image.getpixel((300, 30)) == PLACEHOLDER_FILL
    edge = [image.getpixel((8, y)) for y in range(10, 400)]
    assert any(p != PLACEHOLDER_FILL and p != (255, 255, 255) for p in edge)
    label = np.asarray(image)[8 + 150 : 8 + 250, 8 : 8 + 570, :]
    assert (label.max(axis=2) < 120).sum() > 200, "no label text in the placeholder"
    assert image.getpixel((300, 8 + 400 + 60)) == PLACEHOLDER_FILL  # the footer's box
    # What the label says depends on the host: another host, another picture (same size).
    other = render_raw(renderer, make_eml(html=IMAGE_ONLY.format(host="x", base="https://elsewhere.example")))
    assert mean_abs_diff(open_png(other.png), image) > 0
    found = {r["url"]: r for r in result.remote_resources}
    assert found[f"{server.base}/banner.png"]["placeholder"] is True
    assert found[f"{server.base}/banner.png"]["requested"] is True


def test_picture_is_cropped_to_what_is_drawn(renderer: Renderer) -> None:
    empty_tail = renderer.render("<p>Short message</p><div style='height:3500px'></div><p style='color:#fff'> </p>")
    assert empty_tail.height == MIN_HEIGHT and not empty_tail.truncated
    assert open_png(empty_tail.png).size == (800, MIN_HEIGHT)
    painted = renderer.render("<body style='margin:0'><div style='height:1500px;background:#036'></div></body>")
    assert painted.height == 1500 + 16
    assert open_png(painted.png).getpixel((400, 1490)) == (0, 0x33, 0x66)
    tall = renderer.render("<body style='margin:0'><div style='height:6000px;border-bottom:4px solid red'></div>")
    assert tall.height == 4000 and tall.truncated and tall.content_height == 6004


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[2])  # effective


def _userns_works(user: str) -> bool:
    """Whether Chromium's sandbox can start here: unprivileged user namespaces for `user` (or for us)."""
    prefix = ["setpriv", "--reuid", user, "--regid", "nogroup", "--clear-groups"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, "unshare", "-U", "true"], capture_output=True).returncode == 0


def test_chromium_is_never_root_and_keeps_its_sandbox(renderer: Renderer) -> None:
    renderer.render(build_document(parse_message(make_eml(body="who am I"))).html)
    pids = _own_chromium_browser_pids()
    assert pids, "could not find this test's Chromium"
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert _uid(pid) != 0, "Chromium runs as root"
        assert _uid(pid) == renderer.browser_uid
        assert (b"--no-sandbox" in cmdline) is not renderer.sandboxed
    assert renderer.browser_uid == (pwd.getpwnam(renderer.user).pw_uid if os.geteuid() == 0 else os.geteuid())
    if _userns_works(renderer.user):
        assert renderer.sandboxed, "Chromium's sandbox could start here but the browser runs without it"


def test_idle_browser_closes_and_starts_again_on_demand() -> None:
    r = Renderer(idle_seconds=1.0)
    try:
        others = set(_own_chromium_browser_pids())  # the session's browser stays
        r.render("<p>first</p>")
        mine = set(_own_chromium_browser_pids()) - others
        assert len(mine) == 1 and r.launches == 1
        deadline = time.monotonic() + 15
        while r.idle_closes == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert r.idle_closes == 1
        time.sleep(0.5)
        assert not mine & set(_own_chromium_browser_pids()), "the idle browser is still running"
        shot = r.render("<p>second</p>")
        assert open_png(shot.png).width == 800 and r.launches == 2
    finally:
        r.close()
    assert not (set(_own_chromium_browser_pids()) - others)
