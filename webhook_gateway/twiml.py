"""TwiML responses: built with the `twilio` library, served as `application/xml`."""

from __future__ import annotations

from fastapi.responses import Response
from twilio.twiml import TwiML
from twilio.twiml.messaging_response import MessagingResponse

from shared.text_safety import xml_safe


def twiml(document: TwiML) -> Response:
    """Render a VoiceResponse/MessagingResponse with the XML prolog Twilio expects.

    Every document passes here, so no text in it (a model reply, an agent's greeting) can
    carry a character XML forbids: ElementTree writes them as they are, and Twilio refuses
    a document that is not well-formed (error 12100)."""
    content = xml_safe(document.to_xml(xml_declaration=True))
    return Response(content=content, media_type="application/xml")


_EMPTY = MessagingResponse().to_xml(xml_declaration=True)


def empty_response() -> Response:
    """`<Response/>`: acknowledged, nothing to say or send."""
    return Response(content=_EMPTY, media_type="application/xml")
