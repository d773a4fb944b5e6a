"""One long-lived headless Chromium (driven by Playwright) that turns an inert HTML document into a PNG.

The browser lives in a dedicated thread that owns an asyncio loop; callers from any thread (FastAPI's thread pool,
the CLI, a benchmark) call `render()`, which blocks on a future with a hard deadline, so a stuck render can never hang
a worker. A bounded pool of pages (one browser context each, JavaScript disabled) is reused between renders.

No network: every request Chromium attempts goes through the context's route handler, which lets `data:` through
and refuses everything else, recording it. Resource hints bypass interception, so the document is stripped of them
beforehand (see `document.py`) and, as a second wall, host names resolve to nothing and any connection that slips past
interception goes to a dead proxy. A page that times out or errors is thrown away; a browser that dies is relaunched.

Least privilege: Chromium keeps its own sandbox whenever it can; started by root, it runs as an unprivileged user
(`preview_user`, default `nobody`) through a small `setpriv` wrapper, never as root with `--no-sandbox`. Memory:
the browser (and Playwright's driver) start on the first render and stop after `idle_seconds` without one.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import os
import pwd
import shlex
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailsec.preview.errors import PreviewBusy, PreviewError, PreviewTimeout, PreviewUnavailable, RenderFailed

if TYPE_CHECKING:  # Playwright itself is imported with the first browser: ~20 MB a process that never previews
    from playwright.async_api import (
        Browser,
        BrowserContext,
        CDPSession,
        Page,
        Playwright,
        ProxySettings,
        Request,
        Route,
    )

log = logging.getLogger("mailsec.preview")

WIDTH = 800
VIEW_HEIGHT = 600
LAUNCH_SECONDS = 30.0
MAX_RECORDED_REQUESTS = 500
RECYCLE_AFTER = 500  # renders per page before it is replaced (bounds memory growth)
CHROMIUM_PACKAGE = "chromium"

LAUNCH_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--dns-prefetch-disable",
    "--no-pings",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--no-first-run",
]
# Anything that escapes request interception (a preconnect, say) is sent to a port nothing listens on; loopback is
# not exempted, so even a message pointing at 127.0.0.1 reaches nothing.
DEAD_PROXY: ProxySettings = {"server": "http://127.0.0.1:1", "bypass": "<-loopback>"}
MIN_HEIGHT = 100
CONTENT_PADDING = 16  # px of page kept below the last thing drawn
MAX_MEASURED_ELEMENTS = 20_000  # beyond it the picture is the document's full height, uncropped
# Where the last painted thing ends (text, a replaced element, a box with a background or border): the picture is
# cropped there instead of running on to the viewport or a tall empty element. -1 when the page is too big to walk.
EXTENT_JS = r"""(limit) => {
  const root = document.documentElement;
  const full = Math.max(root ? root.scrollHeight : 0, document.body ? document.body.scrollHeight : 0);
  const scope = document.body || root;
  if (!scope) return [0, full];
  const all = scope.getElementsByTagName("*");
  if (all.length > limit) return [-1, full];
  let bottom = 0;
  const see = (r) => { if (r.width > 0 && r.height > 0 && r.bottom > bottom) bottom = r.bottom; };
  const range = document.createRange();
  const walker = document.createTreeWalker(scope, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(), i = 0; n && i < 4 * limit; n = walker.nextNode(), i++) {
    if (!n.data.trim()) continue;
    range.selectNodeContents(n);
    see(range.getBoundingClientRect());
  }
  const replaced = new Set(["IMG", "SVG", "VIDEO", "CANVAS", "INPUT", "TEXTAREA", "SELECT", "BUTTON", "HR",
                            "PROGRESS", "METER"]);
  for (const el of all) {
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0 || r.bottom <= bottom) continue;
    if (replaced.has(el.tagName.toUpperCase())) { see(r); continue; }
    const cs = getComputedStyle(el);
    if (cs.visibility === "hidden") continue;
    const painted = cs.backgroundImage !== "none" || !/rgba\(.*, 0\)$|transparent/.test(cs.backgroundColor)
      || ["Top", "Bottom", "Left", "Right"].some((s) => parseFloat(cs["border" + s + "Width"]) > 0
                                                   && cs["border" + s + "Style"] !== "none")
      || cs.boxShadow !== "none" || cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0;
    if (painted) see(r);
  }
  return [Math.ceil(bottom + window.scrollY), full];
}"""


@dataclass
class Rendered:
    png: bytes
    width: int
    height: int
    content_height: int
    requests: list[tuple[str, str]]  # (url, resource type) Chromium attempted and was refused
    elapsed_ms: float

    @property
    def truncated(self) -> bool:
        return self.content_height > self.height


@dataclass
class _Slot:
    context: BrowserContext
    page: Page
    cdp: CDPSession
    requests: list[tuple[str, str]] = field(default_factory=list)
    uses: int = 0
    view_height: int = VIEW_HEIGHT


def _playwright_error() -> type[Exception]:
    from playwright.async_api import Error

    return Error


def unprivileged_wrapper(chromium_path: str, user: str) -> tuple[Path, int]:
    """A launcher for Chromium as `user`, for when we are root: it hands Playwright's fresh profile directory (and
    HOME) to that user, then `setpriv` drops every privilege and runs the browser, which then has its own sandbox
    as well. Returns the wrapper (in a private directory of its own) and the user's uid."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise PreviewUnavailable(
            f"the preview user {user!r} does not exist (MAILSEC_PREVIEW_USER): Chromium is not run as root"
        ) from exc
    if entry.pw_uid == 0:
        raise PreviewUnavailable(f"MAILSEC_PREVIEW_USER={user} is root: Chromium is not run as root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise PreviewUnavailable("`setpriv` (Debian package util-linux) is needed to run Chromium unprivileged")
    uid, gid = entry.pw_uid, entry.pw_gid
    folder = Path(tempfile.mkdtemp(prefix="mailsec-chromium-"))
    script = folder / "chromium"
    script.write_text(
        "#!/bin/sh\n"
        "# Written by mailsec (preview/renderer.py): Chromium as an unprivileged user.\n"
        'for arg in "$@"; do\n'
        '  case "$arg" in --user-data-dir=*)\n'
        '    profile="${arg#--user-data-dir=}"\n'
        f'    chown -R {uid}:{gid} "$profile" && export HOME="$profile" XDG_CONFIG_HOME="$profile" '
        'XDG_CACHE_HOME="$profile" ;;\n'
        "  esac\n"
        "done\n"
        f"exec {shlex.quote(setpriv)} --reuid={uid} --regid={gid} --clear-groups --inh-caps=-all --no-new-privs "
        f'-- {shlex.quote(chromium_path)} "$@"\n'
    )
    script.chmod(0o700)
    return script, uid


def install_hint(path: str) -> str:
    return (
        f"Chromium is not installed at {path}: install the Debian package `{CHROMIUM_PACKAGE}` "
        f"(apt-get install {CHROMIUM_PACKAGE}) or set MAILSEC_CHROMIUM_PATH"
    )


class Renderer:
    """Thread-safe; the browser starts on first use (or `start()`) and is shared by every caller."""

    def __init__(
        self,
        chromium_path: str = "/usr/bin/chromium",
        pages: int = 2,
        timeout: float = 10.0,
        max_height: int = 4000,
        width: int = WIDTH,
        idle_seconds: float = 0.0,
        user: str = "nobody",
    ) -> None:
        self.chromium_path = chromium_path
        self.pages = max(1, pages)
        self.timeout = timeout
        self.max_height = max(1, max_height)
        self.width = width
        self.idle_seconds = idle_seconds  # 0: the browser stays until close()
        self.user = user  # who Chromium runs as when we are root
        self.browser_version = ""
        self.launches = 0
        self.idle_closes = 0
        self.sandboxed = False  # the running browser has Chromium's own sandbox
        self.browser_uid: int | None = None
        self._wrapper: Path | None = None
        self._busy = 0
        self._last_used = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closing: asyncio.Future[None] | None = None
        self._thread_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Owned by the loop thread:
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._idle: list[_Slot] = []
        self._sem: asyncio.Semaphore | None = None
        self._browser_lock: asyncio.Lock | None = None

    # -- the calling side (any thread) ---------------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._thread_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    self._sem = asyncio.Semaphore(self.pages)
                    self._browser_lock = asyncio.Lock()
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=run, name="mailsec-preview", daemon=True)
                self._thread.start()
                ready.wait(10)
                self._loop = loop
            return self._loop

    def _call(self, coro: Any, wait: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        try:
            return future.result(wait)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise PreviewTimeout(f"the preview did not finish within {wait:.0f} s") from exc

    def start(self) -> None:
        """Launch the browser now (raises PreviewUnavailable when it cannot)."""
        self._call(self._ensure_browser(), LAUNCH_SECONDS + 5)

    def render(self, html: str, timeout: float | None = None) -> Rendered:
        budget = self.timeout if timeout is None else timeout
        rendered: Rendered = self._call(self._render(html, budget), 2 * budget + LAUNCH_SECONDS + 10)
        return rendered

    def close(self) -> None:
        with self._thread_lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(15)
        except Exception:
            log.warning("preview browser did not close cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(10)
        loop.close()

    # -- the loop thread -----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        await self._drop_browser()

    async def _drop_browser(self) -> None:
        self._idle.clear()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        browser, pw = self._browser, self._pw
        self._browser = self._pw = None
        if browser is not None:
            try:
                await asyncio.wait_for(browser.close(), 10)
            except Exception:
                log.debug("closing the preview browser failed", exc_info=True)
        if pw is not None:
            try:
                await asyncio.wait_for(pw.stop(), 10)
            except Exception:
                log.debug("stopping Playwright failed", exc_info=True)
        if self._wrapper is not None:
            shutil.rmtree(self._wrapper.parent, ignore_errors=True)
            self._wrapper = None

    def _schedule_idle_close(self) -> None:
        """Checked from the loop thread after each render: the browser goes when nothing used it for a while."""
        if self.idle_seconds <= 0 or self._idle_timer is not None or self._loop is None:
            return
        self._idle_timer = self._loop.call_later(self.idle_seconds, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._browser is None:
            return
        quiet = time.monotonic() - self._last_used
        if self._busy or quiet < self.idle_seconds:
            self._idle_timer = asyncio.get_running_loop().call_later(
                max(0.05, self.idle_seconds - quiet), self._idle_check
            )
            return
        self._closing = asyncio.ensure_future(self._close_idle())

    async def _close_idle(self) -> None:
        assert self._browser_lock is not None
        async with self._browser_lock:
            if self._busy or self._browser is None or time.monotonic() - self._last_used < self.idle_seconds:
                return
            log.info("closing the preview browser after %g s without a render", self.idle_seconds)
            self.idle_closes += 1
            await self._drop_browser()

    async def _launch(self, pw: Playwright) -> Browser:
        """Chromium with its sandbox where it has one, and never as root: as root, through the unprivileged
        wrapper. Without user namespaces (some containers) the sandbox cannot start: then without it, said loudly."""
        executable, self.browser_uid = self.chromium_path, os.geteuid()
        if os.geteuid() == 0:
            self._wrapper, self.browser_uid = unprivileged_wrapper(self.chromium_path, self.user)
            executable = str(self._wrapper)
        options: dict[str, Any] = {
            "executable_path": executable,
            "headless": True,
            "args": LAUNCH_ARGS,
            "proxy": DEAD_PROXY,
            "timeout": LAUNCH_SECONDS * 1000,
        }
        try:
            browser = await pw.chromium.launch(chromium_sandbox=True, **options)
            self.sandboxed = True
            return browser
        except _playwright_error() as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("Chromium's sandbox did not start (%s); running the preview browser without it", first)
        self.sandboxed = False
        return await pw.chromium.launch(chromium_sandbox=False, **options)

    async def _ensure_browser(self) -> Browser:
        assert self._browser_lock is not None
        async with self._browser_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                log.warning("the preview browser died; restarting it")
            await self._drop_browser()
            if not Path(self.chromium_path).is_file():
                raise PreviewUnavailable(install_hint(self.chromium_path))
            try:
                from playwright.async_api import async_playwright

                self._pw = await async_playwright().start()
                self._browser = await self._launch(self._pw)
            except PreviewUnavailable:
                await self._drop_browser()
                raise
            except Exception as exc:
                await self._drop_browser()
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise PreviewUnavailable(
                    f"Chromium at {self.chromium_path} did not start ({first}); reinstall the Debian package "
                    f"`{CHROMIUM_PACKAGE}`"
                ) from exc
            self.launches += 1
            self.browser_version = self._browser.version
            log.info(
                "preview browser started: Chromium %s, uid %s, %s",
                self.browser_version,
                self.browser_uid,
                "sandboxed" if self.sandboxed else "WITHOUT its sandbox",
            )
            return self._browser

    async def _new_slot(self, browser: Browser) -> _Slot:
        context = await browser.new_context(
            java_script_enabled=False,
            viewport={"width": self.width, "height": VIEW_HEIGHT},
            device_scale_factor=1,
            locale="en-US",
            timezone_id="UTC",
            color_scheme="light",
            reduced_motion="reduce",
            service_workers="block",
            accept_downloads=False,
        )
        page = await context.new_page()
        slot = _Slot(context, page, await context.new_cdp_session(page))

        async def refuse(route: Route, request: Request) -> None:
            url = request.url
            if url.startswith("data:"):
                await route.continue_()
                return
            if len(slot.requests) < MAX_RECORDED_REQUESTS:
                slot.requests.append((url[:2000], request.resource_type))
            await route.abort("blockedbyclient")

        await context.route("**/*", refuse)
        return slot

    async def _discard(self, slot: _Slot) -> None:
        try:
            await asyncio.wait_for(slot.context.close(), 5)
        except Exception:
            # A context that will not close means a wedged browser: start a fresh one next time.
            log.warning("a preview page did not close; restarting the browser")
            await self._drop_browser()

    async def _shoot(self, slot: _Slot, html: str, budget_ms: float) -> tuple[bytes, int, int]:
        page = slot.page
        if slot.view_height != VIEW_HEIGHT:
            await page.set_viewport_size({"width": self.width, "height": VIEW_HEIGHT})
            slot.view_height = VIEW_HEIGHT
        await page.set_content(html, wait_until="load", timeout=budget_ms)
        drawn, full = await page.evaluate(EXTENT_JS, MAX_MEASURED_ELEMENTS)
        content_height = int(full if drawn < 0 else drawn) or 1
        height = min(max(content_height + CONTENT_PADDING, MIN_HEIGHT), self.max_height)
        if height > slot.view_height:
            await page.set_viewport_size({"width": self.width, "height": height})
            slot.view_height = height
        # Only the picture's part of the viewport; Chromium's fast PNG encoder halves the time of a tall screenshot.
        clip = {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}
        shot = await slot.cdp.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True, "clip": clip})
        return base64.b64decode(shot["data"]), height, content_height

    async def _render(self, html: str, budget: float) -> Rendered:
        assert self._sem is not None
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._sem.acquire(), budget)
        except TimeoutError as exc:
            raise PreviewBusy(f"all {self.pages} preview pages stayed busy for {budget:.0f} s; retry shortly") from exc
        self._busy += 1
        try:
            for attempt in (1, 2):
                launching = time.perf_counter()
                browser = await self._ensure_browser()  # a (re)launch has its own deadline, not the render's
                started += time.perf_counter() - launching
                try:
                    slot = self._idle.pop() if self._idle else await self._new_slot(browser)
                except _playwright_error() as exc:
                    if attempt == 1 and not browser.is_connected():
                        continue
                    raise RenderFailed(f"the preview browser failed: {exc}") from exc
                slot.requests = []
                remaining = budget - (time.perf_counter() - started)
                try:
                    png, height, content_height = await asyncio.wait_for(
                        self._shoot(slot, html, max(remaining, 0.001) * 1000), max(remaining, 0.001)
                    )
                except (TimeoutError, _playwright_error()) as exc:
                    await self._discard(slot)
                    if isinstance(exc, _playwright_error()) and not browser.is_connected() and attempt == 1:
                        continue  # the browser died under us: relaunch and try once more
                    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
                        raise PreviewTimeout(f"the render did not finish within {budget:g} s") from exc
                    raise RenderFailed(f"the preview browser failed on this message: {exc}") from exc
                slot.uses += 1
                if slot.uses >= RECYCLE_AFTER:
                    await self._discard(slot)
                else:
                    self._idle.append(slot)
                return Rendered(
                    png=png,
                    width=self.width,
                    height=height,
                    content_height=content_height,
                    requests=list(slot.requests),
                    elapsed_ms=(time.perf_counter() - started) * 1000,
                )
            raise RenderFailed("the preview browser died twice during this render")
        except PreviewError:
            raise
        except Exception as exc:  # never let an unexpected browser error escape as a crash of the caller
            raise RenderFailed(f"the preview browser failed: {type(exc).__name__}: {exc}") from exc
        finally:
            self._busy -= 1
            self._last_used = time.monotonic()
            self._schedule_idle_close()
            self._sem.release()
