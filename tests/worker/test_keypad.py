"""The keypad's rules on their own: what a press means, when an entry ends, what is refused."""

from __future__ import annotations

import asyncio

from worker.keypad import Keypad


def keypad(
    handoff_digit: str = "0", timeout: float = 0.2, max_digits: int = 4
) -> tuple[Keypad, list[str]]:
    events: list[str] = []
    pad = Keypad(
        handoff_digit=handoff_digit,
        digit_timeout=timeout,
        max_digits=max_digits,
        on_handoff=lambda: events.append("handoff"),
        on_entry=lambda digits: events.append(digits),
    )
    return pad, events


async def test_the_hand_off_digit_counts_only_as_the_first_key_of_an_entry() -> None:
    pad, events = keypad()
    for key in "10#0":
        assert pad.press(key)
    assert events == ["10", "handoff"]


async def test_without_a_hand_off_digit_every_key_is_an_entry() -> None:
    pad, events = keypad(handoff_digit="")
    for key in "0*#":
        pad.press(key)
    assert events == ["0*"]


async def test_an_entry_ends_at_the_bound_and_after_the_inter_digit_pause() -> None:
    pad, events = keypad(max_digits=3, timeout=0.2)
    for key in "12345":
        pad.press(key)
    assert events == ["123"]
    assert pad.pending == "45"
    await asyncio.sleep(0.3)
    assert events == ["123", "45"]
    pad.press("7")
    await asyncio.sleep(0.1)
    pad.press("8")  # a key within the pause restarts it
    await asyncio.sleep(0.15)
    assert events == ["123", "45"]
    await asyncio.sleep(0.15)
    assert events == ["123", "45", "78"]


async def test_what_is_no_keypad_key_is_refused_and_a_lone_hash_sends_nothing() -> None:
    pad, events = keypad()
    assert not pad.press("x")
    assert not pad.press("12")
    assert not pad.press("")
    assert pad.press("#")
    pad.close()
    assert events == []


async def test_star_ends_entries_when_hash_is_the_hand_off_digit() -> None:
    pad, events = keypad(handoff_digit="#")
    for key in "12*#":
        pad.press(key)
    assert events == ["12", "handoff"]
