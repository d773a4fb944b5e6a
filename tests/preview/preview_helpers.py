"""Helpers for the preview tests: messages built for the purpose, PNG checks, and a loopback HTTP server that
records every request and connection it receives (it must receive none)."""

from __future__ import annotations

import io
import os
import threading
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageStat

from support import make_eml

REFERENCE = Path(__file__).with_name("reference")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def open_png(png: bytes) -> Image.Image:
    assert png.startswith(PNG_MAGIC), "not a PNG"
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG"
    return image.convert("RGB")


def variance(image: Image.Image) -> float:
    return float(ImageStat.Stat(image.convert("L")).var[0])


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size, f"sizes differ: {a.size} vs {b.size}"
    return float(ImageStat.Stat(ImageChops.difference(a.convert("L"), b.convert("L"))).mean[0])


def check_reference(name: str, png: bytes, tolerance: float = 4.0) -> None:
    """Compare with tests/preview/reference/NAME.png (checked by eye once). MAILSEC_UPDATE_PREVIEW_REFS=1 rewrites
    it. Tolerant: fonts and anti-aliasing may move a little between Chromium builds, layout may not."""
    path = REFERENCE / f"{name}.png"
    if os.environ.get("MAILSEC_UPDATE_PREVIEW_REFS") == "1":
        path.write_bytes(png)
    assert path.exists(), f"missing reference image {path}; render it with MAILSEC_UPDATE_PREVIEW_REFS=1, check by eye"
    got, want = open_png(png), open_png(path.read_bytes())
    assert got.size == want.size, f"{name}: size {got.size}, reference {want.size}"
    diff = mean_abs_diff(got, want)
    assert diff <= tolerance, f"{name}: mean abs difference {diff:.2f} > {tolerance}"


def logo_png() -> bytes:
    """A 300x120 image, blue with a yellow bar: easy to find in a screenshot."""
    image = Image.new("RGB", (300, 120), (20, 60, 200))
    ImageDraw.Draw(image).rectangle((0, 50, 299, 69), fill=(250, 210, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def cid_eml() -> bytes:
    """A newsletter-style message (make_eml's text + HTML alternative) whose logo is an inline part, cid:-referenced."""
    raw = make_eml(
        subject="Inline logo",
        body="Plain alternative",
        html="<html><body style='margin:0'><img src='cid:logo-1@sender.example' width='300' height='120' "
        "style='display:block'><h1 style='font-family:sans-serif'>Quarterly update</h1>"
        "<p style='font-family:sans-serif'>The logo above is an inline part of this message.</p></body></html>",
    )
    msg = message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    html_part = msg.get_body(("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(logo_png(), "image", "png", cid="<logo-1@sender.example>")
    return msg.as_bytes(policy=SMTP)


def charset_eml(text: str, charset: str, subtype: str = "plain") -> bytes:
    """A single-part message whose body is `text` encoded in `charset`, sent 8-bit as many real ones are."""
    head = (
        "From: sender@charset.example\r\nTo: bob@corp.example\r\nSubject: charset test\r\n"
        "Message-ID: <charset@charset.example>\r\nDate: Tue, 24 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/{subtype}; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode("ascii") + text.encode(charset) + b"\r\n"


class RecordingServer:
    """An HTTP server on loopback that records every connection and request. The hostile-message test points
    every resource at it; a safe preview leaves both lists empty."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a")

            do_POST = do_HEAD = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                outer.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
