"""AI agents of a workspace."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from shared.e164 import normalize_e164
from shared.errors import InvalidInput, NotFound
from shared.models import Agent, Modality
from shared.pg import Connection
from shared.voices import check_voice

HANDOFF_DIGITS = frozenset({"", *"0123456789*#"})

_COLUMNS = (
    "id, workspace_id, name, instructions, greeting, modality, language, voice, chat_model,"
    " active, max_call_seconds, handoff_number, created_at, handoff_digit, handoff_mode,"
    " idle_prompt_seconds, idle_goodbye_seconds"
)


@dataclass
class AgentFields:
    """What a create or update sets; None means "leave as is" on update."""

    name: str | None = None
    instructions: str | None = None
    greeting: str | None = None
    modality: Modality | None = None
    language: str | None = None
    voice: str | None = None
    chat_model: str | None = None
    active: bool | None = None
    max_call_seconds: int | None = None
    handoff_number: str | None = None
    handoff_digit: str | None = None
    handoff_mode: str | None = None
    idle_prompt_seconds: int | None = None
    idle_goodbye_seconds: int | None = None

    def validated(self, current_language: str | None = None) -> AgentFields:
        """The fields checked and normalised; `current_language` is the stored agent's, for
        checking a voice an update sets without changing the language."""
        if self.name is not None and not self.name.strip():
            raise InvalidInput("agent name must not be empty")
        if self.max_call_seconds is not None and not 30 <= self.max_call_seconds <= 14400:
            raise InvalidInput("max call length must be between 30 and 14400 seconds")
        handoff = self.handoff_number
        if handoff:
            handoff = normalize_e164(handoff)
        if self.handoff_digit is not None and self.handoff_digit not in HANDOFF_DIGITS:
            raise InvalidInput("hand-off digit must be one keypad key (0-9, * or #), or empty")
        if self.handoff_mode is not None and self.handoff_mode not in ("cold", "warm"):
            raise InvalidInput("hand-off mode must be cold or warm")
        for label, seconds in (
            ("idle prompt", self.idle_prompt_seconds),
            ("idle goodbye", self.idle_goodbye_seconds),
        ):
            if seconds is not None and not 3 <= seconds <= 300:
                raise InvalidInput(f"{label} must be between 3 and 300 seconds")
        voice = self.voice
        if voice:  # "" clears it: each path's default voice
            voice = check_voice(voice, self.language or current_language or "en-US")
        return AgentFields(
            name=self.name.strip() if self.name else self.name,
            instructions=self.instructions,
            greeting=self.greeting,
            modality=Modality(self.modality) if self.modality else None,
            language=self.language,
            voice=voice,
            chat_model=self.chat_model,
            active=self.active,
            max_call_seconds=self.max_call_seconds,
            handoff_number=handoff,
            handoff_digit=self.handoff_digit,
            handoff_mode=self.handoff_mode,
            idle_prompt_seconds=self.idle_prompt_seconds,
            idle_goodbye_seconds=self.idle_goodbye_seconds,
        )


async def create_agent(conn: Connection, workspace_id: UUID, spec: AgentFields) -> Agent:
    spec = spec.validated()
    if not spec.name:
        raise InvalidInput("agent name is required")
    row = await conn.fetchrow(
        f"""
        insert into agents (workspace_id, name, instructions, greeting, modality, language,
                            voice, chat_model, active, max_call_seconds, handoff_number,
                            handoff_digit, handoff_mode, idle_prompt_seconds,
                            idle_goodbye_seconds)
        values ($1, $2, coalesce($3, ''), coalesce($4, ''), coalesce($5, 'text_voice'),
                coalesce($6, 'en-US'), $7, $8, coalesce($9, true), coalesce($10, 600), $11,
                coalesce($12, '0'), coalesce($13, 'cold'), $14, $15)
        returning {_COLUMNS}
        """,
        workspace_id,
        spec.name,
        spec.instructions,
        spec.greeting,
        spec.modality.value if spec.modality else None,
        spec.language,
        spec.voice,
        spec.chat_model,
        spec.active,
        spec.max_call_seconds,
        spec.handoff_number,
        spec.handoff_digit,
        spec.handoff_mode,
        spec.idle_prompt_seconds,
        spec.idle_goodbye_seconds,
    )
    return Agent.from_row(row)


async def update_agent(conn: Connection, agent_id: UUID, spec: AgentFields) -> Agent:
    current_language = None
    if spec.voice or spec.language:  # the voice must speak the language, whichever changes
        current = await conn.fetchrow("select language, voice from agents where id = $1", agent_id)
        if current is not None:
            current_language = current["language"]
            if spec.language and spec.voice is None and current["voice"]:
                try:
                    check_voice(current["voice"], spec.language)
                except InvalidInput as exc:
                    raise InvalidInput(
                        f"the agent's voice {current['voice']!r} does not speak"
                        f" {spec.language!r}: set a voice for it too. {exc}"
                    ) from None
    spec = spec.validated(current_language)
    row = await conn.fetchrow(
        f"""
        update agents set
            name = coalesce($2, name), instructions = coalesce($3, instructions),
            greeting = coalesce($4, greeting), modality = coalesce($5, modality),
            language = coalesce($6, language), voice = coalesce($7, voice),
            chat_model = coalesce($8, chat_model), active = coalesce($9, active),
            max_call_seconds = coalesce($10, max_call_seconds),
            handoff_number = coalesce($11, handoff_number),
            handoff_digit = coalesce($12, handoff_digit),
            handoff_mode = coalesce($13, handoff_mode),
            idle_prompt_seconds = coalesce($14, idle_prompt_seconds),
            idle_goodbye_seconds = coalesce($15, idle_goodbye_seconds), updated_at = now()
        where id = $1
        returning {_COLUMNS}
        """,
        agent_id,
        spec.name,
        spec.instructions,
        spec.greeting,
        spec.modality.value if spec.modality else None,
        spec.language,
        spec.voice,
        spec.chat_model,
        spec.active,
        spec.max_call_seconds,
        spec.handoff_number,
        spec.handoff_digit,
        spec.handoff_mode,
        spec.idle_prompt_seconds,
        spec.idle_goodbye_seconds,
    )
    if row is None:
        raise NotFound(f"agent {agent_id} not found")
    return Agent.from_row(row)


async def get_agent(conn: Connection, agent_id: UUID) -> Agent:
    row = await conn.fetchrow(f"select {_COLUMNS} from agents where id = $1", agent_id)
    if row is None:
        raise NotFound(f"agent {agent_id} not found")
    return Agent.from_row(row)


async def list_agents(conn: Connection, workspace_id: UUID) -> list[Agent]:
    rows = await conn.fetch(
        f"select {_COLUMNS} from agents where workspace_id = $1 order by created_at, id",
        workspace_id,
    )
    return [Agent.from_row(r) for r in rows]
