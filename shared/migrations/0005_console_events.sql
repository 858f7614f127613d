-- The console's live views: every change a person watches (a turn, a charge, a call's status,
-- a recording, the balance) sends `pg_notify('console_events', {workspace, conversation, kind})`
-- in the writer's own transaction, so a browser hears of it once it is committed. Gateways
-- LISTEN on one connection each and fan out (webhook_gateway/console/live.py); no table is
-- polled. Payloads carry ids only: a page reads what changed through its member's own query.
-- Kinds: `message` (a turn stored or changed), `conversation` (opened; status, agent or
-- hand-off changed), `call` (opened; status, connection, end), `recording`, `charge`,
-- `workspace` (balance, mode, plan). Identical payloads in one transaction are delivered once.

create function console_notify(workspace uuid, conversation uuid, kind text) returns void
language sql as $$
    select pg_notify('console_events', json_build_object(
        'workspace', workspace, 'conversation', conversation, 'kind', kind)::text)
$$;

-- Messages arrive in batches (the SMS intake stores many texts in one statement): one
-- notification per conversation of the statement, not one per row.
create function console_messages_inserted() returns trigger language plpgsql as $$
begin
    perform console_notify(c.workspace_id, c.id, 'message')
    from (select distinct conversation_id from new_rows) n
    join conversations c on c.id = n.conversation_id;
    return null;
end $$;
create trigger console_messages_inserted after insert on messages
    referencing new table as new_rows for each statement
    execute function console_messages_inserted();

create function console_message_changed() returns trigger language plpgsql as $$
begin
    perform console_notify(c.workspace_id, c.id, 'message')
    from conversations c where c.id = new.conversation_id;
    return null;
end $$;
create trigger console_message_changed after update on messages for each row
    when ((old.body, old.status, old.interrupted) is distinct from
          (new.body, new.status, new.interrupted))
    execute function console_message_changed();

create function console_conversations_inserted() returns trigger language plpgsql as $$
begin
    perform console_notify(n.workspace_id, n.id, 'conversation') from new_rows n;
    return null;
end $$;
create trigger console_conversations_inserted after insert on conversations
    referencing new table as new_rows for each statement
    execute function console_conversations_inserted();

-- Not last_message_at: every message moves it, and the message itself already notified.
create function console_conversation_changed() returns trigger language plpgsql as $$
begin
    perform console_notify(new.workspace_id, new.id, 'conversation');
    return null;
end $$;
create trigger console_conversation_changed after update on conversations for each row
    when ((old.status, old.agent_id, old.handed_off) is distinct from
          (new.status, new.agent_id, new.handed_off))
    execute function console_conversation_changed();

-- Not the live call's heartbeat (updated_at alone): only what the page shows.
create function console_call_changed() returns trigger language plpgsql as $$
begin
    perform console_notify(new.workspace_id, new.conversation_id, 'call');
    return null;
end $$;
create trigger console_call_inserted after insert on calls for each row
    execute function console_call_changed();
create trigger console_call_changed after update on calls for each row
    when ((old.status, old.connected_at, old.ended_at, old.duration_seconds) is distinct from
          (new.status, new.connected_at, new.ended_at, new.duration_seconds))
    execute function console_call_changed();

create function console_row_for_conversation() returns trigger language plpgsql as $$
begin
    perform console_notify(new.workspace_id, new.conversation_id, TG_ARGV[0]);
    return null;
end $$;
create trigger console_charge_inserted after insert on charges for each row
    execute function console_row_for_conversation('charge');
create trigger console_recording_inserted after insert on recordings for each row
    execute function console_row_for_conversation('recording');

create function console_workspace_changed() returns trigger language plpgsql as $$
begin
    perform console_notify(new.id, null, 'workspace');
    return null;
end $$;
create trigger console_workspace_changed after update on workspaces for each row
    when ((old.credit_balance_minor, old.billing_mode, old.plan) is distinct from
          (new.credit_balance_minor, new.billing_mode, new.plan))
    execute function console_workspace_changed();
