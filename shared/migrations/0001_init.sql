-- The data model the gateway and the voice worker both write to.
-- Money is integer minor units (cents); time is timestamptz (UTC).

create table plans (
    code text primary key,
    name text not null,
    includes_sms boolean not null,
    includes_voice boolean not null,
    sms_segment_price_minor bigint not null check (sms_segment_price_minor >= 0),
    voice_minute_price_minor bigint not null check (voice_minute_price_minor >= 0),
    currency text not null default 'USD'
);

insert into plans (code, name, includes_sms, includes_voice,
                   sms_segment_price_minor, voice_minute_price_minor) values
    ('trial',   'Trial',   false, false, 0, 0),
    ('starter', 'Starter', true,  true,  4, 9),
    ('growth',  'Growth',  true,  true,  3, 7),
    ('scale',   'Scale',   true,  true,  2, 5);

create table workspaces (
    id uuid primary key default gen_random_uuid(),
    name text not null check (length(name) between 1 and 200),
    plan text not null references plans (code),
    billing_mode text not null default 'infra_only'
        check (billing_mode in ('infra_only', 'live')),
    credit_balance_minor bigint not null default 0,
    -- Country calling codes support enabled beyond the default allow-list (e.g. {20, 91}).
    enabled_calling_codes integer[] not null default '{}',
    created_at timestamptz not null default now()
);

create table workspace_members (
    workspace_id uuid not null references workspaces (id) on delete cascade,
    user_id text not null check (length(user_id) between 1 and 200),
    role text not null check (role in ('owner', 'admin', 'support', 'viewer')),
    created_at timestamptz not null default now(),
    primary key (workspace_id, user_id)
);

create table agents (
    id uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references workspaces (id) on delete cascade,
    name text not null check (length(name) between 1 and 200),
    instructions text not null default '',
    greeting text not null default '',
    modality text not null default 'text_voice'
        check (modality in ('text', 'voice', 'text_voice')),
    language text not null default 'en-US',
    voice text,
    chat_model text,
    active boolean not null default true,
    max_call_seconds integer not null default 600
        check (max_call_seconds between 30 and 14400),
    handoff_number text check (handoff_number ~ '^\+[1-9][0-9]{1,14}$'),
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default now()
);
create index agents_routing on agents (workspace_id, created_at, id) where active;

create table channels (
    id uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references workspaces (id) on delete cascade,
    kind text not null check (kind in ('sms', 'voice')),
    phone_number text not null check (phone_number ~ '^\+[1-9][0-9]{1,14}$'),
    active boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
-- One number is active on at most one channel of a kind in the whole system.
create unique index channels_one_active_number on channels (kind, phone_number) where active;
create index channels_workspace on channels (workspace_id);

create table agent_channels (
    channel_id uuid primary key references channels (id) on delete cascade,
    agent_id uuid not null references agents (id) on delete cascade,
    created_at timestamptz not null default now()
);

create table conversations (
    id uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references workspaces (id) on delete cascade,
    channel_id uuid references channels (id),
    kind text not null check (kind in ('sms', 'voice', 'playground')),
    agent_id uuid references agents (id) on delete set null,
    contact_number text,
    status text not null default 'open' check (status in ('open', 'closed')),
    handed_off boolean not null default false,
    is_test boolean not null default false,
    opened_at timestamptz not null default now(),
    closed_at timestamptz,
    last_message_at timestamptz
);
-- An SMS thread stays one open conversation per channel and contact; calls get one each.
create unique index conversations_one_open_sms on conversations (channel_id, contact_number)
    where status = 'open' and kind = 'sms';
create index conversations_workspace on conversations (workspace_id, opened_at desc);

create table messages (
    id bigint generated always as identity primary key,
    conversation_id uuid not null references conversations (id) on delete cascade,
    direction text not null check (direction in ('inbound', 'outbound')),
    role text not null check (role in ('user', 'assistant', 'system')),
    body text not null,
    -- The provider's id (MessageSid, or a worker-made id): a retry never stores twice.
    provider_id text unique,
    status text,
    interrupted boolean not null default false,
    num_segments integer,
    created_at timestamptz not null default clock_timestamp()
);
create index messages_conversation on messages (conversation_id, id);

create table calls (
    id uuid primary key default gen_random_uuid(),
    call_sid text not null unique,
    conversation_id uuid not null references conversations (id) on delete cascade,
    workspace_id uuid not null references workspaces (id) on delete cascade,
    channel_id uuid references channels (id),
    agent_id uuid references agents (id) on delete set null,
    source text not null check (source in ('twilio', 'livekit')),
    status text not null,
    from_number text,
    to_number text,
    connected_at timestamptz,
    ended_at timestamptz,
    duration_seconds integer check (duration_seconds >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index calls_open on calls (updated_at) where ended_at is null;

create table recordings (
    id uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references workspaces (id) on delete cascade,
    conversation_id uuid not null references conversations (id) on delete cascade,
    call_id uuid references calls (id) on delete set null,
    provider_id text unique,
    bucket_key text not null unique,
    content_type text not null,
    duration_seconds integer check (duration_seconds >= 0),
    size_bytes bigint not null check (size_bytes >= 0),
    created_at timestamptz not null default now()
);

create table charges (
    id uuid primary key default gen_random_uuid(),
    workspace_id uuid not null references workspaces (id) on delete cascade,
    kind text not null check (kind in ('outbound_messages', 'voice_minutes')),
    quantity integer not null check (quantity > 0),
    unit_price_minor bigint not null check (unit_price_minor >= 0),
    amount_minor bigint not null check (amount_minor = quantity * unit_price_minor),
    idempotency_key text not null unique,
    conversation_id uuid references conversations (id) on delete set null,
    reference text,
    created_at timestamptz not null default now()
);
create index charges_workspace on charges (workspace_id, created_at);
