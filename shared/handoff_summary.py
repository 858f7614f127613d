"""What the person who answers a warm hand-off is told about the call so far.

One prompt builder for both voice paths (the TwiML loop and the LiveKit worker): each sends
`summary_messages` to its own chat client, cleans the answer with `spoken_summary`, and says
`fallback_summary` when the model fails, so the person always hears something. Everything is
bounded: the turns (count and characters) the model sees, and what is spoken, since a summary
is read out on a phone leg before the caller is connected.
"""

from __future__ import annotations

from collections.abc import Sequence

Turn = tuple[str, str]  # (role, text) of a stored message: "user" is the caller

MAX_TURNS = 20  # the last turns a summary is built from
MAX_PROMPT_CHARS = 6_000  # of conversation text the model is given
MAX_SUMMARY_CHARS = 600  # what is spoken to the person: a paragraph, read in ~30 s
_FALLBACK_REQUESTS = 3  # the caller's last requests the fallback repeats

_INSTRUCTIONS = (
    "You brief a colleague who is about to take over a phone call from an AI assistant. "
    "Write one short spoken paragraph (at most three sentences, under {chars} characters) "
    "in the language {language}: who is calling if known, what they want, and what has "
    "been said or promised so far. No lists, no markdown, no greeting, no preamble; "
    "do not invent details that are not in the conversation."
)

# The fallback's lead-in by language (the agent's language, as the fixed lines in phrases).
_FALLBACK_LEAD: dict[str, tuple[str, str]] = {
    # (with requests, without)
    "en": ("The caller said: ", "The caller has not said what they need yet."),
    "ar": ("قال المتصل: ", "لم يذكر المتصل ما يحتاجه بعد."),
    "fr": ("L'appelant a dit : ", "L'appelant n'a pas encore dit ce qu'il souhaite."),
    "es": ("La persona que llama dijo: ", "La persona que llama aún no dijo qué necesita."),
    "de": ("Der Anrufer sagte: ", "Der Anrufer hat noch nicht gesagt, was er braucht."),
    "it": ("Il chiamante ha detto: ", "Il chiamante non ha ancora detto cosa gli serve."),
    "pt": ("A pessoa disse: ", "A pessoa ainda não disse o que precisa."),
    "tr": ("Arayan kişi şunu söyledi: ", "Arayan kişi henüz ne istediğini söylemedi."),
    "hi": ("कॉल करने वाले ने कहा: ", "कॉल करने वाले ने अभी तक नहीं बताया कि उन्हें क्या चाहिए।"),
    "ur": ("کال کرنے والے نے کہا: ", "کال کرنے والے نے ابھی نہیں بتایا کہ انہیں کیا چاہیے۔"),
}  # fmt: skip


def _flat(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word where one is near, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: max(limit - 1, 0)]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:") + "…"


def _recent(turns: Sequence[Turn], max_turns: int, max_chars: int) -> list[Turn]:
    """The latest caller/assistant turns that fit both budgets, oldest first."""
    kept: list[Turn] = []
    chars = 0
    for role, text in reversed(turns[-max_turns:] if max_turns > 0 else []):
        flat = _flat(text)
        if role not in ("user", "assistant") or not flat:
            continue
        if chars + len(flat) > max_chars:
            if not kept:  # one long last turn still counts, cut to the budget
                kept.append((role, _cut(flat, max_chars)))
            break
        chars += len(flat)
        kept.append((role, flat))
    kept.reverse()
    return kept


def summary_messages(
    turns: Sequence[Turn],
    language: str,
    *,
    max_turns: int = MAX_TURNS,
    max_chars: int = MAX_PROMPT_CHARS,
) -> list[dict[str, str]]:
    """Chat-completions messages asking for a one-paragraph summary of the last turns."""
    recent = _recent(turns, max_turns, max_chars)
    transcript = "\n".join(
        f"{'Caller' if role == 'user' else 'Assistant'}: {text}" for role, text in recent
    )
    return [
        {
            "role": "system",
            "content": _INSTRUCTIONS.format(chars=MAX_SUMMARY_CHARS, language=language or "en"),
        },
        {"role": "user", "content": f"The call so far:\n{transcript or '(nothing said yet)'}"},
    ]


def spoken_summary(model_text: str, *, max_chars: int = MAX_SUMMARY_CHARS) -> str:
    """The model's answer as one bounded paragraph ("" when there is nothing to say)."""
    return _cut(_flat(model_text.replace("*", "").replace("#", "")), max_chars)


def fallback_summary(
    turns: Sequence[Turn], language: str, *, max_chars: int = MAX_SUMMARY_CHARS
) -> str:
    """The caller's last few requests joined plainly, for when the model cannot summarise."""
    code = (language or "en").split("-")[0].lower()
    with_requests, without = _FALLBACK_LEAD.get(code, _FALLBACK_LEAD["en"])
    said = [text for role, text in _recent(turns, MAX_TURNS, MAX_PROMPT_CHARS) if role == "user"]
    if not said:
        return without
    requests = [s.rstrip(" .;") for s in said[-_FALLBACK_REQUESTS:]]
    return _cut(with_requests + "; ".join(requests) + ".", max_chars)
