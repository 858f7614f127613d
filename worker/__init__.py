"""The LiveKit voice worker: answers SIP calls and playground sessions with an AI agent."""
