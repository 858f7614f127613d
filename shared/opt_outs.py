"""SMS opt-out keywords and the contact's state, per (our number, contact).

Twilio's default opt-out handling blocks a contact after STOP (and its synonyms) and
answers STOP, START and HELP itself; we mirror the block so the AI never replies to an
opted-out contact (Twilio would refuse with 21610 anyway) and never answers a keyword.
"""

from __future__ import annotations

from enum import StrEnum

from shared.pg import Connection

OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# Twilio's refusal to text a contact who is opted out at Twilio (REST error 21610); such an
# opt-out is recorded with this in place of the keyword we never saw.
UNSUBSCRIBED_ERROR = 21610
UNSUBSCRIBED_KEYWORD = "twilio:21610"
# "Yes" is also an ordinary answer to the agent's question: it only re-subscribes a contact
# who is opted out.
_CONDITIONAL_OPT_IN = frozenset({"YES"})
_TRIM = " \t\r\n.!?,;:'\"“”‘’"


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


def keyword_of(body: str, opt_out_type: str | None = None) -> tuple[Keyword, str] | None:
    """The keyword a message is, if it is one word from the lists (or Twilio says so)."""
    word = body.strip(_TRIM).upper()
    if opt_out_type:  # Advanced Opt-Out names the kind itself, custom keywords included
        kind = {"STOP": Keyword.STOP, "START": Keyword.START, "HELP": Keyword.HELP}.get(
            opt_out_type.strip().upper()
        )
        if kind is not None:
            return kind, word or opt_out_type.upper()
    if word in OPT_OUT_KEYWORDS:
        return Keyword.STOP, word
    if word in OPT_IN_KEYWORDS:
        return Keyword.START, word
    if word in HELP_KEYWORDS:
        return Keyword.HELP, word
    return None


def is_conditional_opt_in(word: str) -> bool:
    return word in _CONDITIONAL_OPT_IN


async def is_opted_out(conn: Connection, our_number: str, contact_number: str) -> bool:
    value: bool | None = await conn.fetchval(
        "select opted_out from sms_opt_outs where our_number = $1 and contact_number = $2",
        our_number,
        contact_number,
    )
    return bool(value)


async def set_opted_out(
    conn: Connection, our_number: str, contact_number: str, *, opted_out: bool, keyword: str
) -> None:
    """Record the contact's latest opt-out or opt-in keyword."""
    await conn.execute(
        """
        insert into sms_opt_outs (our_number, contact_number, opted_out, keyword)
        values ($1, $2, $3, $4)
        on conflict (our_number, contact_number)
        do update set opted_out = excluded.opted_out, keyword = excluded.keyword,
                      updated_at = now()
        """,
        our_number,
        contact_number,
        opted_out,
        keyword,
    )
