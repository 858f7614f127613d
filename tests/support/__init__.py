"""What the tests share, one module per concept (the provider stand-ins are in tests/standins).

- `polling`: `eventually`, the one wait for state another task, thread or process changes.
- `processes`: free ports, child processes that die with the run, log-line and stop waits.
- `twilio_signing`: requests signed as Twilio signs them.
- `gateway`: the real gateway app with its lifespan, and a client to it.
- `sms`: SMS webhooks as Twilio posts them, and the rows an SMS leaves.
- `factories`: test data through the real domain functions.
- `livekit_server`, `livekit_tap`: a real livekit-server, and a proxy answering SIP transfers.
- `worker_process`: `python -m worker start` as deployed, pointed at the test's components.
- `service_processes`: the gateway and the SMS sender as real child processes (to SIGKILL).
- `embedded_postgres`: a test's own embedded Postgres it may stop and start.
- `metrics`: scraping a Prometheus endpoint.
- `model_faults`: the model failures every text-chat path is tested against.
- `audio`: both ends of a call's audio: the caller's speech, the agent's audio heard.
- `calls`: waiting for a call row to end.
"""
