"""Text made safe to hand on: what the model or a person wrote, before it goes into TwiML or
an SMS.

XML 1.0 forbids most C0 control characters, lone surrogates and U+FFFE/U+FFFF; a TwiML
document holding one is not well-formed and Twilio answers it with error 12100 (the caller
hears "an application error has occurred"), and in a text message they are noise at best.
"""

from __future__ import annotations

import re

# Every character outside XML 1.0's Char production:
# #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF].
_XML_FORBIDDEN = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 forbids (NUL and other controls, lone surrogates)."""
    return _XML_FORBIDDEN.sub("", text)
