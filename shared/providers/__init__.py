"""The clients of the services we call (OpenAI-compatible chat, Twilio REST, the recordings
bucket, LiveKit's SIP admin API): one per service, built from Settings, each mapping its
transport's failures to the ProviderError tree of shared/errors.py at its edge (transport.py
sorts aiohttp's). retry.py is the one retry loop, for these clients and their callers."""
