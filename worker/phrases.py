"""The few fixed lines the worker speaks itself, in the agent's language.

Everything else the agent says comes from the model, which follows the agent's instructions
and language. Languages missing here fall back to English.
"""

from __future__ import annotations

from typing import Literal

Line = Literal["greeting", "max_call_warning", "goodbye", "transferring", "transfer_failed"]

_LINES: dict[str, dict[Line, str]] = {
    "en": {
        "greeting": "Hello! How can I help you today?",
        "max_call_warning": "We are almost out of time for this call.",
        "goodbye": "Thank you for calling. Goodbye!",
        "transferring": "One moment please, I am transferring you to a colleague.",
        "transfer_failed": "Sorry, no one is available to take your call right now.",
    },
    "ar": {
        "greeting": "مرحبا! كيف يمكنني مساعدتك اليوم؟",
        "max_call_warning": "أوشك وقت هذه المكالمة على الانتهاء.",
        "goodbye": "شكرا لاتصالك. مع السلامة!",
        "transferring": "لحظة من فضلك، سأحولك إلى أحد الزملاء.",
        "transfer_failed": "عذرا، لا يوجد أحد متاح للرد على مكالمتك الآن.",
    },
    "fr": {
        "greeting": "Bonjour ! Comment puis-je vous aider aujourd'hui ?",
        "max_call_warning": "Cet appel touche bientôt à sa fin.",
        "goodbye": "Merci de votre appel. Au revoir !",
        "transferring": "Un instant s'il vous plaît, je vous transfère à un collègue.",
        "transfer_failed": "Désolé, personne n'est disponible pour le moment.",
    },
    "es": {
        "greeting": "¡Hola! ¿En qué puedo ayudarle hoy?",
        "max_call_warning": "Esta llamada está por terminar.",
        "goodbye": "Gracias por llamar. ¡Adiós!",
        "transferring": "Un momento por favor, le transfiero con un compañero.",
        "transfer_failed": "Lo siento, no hay nadie disponible en este momento.",
    },
    "de": {
        "greeting": "Hallo! Wie kann ich Ihnen heute helfen?",
        "max_call_warning": "Dieser Anruf ist gleich zu Ende.",
        "goodbye": "Danke für Ihren Anruf. Auf Wiederhören!",
        "transferring": "Einen Moment bitte, ich verbinde Sie mit einem Kollegen.",
        "transfer_failed": "Leider ist gerade niemand erreichbar.",
    },
}


def line(name: Line, language: str) -> str:
    """The fixed line in the agent's language ("ar-EG" uses "ar"), English when missing."""
    code = (language or "en").split("-")[0].lower()
    return _LINES.get(code, _LINES["en"])[name]
