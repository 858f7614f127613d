"""Talk to your agent and Text your agent in headless Chromium, against `wassla dev` itself.

The stack is the product's own launcher with nothing configured (embedded Postgres, the local
Twilio sandbox, a local livekit-server, the gateway, the SMS sender, the voice worker); only
the model is the OpenAI stand-in. The browser opens the one link `wassla dev` printed. The
fake microphone plays a question spoken by espeak-ng, with pauses so the VAD hears it end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.standins.openai_api import OpenAIStandIn, wav_bytes
from tests.support import browser, livekit_server
from tests.support.audio import espeak_pcm
from tests.support.browser import OpenPage
from tests.support.dev_stack import DevStack
from tests.support.polling import eventually
from wassla.dev import DEMO_NUMBER

QUESTION = "What time do you open tomorrow?"
GREETING = "Thanks for calling the demo shop"  # the demo agent's greeting (wassla/dev.py)
CALL_WAIT_MS = 90_000  # a shared 2-core machine: the worker starts a job process per call
_MIC_RATE = 48_000

pytestmark = pytest.mark.skipif(
    livekit_server.skip_reason() is not None or browser.skip_reason() is not None,
    reason=str(livekit_server.skip_reason() or browser.skip_reason()),
)


@pytest.fixture(scope="module")
def dev_stack(_openai_standin: OpenAIStandIn) -> Iterator[DevStack]:
    with DevStack.start(openai_base_url=_openai_standin.base_url) as stack:
        yield stack


@pytest.fixture(scope="module")
def spoken_question(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The caller's question as a WAV, silence around it (Chromium loops the file)."""
    silence = b"\0\0" * _MIC_RATE
    speech = espeak_pcm(QUESTION, rate=_MIC_RATE)
    path = tmp_path_factory.mktemp("mic") / "question.wav"
    path.write_bytes(wav_bytes(silence * 2 + speech + silence * 3, _MIC_RATE))
    return path


async def _open_console(page: Page, stack: DevStack, nav: str) -> None:
    await page.goto(stack.link)  # the printed link signs the demo user in
    await page.get_by_role("link", name=nav).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(nav)


async def _no_calls(stack: DevStack) -> None:
    async def idle() -> bool:
        async with httpx.AsyncClient() as http:
            info = await http.get(f"http://127.0.0.1:{stack.worker_health_port}/worker")
        return not info.json().get("active_jobs", 0)

    await eventually(idle, within=60, what="the worker to hold no call")


async def test_talk_to_your_agent_plays_the_greeting_and_transcribes_the_caller(
    dev_stack: DevStack,
    openai_standin: OpenAIStandIn,
    browser_page: OpenPage,
    spoken_question: Path,
) -> None:
    openai_standin.script_transcripts(QUESTION)
    page = await browser_page(fake_audio=spoken_question)
    await _open_console(page, dev_stack, "Talk to your agent")
    await page.get_by_role("button", name="Start talking").click()
    talk = page.locator("#talk")
    await expect(talk).to_have_attribute("data-connected", "true", timeout=CALL_WAIT_MS)
    # The agent's greeting: its audio arrives (WebRTC's inbound level) and its words show.
    await expect(talk).to_have_attribute("data-agent-heard", "true", timeout=CALL_WAIT_MS)
    agent_lines = page.locator("#talk-transcript .turn.agent .body")
    await expect(agent_lines.first).to_contain_text(GREETING, timeout=CALL_WAIT_MS)
    assert any(GREETING in r["body"]["input"] for r in openai_standin.speech_requests)
    # The caller's spoken question: heard by the VAD, sent to STT, shown as the caller's turn.
    caller_lines = page.locator("#talk-transcript .turn.caller .body")
    await expect(caller_lines.first).to_have_text(QUESTION, timeout=CALL_WAIT_MS)
    heard = openai_standin.transcription_requests[0]
    assert heard["audio_bytes"] > 16_000, heard  # real audio from the fake microphone
    await page.get_by_role("button", name="Hang up").click()
    await expect(page.locator("#talk-status")).to_contain_text("ended")
    await _no_calls(dev_stack)


async def test_text_your_agent_shows_the_reply_the_sandbox_recorded(
    dev_stack: DevStack, openai_standin: OpenAIStandIn, browser_page: OpenPage
) -> None:
    openai_standin.script_chat("We open at nine tomorrow.")
    page = await browser_page()
    await _open_console(page, dev_stack, "Text your agent")
    await expect(page.locator("#phone-number")).to_contain_text(DEMO_NUMBER)
    contact = await page.locator("#phone-contact").input_value()
    await page.locator("#phone-body").fill("When do you open tomorrow?")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator(".bubble.sent .body").last).to_have_text("When do you open tomorrow?")
    # Shown without a reload, once the sandbox has it: the reply as the contact's phone got it.
    await expect(page.locator(".bubble.received .body").last).to_have_text(
        "We open at nine tomorrow.", timeout=60_000
    )
    recorded = [t for t in dev_stack.sandbox_texts() if t["to"] == contact]
    assert [t["body"] for t in recorded] == ["We open at nine tomorrow."]
    assert recorded[0]["from"] == DEMO_NUMBER


async def test_text_your_agent_explains_a_bad_contact_number(
    dev_stack: DevStack, browser_page: OpenPage
) -> None:
    page = await browser_page()
    await _open_console(page, dev_stack, "Text your agent")
    await page.locator("#phone-contact").fill("5551234")
    await page.locator("#phone-body").fill("hello")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#phone-error")).to_contain_text("international format")
    await expect(page.locator("#phone-body")).to_have_value("hello")  # kept: it was not sent
