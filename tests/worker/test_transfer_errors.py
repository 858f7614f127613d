from livekit import api

from worker.voice_agent import refer_answered_but_reported_lost

# What livekit-sip v1.8.0 answers when its select picks the transaction's end over the 202.
LOST = "twirp error unknown: transaction failed to complete (0 intermediate responses)"


def test_an_answer_livekit_sip_lost_at_once_counts_as_an_answered_refer() -> None:
    assert refer_answered_but_reported_lost(api.TwirpError("canceled", LOST, status=408), 0.05)


def test_a_refer_nobody_answered_or_refused_is_a_failed_transfer() -> None:
    # No answer at all: the same words, but only after SIP's 32 s transaction timer.
    assert not refer_answered_but_reported_lost(api.TwirpError("canceled", LOST, status=408), 32.5)
    refused = api.TwirpError("unavailable", "SIP status: 603 Decline", status=503)
    assert not refer_answered_but_reported_lost(refused, 0.05)
    assert not refer_answered_but_reported_lost(TimeoutError(), 0.05)
