"""One headless Chromium for the whole preview test session (starting one costs ~2 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailsec.preview import PreviewUnavailable, Renderer


@pytest.fixture(scope="session")
def renderer() -> Iterator[Renderer]:
    r = Renderer(pages=2, timeout=10.0, max_height=4000)
    try:
        r.start()
    except PreviewUnavailable as exc:
        pytest.skip(f"no usable Chromium: {exc}")
    yield r
    r.close()
