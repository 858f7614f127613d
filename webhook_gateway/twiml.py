"""TwiML responses: built with the `twilio` library, served as `application/xml`."""

from __future__ import annotations

from fastapi.responses import Response
from twilio.twiml import TwiML
from twilio.twiml.messaging_response import MessagingResponse


def twiml(document: TwiML) -> Response:
    """Render a VoiceResponse/MessagingResponse with the XML prolog Twilio expects."""
    return Response(content=document.to_xml(xml_declaration=True), media_type="application/xml")


_EMPTY = MessagingResponse().to_xml(xml_declaration=True)


def empty_response() -> Response:
    """`<Response/>`: acknowledged, nothing to say or send."""
    return Response(content=_EMPTY, media_type="application/xml")
