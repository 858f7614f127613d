-- The SMS path: opt-out state per (our number, contact), and the outbox of AI replies.

-- Mirrors the carrier/Twilio block: STOP from a contact blocks every reply from that number
-- until START/UNSTOP (or YES while blocked).
create table sms_opt_outs (
    our_number text not null check (our_number ~ '^\+[1-9][0-9]{1,14}$'),
    contact_number text not null,
    opted_out boolean not null,
    keyword text not null,
    updated_at timestamptz not null default now(),
    primary key (our_number, contact_number)
);

-- One AI reply per inbound message, written in the inbound message's transaction so a
-- restart between acknowledging Twilio and sending resumes it.
--   pending  -> (generate, claim) -> sending -> sent
--   pending  -> failed | skipped             (model failed / opted out or no spend since)
--   sending  -> pending                      (Twilio answered with a retryable error)
--   sending  -> unknown                      (crash or lost answer mid-send: never re-sent;
--                                             a status callback naming the reply resolves it)
create table sms_replies (
    id bigint generated always as identity primary key,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    conversation_id uuid not null references conversations (id) on delete cascade,
    inbound_message_id bigint not null unique references messages (id) on delete cascade,
    agent_id uuid references agents (id) on delete set null,
    from_number text not null,
    to_number text not null,
    status text not null default 'pending'
        check (status in ('pending', 'sending', 'sent', 'failed', 'skipped', 'unknown')),
    body text,
    attempts integer not null default 0,
    -- Whoever holds an unexpired lease works on a pending row; a claim that lost its lease
    -- can no longer move the row to 'sending', so two processes never send one reply.
    claim uuid,
    lease_until timestamptz,
    not_before timestamptz not null default now(),
    sending_at timestamptz,
    message_sid text unique,
    error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index sms_replies_open on sms_replies (not_before) where status in ('pending', 'sending');
