"""Headless Chromium from Debian's packages (`/usr/bin/chromium`), driven by Playwright.

Playwright's wheel carries its driver; the browser is the system one (`executable_path`), so
nothing is downloaded. The microphone and camera are Chromium's fake devices, allowed without
a prompt; `fake_audio=` makes the fake microphone play a WAV file instead of a beep.

tests/conftest.py registers the fixtures for every test: `async def test_x(page: Page)` for a
plain page, or

    async def test_y(browser_page: OpenPage) -> None:
        page = await browser_page(fake_audio=Path("question.wav"))

Each call opens a fresh context (no cookies shared between pages); one browser is launched
per distinct `fake_audio` and closed at the end of the run. Pages and contexts close after
the test. Without chromium the fixtures skip with a one-line reason.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Protocol

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
_FLAGS = [
    "--use-fake-ui-for-media-stream",  # grant getUserMedia without a permission prompt
    "--use-fake-device-for-media-stream",  # a synthetic microphone and camera
    "--autoplay-policy=no-user-gesture-required",  # the agent's audio plays unprompted
    "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
    "--disable-dev-shm-usage",  # small /dev/shm in containers
]


class OpenPage(Protocol):
    def __call__(self, *, fake_audio: Path | None = None) -> Awaitable[Page]: ...


def chromium_path() -> Path | None:
    """Debian's chromium, or whichever `chromium` is on PATH; None when there is none."""
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


def skip_reason() -> str | None:
    """Why browser tests cannot run here, or None."""
    if chromium_path() is None:
        return "chromium not installed (apt-get install chromium; scripts/test-deps does it)"
    return None


def launch_args(fake_audio: Path | None = None) -> list[str]:
    """Chromium's flags; `fake_audio` (a WAV file) becomes the fake microphone's sound."""
    args = list(_FLAGS)
    if fake_audio is not None:
        if not fake_audio.is_file():
            raise FileNotFoundError(f"fake microphone audio {fake_audio} does not exist")
        args.append(f"--use-file-for-fake-audio-capture={fake_audio.absolute()}")
    return args


@pytest.fixture(scope="session")
async def playwright_driver() -> AsyncIterator[Playwright]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    async with async_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
async def chromium_browsers(
    playwright_driver: Playwright,
) -> AsyncIterator[dict[str | None, Browser]]:
    """One browser per fake-microphone file, launched when first asked for."""
    browsers: dict[str | None, Browser] = {}
    yield browsers
    for browser in browsers.values():
        await browser.close()


@pytest.fixture
async def browser_page(
    playwright_driver: Playwright, chromium_browsers: dict[str | None, Browser]
) -> AsyncIterator[OpenPage]:
    """`await browser_page(fake_audio=None)`: a new page in a fresh context."""
    contexts: list[BrowserContext] = []

    async def open_page(*, fake_audio: Path | None = None) -> Page:
        key = str(fake_audio) if fake_audio is not None else None
        browser = chromium_browsers.get(key)
        if browser is None:
            browser = await playwright_driver.chromium.launch(
                executable_path=chromium_path(), headless=True, args=launch_args(fake_audio)
            )
            chromium_browsers[key] = browser
        context = await browser.new_context(permissions=["microphone"])
        contexts.append(context)
        new_page = await context.new_page()
        new_page.set_default_timeout(15_000)  # a shared 2-core machine: generous, not flaky
        return new_page

    yield open_page
    for context in contexts:
        await context.close()


@pytest.fixture
async def page(browser_page: OpenPage) -> Page:
    """A plain headless page (fake microphone beeping), in a fresh context."""
    return await browser_page()
