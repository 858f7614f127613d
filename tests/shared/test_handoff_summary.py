from shared import handoff_summary
from shared.handoff_summary import Turn


def _call(n: int) -> list[Turn]:
    turns: list[Turn] = []
    for i in range(n):
        turns.append(("user", f"caller line {i}"))
        turns.append(("assistant", f"agent line {i}"))
    return turns


def test_summary_prompt_holds_only_the_last_turns_within_the_turn_budget() -> None:
    messages = handoff_summary.summary_messages(_call(30), "fr-FR", max_turns=4)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert (
        "fr-FR" in messages[0]["content"] and "one short spoken paragraph" in messages[0]["content"]
    )
    transcript = messages[1]["content"]
    assert "Caller: caller line 28\nAssistant: agent line 28\nCaller: caller line 29" in transcript
    assert transcript.endswith("Assistant: agent line 29")
    assert "line 27" not in transcript


def test_summary_prompt_keeps_within_the_char_budget_and_skips_empty_and_system_turns() -> None:
    turns: list[Turn] = [
        ("user", "old " * 100),
        ("system", "internal note"),
        ("assistant", "   "),
        ("user", "I need   my\norder 42 refunded"),
    ]
    transcript = handoff_summary.summary_messages(turns, "en", max_chars=60)[1]["content"]
    assert "Caller: I need my order 42 refunded" in transcript
    assert "old" not in transcript and "internal note" not in transcript


def test_summary_prompt_cuts_one_very_long_last_turn_to_the_budget() -> None:
    transcript = handoff_summary.summary_messages([("user", "x" * 10_000)], "en", max_chars=500)
    body = transcript[1]["content"]
    assert len(body) < 600 and body.endswith("…")


def test_summary_prompt_of_an_empty_call_says_nothing_was_said() -> None:
    assert "(nothing said yet)" in handoff_summary.summary_messages([], "en")[1]["content"]


def test_fallback_joins_the_callers_last_three_requests_plainly() -> None:
    turns: list[Turn] = [
        ("user", "hello"),
        ("assistant", "Hi, how can I help?"),
        ("user", "my parcel is late."),
        ("assistant", "Sorry to hear that."),
        ("user", "order 1234"),
        ("user", "I want a refund"),
    ]
    summary = handoff_summary.fallback_summary(turns, "en-US")
    assert summary == "The caller said: my parcel is late; order 1234; I want a refund."


def test_fallback_speaks_the_agents_language_and_english_when_unknown() -> None:
    turns: list[Turn] = [("user", "commande 7")]
    assert handoff_summary.fallback_summary(turns, "fr-FR") == "L'appelant a dit : commande 7."
    assert handoff_summary.fallback_summary(turns, "xx") == "The caller said: commande 7."


def test_fallback_without_caller_words_says_so() -> None:
    summary = handoff_summary.fallback_summary([("assistant", "Hello!")], "de-DE")
    assert summary == "Der Anrufer hat noch nicht gesagt, was er braucht."


def test_fallback_is_bounded() -> None:
    turns: list[Turn] = [("user", "word " * 2000)]
    summary = handoff_summary.fallback_summary(turns, "en", max_chars=200)
    assert len(summary) <= 200 and summary.endswith("…")


def test_spoken_summary_is_one_bounded_paragraph_without_markdown() -> None:
    text = "**Caller** wants\n\n# a refund   for order 9.\n" + "more " * 300
    spoken = handoff_summary.spoken_summary(text, max_chars=100)
    assert spoken.startswith("Caller wants a refund for order 9.")
    assert "\n" not in spoken and "*" not in spoken and len(spoken) <= 100
    assert handoff_summary.spoken_summary("  \n ") == ""
