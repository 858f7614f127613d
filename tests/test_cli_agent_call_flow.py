"""`wassla agent create/set`: the voice, keypad hand-off and idle-timer options."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from tests.test_cli import ok_json, wassla


async def test_cli_sets_voice_handoff_key_mode_and_idle_timers(
    pool: asyncpg.Pool, pg_dsn: str, data_dir: Path
) -> None:
    ws = ok_json(pg_dsn, data_dir, "workspace", "create", "--name", "Acme", "--plan", "starter")
    agent = ok_json(
        pg_dsn, data_dir, "agent", "create", "--workspace", ws["id"], "--name", "Sara",
        "--instructions", "Help callers.", "--language", "fr-FR", "--voice", "Polly.Lea-Neural",
        "--handoff-number", "+33 1 23 45 67 89", "--handoff-digit", "9", "--handoff-mode", "warm",
        "--idle-prompt-seconds", "20", "--idle-goodbye-seconds", "10",
    )  # fmt: skip
    assert (agent["voice"], agent["handoff_digit"], agent["handoff_mode"]) == (
        "Polly.Lea-Neural", "9", "warm",
    )  # fmt: skip
    assert (agent["idle_prompt_seconds"], agent["idle_goodbye_seconds"]) == (20, 10)
    changed = ok_json(
        pg_dsn, data_dir, "agent", "set", agent["id"], "--voice", "onyx", "--handoff-digit", "",
        "--handoff-mode", "cold",
    )  # fmt: skip
    assert (changed["voice"], changed["handoff_digit"], changed["handoff_mode"]) == (
        "onyx", "", "cold",
    )  # fmt: skip


async def test_cli_refuses_a_voice_that_does_not_speak_the_agents_language(
    pool: asyncpg.Pool, pg_dsn: str, data_dir: Path
) -> None:
    ws = ok_json(pg_dsn, data_dir, "workspace", "create", "--name", "Acme", "--plan", "starter")
    base = ("agent", "create", "--workspace", ws["id"], "--name", "Sara", "--instructions", "x")
    result = wassla(pg_dsn, data_dir, *base, "--language", "en-US", "--voice", "Polly.Lea-Neural")
    assert result.returncode == 2, result.stderr
    [message] = result.stderr.strip().splitlines()
    assert "Polly.Lea-Neural" in message and "alloy" in message
    assert "Polly.Joanna-Neural" in message and "Traceback" not in result.stderr
    for bad in (("--handoff-digit", "12"), ("--handoff-mode", "hot"),
                ("--idle-prompt-seconds", "1")):  # fmt: skip
        refused = wassla(pg_dsn, data_dir, *base, *bad)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert await pool.fetchval("select count(*) from agents") == 0
