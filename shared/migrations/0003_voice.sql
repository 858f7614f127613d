-- Voice over TwiML: recordings to fetch from Twilio, written before the fetch so a restart
-- (or a failed fetch) is resumed by the gateway's start-up sweep instead of lost.

create table voice_recording_fetches (
    recording_sid text primary key,
    call_sid text not null,
    recording_url text not null,
    duration_seconds integer check (duration_seconds >= 0),
    status text not null default 'pending' check (status in ('pending', 'done', 'failed')),
    attempts integer not null default 0,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index voice_recording_fetches_pending on voice_recording_fetches (created_at)
    where status = 'pending';
