-- The console's inbox and conversation views look calls and charges up by conversation on
-- every live refresh (shared/inbox.py), and a deleted conversation cascades to its calls and
-- nulls its charges: without these each is a scan of the whole table.

create index calls_conversation on calls (conversation_id);
create index charges_conversation on charges (conversation_id) where conversation_id is not null;
