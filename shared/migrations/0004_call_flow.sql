-- How an agent's calls flow beyond the model: the keypad digit that reaches a person at once,
-- a cold (SIP REFER / TwiML <Dial>) or warm (summary first) hand-off, and idle-caller timers
-- overriding the deployment's settings (null: the settings' values).

alter table agents
    add column handoff_digit text not null default '0'
        check (handoff_digit in ('', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#')),
    add column handoff_mode text not null default 'cold' check (handoff_mode in ('cold', 'warm')),
    add column idle_prompt_seconds integer check (idle_prompt_seconds between 3 and 300),
    add column idle_goodbye_seconds integer check (idle_goodbye_seconds between 3 and 300);
