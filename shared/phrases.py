"""The few fixed lines our voice agents say themselves, and how a caller asks for a human.

One table for both voice paths (the gateway's TwiML loop and the LiveKit worker); everything
else comes from the model. A language missing here speaks English lines.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Line = Literal[
    "filler",  # the model is slow: said before a <Redirect> that collects the reply
    "still_waiting",  # still slow on a later collect
    "reprompt",  # the caller said nothing
    "goodbye",  # silence went on, or the caller is done
    "time_up",  # the agent's max call length was reached
    "apology",  # the model failed: ask the caller to go on
    "connecting",  # handing the caller to a person
    "transfer_failed",  # the person did not answer: back to the agent
    "unavailable",  # plan without voice, infra-only mode or no credit
    "no_agent",  # no voice-capable agent in the workspace
    "default_greeting",  # the agent has no greeting of its own
    "max_call_warning",  # the agent's max call length is near (LiveKit worker)
    "press_for_person",  # appended to the greeting when a hand-off digit works; {digit}
    "still_there",  # the caller has been silent for a while
    "idle_goodbye",  # the caller stayed silent after "are you still there?"
    "hold",  # a warm hand-off is ringing the person
    "handoff_whisper",  # said to the person who answers a warm hand-off, before the summary
    "handoff_accept",  # asks the person to accept (press 1) or decline (hang up)
    "nobody_answered",  # a warm hand-off was not answered or was declined
    "keypad_entry",  # how keypad digits reach the model and the transcript; {digits}
]

_LINES: dict[str, dict[Line, str]] = {
    "en": {
        "filler": "One moment please.",
        "still_waiting": "Thanks for waiting, almost there.",
        "reprompt": "Sorry, I didn't catch that. Could you say it again?",
        "goodbye": "Thank you for calling. Goodbye!",
        "time_up": "We have reached the time limit for this call. Thank you for calling. Goodbye!",
        "apology": "Sorry, I had a problem answering that. Could you say it again?",
        "connecting": "One moment please, I am transferring you to a colleague.",
        "transfer_failed": "Sorry, no one could take your call right now. How else can I help?",
        "unavailable": "Sorry, this line cannot take calls right now. Please try again later.",
        "no_agent": "Sorry, no one is available to take your call right now. Goodbye.",
        "default_greeting": "Hello! How can I help you today?",
        "max_call_warning": "We are almost out of time for this call.",
        "press_for_person": "To speak to a person at any time, press {digit}.",
        "still_there": "Are you still there?",
        "idle_goodbye": "I haven't heard anything, so I will end the call now. Goodbye!",
        "hold": "Please hold while I connect you to a colleague.",
        "handoff_whisper": "Hello, this is the AI assistant with a caller for you.",
        "handoff_accept": "Press 1 to take the call, or hang up to decline.",
        "nobody_answered": "Sorry, no one is available right now. I'm still here to help.",
        "keypad_entry": "(keypad) {digits}",
    },
    "ar": {
        "filler": "لحظة من فضلك.",
        "still_waiting": "شكرا لانتظارك، لحظات فقط.",
        "reprompt": "عذرا، لم أسمعك جيدا. هل يمكنك الإعادة؟",
        "goodbye": "شكرا لاتصالك. مع السلامة!",
        "time_up": "لقد وصلنا إلى الحد الأقصى لمدة هذه المكالمة. شكرا لاتصالك. مع السلامة!",
        "apology": "عذرا، واجهت مشكلة في الإجابة. هل يمكنك الإعادة؟",
        "connecting": "لحظة من فضلك، سأحولك إلى أحد الزملاء.",
        "transfer_failed": "عذرا، لم يتمكن أحد من الرد الآن. كيف يمكنني مساعدتك بشيء آخر؟",
        "unavailable": "عذرا، لا يمكن لهذا الخط استقبال المكالمات الآن. يرجى المحاولة لاحقا.",
        "no_agent": "عذرا، لا يوجد أحد متاح للرد على مكالمتك الآن. مع السلامة.",
        "default_greeting": "مرحبا! كيف يمكنني مساعدتك اليوم؟",
        "max_call_warning": "أوشك وقت هذه المكالمة على الانتهاء.",
        "press_for_person": "للتحدث مع أحد الموظفين في أي وقت، اضغط {digit}.",
        "still_there": "هل ما زلت معي؟",
        "idle_goodbye": "لم أسمع شيئا، لذلك سأنهي المكالمة الآن. مع السلامة!",
        "hold": "يرجى الانتظار بينما أحولك إلى أحد الزملاء.",
        "handoff_whisper": "مرحبا، معك المساعد الآلي ولدي متصل لك.",
        "handoff_accept": "اضغط 1 لاستقبال المكالمة، أو أغلق الخط للرفض.",
        "nobody_answered": "عذرا، لا يوجد أحد متاح الآن. ما زلت هنا لمساعدتك.",
        "keypad_entry": "(لوحة المفاتيح) {digits}",
    },
    "fr": {
        "filler": "Un instant s'il vous plaît.",
        "still_waiting": "Merci de patienter, j'y suis presque.",
        "reprompt": "Désolé, je n'ai pas compris. Pouvez-vous répéter ?",
        "goodbye": "Merci de votre appel. Au revoir !",
        "time_up": "Nous avons atteint la durée maximale de cet appel. Merci et au revoir !",
        "apology": "Désolé, j'ai eu un problème pour répondre. Pouvez-vous répéter ?",
        "connecting": "Un instant s'il vous plaît, je vous transfère à un collègue.",
        "transfer_failed": "Désolé, personne n'a pu répondre. Que puis-je faire d'autre ?",
        "unavailable": "Désolé, cette ligne ne peut pas prendre d'appels pour le moment.",
        "no_agent": "Désolé, personne n'est disponible pour le moment. Au revoir.",
        "default_greeting": "Bonjour ! Comment puis-je vous aider aujourd'hui ?",
        "max_call_warning": "Cet appel touche bientôt à sa fin.",
        "press_for_person": "Pour parler à une personne à tout moment, appuyez sur {digit}.",
        "still_there": "Êtes-vous toujours là ?",
        "idle_goodbye": "Je n'entends plus rien, je vais donc raccrocher. Au revoir !",
        "hold": "Veuillez patienter, je vous mets en relation avec un collègue.",
        "handoff_whisper": "Bonjour, ici l'assistant virtuel, j'ai un appel pour vous.",
        "handoff_accept": "Appuyez sur 1 pour prendre l'appel, ou raccrochez pour refuser.",
        "nobody_answered": "Désolé, personne n'est disponible. Je reste là pour vous aider.",
        "keypad_entry": "(clavier) {digits}",
    },
    "es": {
        "filler": "Un momento, por favor.",
        "still_waiting": "Gracias por esperar, ya casi está.",
        "reprompt": "Perdón, no le entendí. ¿Puede repetirlo?",
        "goodbye": "Gracias por llamar. ¡Adiós!",
        "time_up": "Hemos llegado al tiempo máximo de esta llamada. Gracias por llamar. ¡Adiós!",
        "apology": "Perdón, tuve un problema al responder. ¿Puede repetirlo?",
        "connecting": "Un momento, por favor, le transfiero con un compañero.",
        "transfer_failed": "Lo siento, nadie pudo atenderle ahora. ¿En qué más puedo ayudarle?",
        "unavailable": "Lo siento, esta línea no puede atender llamadas ahora mismo.",
        "no_agent": "Lo siento, no hay nadie disponible en este momento. Adiós.",
        "default_greeting": "¡Hola! ¿En qué puedo ayudarle hoy?",
        "max_call_warning": "Esta llamada está por terminar.",
        "press_for_person": "Para hablar con una persona en cualquier momento, pulse {digit}.",
        "still_there": "¿Sigue ahí?",
        "idle_goodbye": "No le escucho, así que voy a terminar la llamada. ¡Adiós!",
        "hold": "Por favor, espere mientras le comunico con un compañero.",
        "handoff_whisper": "Hola, soy el asistente virtual y tengo una llamada para usted.",
        "handoff_accept": "Pulse 1 para atender la llamada, o cuelgue para rechazarla.",
        "nobody_answered": "Lo siento, no hay nadie disponible ahora. Sigo aquí para ayudarle.",
        "keypad_entry": "(teclado) {digits}",
    },
    "de": {
        "filler": "Einen Moment bitte.",
        "still_waiting": "Danke für Ihre Geduld, gleich geschafft.",
        "reprompt": "Entschuldigung, das habe ich nicht verstanden. Bitte wiederholen Sie es.",
        "goodbye": "Danke für Ihren Anruf. Auf Wiederhören!",
        "time_up": "Die maximale Gesprächsdauer ist erreicht. Danke für Ihren Anruf!",
        "apology": "Entschuldigung, beim Antworten gab es ein Problem. Bitte wiederholen Sie es.",
        "connecting": "Einen Moment bitte, ich verbinde Sie mit einem Kollegen.",
        "transfer_failed": "Leider konnte gerade niemand annehmen. Wie kann ich sonst helfen?",
        "unavailable": "Leider kann diese Leitung gerade keine Anrufe annehmen.",
        "no_agent": "Leider ist gerade niemand erreichbar. Auf Wiederhören.",
        "default_greeting": "Hallo! Wie kann ich Ihnen heute helfen?",
        "max_call_warning": "Dieser Anruf ist gleich zu Ende.",
        "press_for_person": "Um jederzeit mit einem Menschen zu sprechen, drücken Sie die {digit}.",
        "still_there": "Sind Sie noch da?",
        "idle_goodbye": "Ich höre nichts mehr und beende den Anruf jetzt. Auf Wiederhören!",
        "hold": "Bitte bleiben Sie dran, ich verbinde Sie mit einem Kollegen.",
        "handoff_whisper": "Hallo, hier ist der KI-Assistent mit einem Anrufer für Sie.",
        "handoff_accept": "Drücken Sie die 1, um anzunehmen, oder legen Sie auf, um abzulehnen.",
        "nobody_answered": "Leider ist gerade niemand erreichbar. Ich helfe Ihnen gern weiter.",
        "keypad_entry": "(Tastatur) {digits}",
    },
    "it": {
        "filler": "Un momento, per favore.",
        "still_waiting": "Grazie per l'attesa, ci siamo quasi.",
        "reprompt": "Scusi, non ho capito. Può ripetere?",
        "goodbye": "Grazie per aver chiamato. Arrivederci!",
        "time_up": "Abbiamo raggiunto la durata massima della chiamata. Arrivederci!",
        "apology": "Scusi, ho avuto un problema a rispondere. Può ripetere?",
        "connecting": "Un momento, per favore, la metto in contatto con un collega.",
        "transfer_failed": "Spiacenti, nessuno ha potuto rispondere. In cos'altro posso aiutarla?",
        "unavailable": "Spiacenti, questa linea non può ricevere chiamate in questo momento.",
        "no_agent": "Spiacenti, al momento non c'è nessuno disponibile. Arrivederci.",
        "default_greeting": "Buongiorno! Come posso aiutarla oggi?",
        "max_call_warning": "Il tempo di questa chiamata sta per scadere.",
        "press_for_person": "Per parlare con una persona in qualsiasi momento, prema {digit}.",
        "still_there": "È ancora in linea?",
        "idle_goodbye": "Non sento più nulla, quindi chiudo la chiamata. Arrivederci!",
        "hold": "Resti in linea, la metto in contatto con un collega.",
        "handoff_whisper": "Salve, sono l'assistente virtuale e ho una chiamata per lei.",
        "handoff_accept": "Prema 1 per accettare la chiamata, o riattacchi per rifiutarla.",
        "nobody_answered": "Spiacenti, nessuno è disponibile ora. Sono ancora qui per aiutarla.",
        "keypad_entry": "(tastiera) {digits}",
    },
    "pt": {
        "filler": "Um momento, por favor.",
        "still_waiting": "Obrigado por aguardar, quase pronto.",
        "reprompt": "Desculpe, não entendi. Pode repetir?",
        "goodbye": "Obrigado por ligar. Até logo!",
        "time_up": "Chegamos ao tempo máximo desta chamada. Obrigado por ligar. Até logo!",
        "apology": "Desculpe, tive um problema para responder. Pode repetir?",
        "connecting": "Um momento, por favor, vou transferir você para um colega.",
        "transfer_failed": "Desculpe, ninguém pôde atender agora. Em que mais posso ajudar?",
        "unavailable": "Desculpe, esta linha não pode atender chamadas agora.",
        "no_agent": "Desculpe, não há ninguém disponível no momento. Até logo.",
        "default_greeting": "Olá! Como posso ajudar você hoje?",
        "max_call_warning": "O tempo desta chamada está quase a terminar.",
        "press_for_person": "Para falar com uma pessoa a qualquer momento, pressione {digit}.",
        "still_there": "Você ainda está aí?",
        "idle_goodbye": "Não estou ouvindo nada, então vou encerrar a chamada. Até logo!",
        "hold": "Por favor, aguarde enquanto transfiro você para um colega.",
        "handoff_whisper": "Olá, aqui é o assistente virtual com uma chamada para você.",
        "handoff_accept": "Pressione 1 para atender a chamada, ou desligue para recusar.",
        "nobody_answered": "Desculpe, não há ninguém disponível agora. Continuo aqui para ajudar.",
        "keypad_entry": "(teclado) {digits}",
    },
    "tr": {
        "filler": "Bir dakika lütfen.",
        "still_waiting": "Beklediğiniz için teşekkürler, az kaldı.",
        "reprompt": "Özür dilerim, anlayamadım. Tekrar eder misiniz?",
        "goodbye": "Aradığınız için teşekkürler. Hoşça kalın!",
        "time_up": "Bu arama için süre sınırına ulaştık. Aradığınız için teşekkürler!",
        "apology": "Özür dilerim, yanıt verirken bir sorun oldu. Tekrar eder misiniz?",
        "connecting": "Bir dakika lütfen, sizi bir meslektaşıma bağlıyorum.",
        "transfer_failed": "Üzgünüm, kimse yanıt veremedi. Başka nasıl yardımcı olabilirim?",
        "unavailable": "Üzgünüz, bu hat şu anda arama kabul edemiyor.",
        "no_agent": "Üzgünüz, şu anda kimse müsait değil. Hoşça kalın.",
        "default_greeting": "Merhaba! Size bugün nasıl yardımcı olabilirim?",
        "max_call_warning": "Bu görüşmenin süresi dolmak üzere.",
        "press_for_person": "İstediğiniz zaman bir yetkiliyle görüşmek için {digit} tuşuna basın.",
        "still_there": "Hâlâ orada mısınız?",
        "idle_goodbye": "Sizi duyamıyorum, bu yüzden aramayı sonlandırıyorum. Hoşça kalın!",
        "hold": "Lütfen bekleyin, sizi bir meslektaşıma bağlıyorum.",
        "handoff_whisper": "Merhaba, ben yapay zeka asistanı, sizin için bir arayan var.",
        "handoff_accept": "Aramayı almak için 1'e basın, reddetmek için kapatın.",
        "nobody_answered": "Üzgünüm, şu anda kimse müsait değil. Size yardım etmek için buradayım.",
        "keypad_entry": "(tuş takımı) {digits}",
    },
    "hi": {
        "filler": "कृपया एक क्षण रुकिए।",
        "still_waiting": "इंतज़ार के लिए धन्यवाद, बस थोड़ी देर।",
        "reprompt": "माफ़ कीजिए, मैं समझ नहीं पाया। क्या आप दोहरा सकते हैं?",
        "goodbye": "कॉल करने के लिए धन्यवाद। नमस्ते!",
        "time_up": "इस कॉल की समय सीमा पूरी हो गई है। कॉल करने के लिए धन्यवाद!",
        "apology": "माफ़ कीजिए, जवाब देने में समस्या हुई। क्या आप दोहरा सकते हैं?",
        "connecting": "कृपया एक क्षण रुकिए, मैं आपको एक सहयोगी से जोड़ रहा हूँ।",
        "transfer_failed": "माफ़ कीजिए, अभी कोई कॉल नहीं ले सका। मैं और कैसे मदद कर सकता हूँ?",
        "unavailable": "माफ़ कीजिए, यह लाइन अभी कॉल नहीं ले सकती।",
        "no_agent": "माफ़ कीजिए, अभी कोई उपलब्ध नहीं है। नमस्ते।",
        "default_greeting": "नमस्ते! मैं आज आपकी क्या मदद कर सकता हूँ?",
        "max_call_warning": "इस कॉल का समय लगभग समाप्त होने वाला है।",
        "press_for_person": "किसी भी समय किसी व्यक्ति से बात करने के लिए {digit} दबाएँ।",
        "still_there": "क्या आप अभी भी लाइन पर हैं?",
        "idle_goodbye": "मुझे कुछ सुनाई नहीं दे रहा, इसलिए मैं कॉल समाप्त कर रहा हूँ। नमस्ते!",
        "hold": "कृपया प्रतीक्षा करें, मैं आपको एक सहयोगी से जोड़ रहा हूँ।",
        "handoff_whisper": "नमस्ते, मैं एआई सहायक हूँ और आपके लिए एक कॉल है।",
        "handoff_accept": "कॉल लेने के लिए 1 दबाएँ, या मना करने के लिए फ़ोन रख दें।",
        "nobody_answered": "माफ़ कीजिए, अभी कोई उपलब्ध नहीं है। मैं आपकी मदद के लिए यहीं हूँ।",
        "keypad_entry": "(कीपैड) {digits}",
    },
    "ur": {
        "filler": "براہ کرم ایک لمحہ انتظار کریں۔",
        "still_waiting": "انتظار کا شکریہ، بس تھوڑی دیر۔",
        "reprompt": "معاف کیجیے، میں سمجھ نہیں سکا۔ کیا آپ دہرا سکتے ہیں؟",
        "goodbye": "کال کرنے کا شکریہ۔ خدا حافظ!",
        "time_up": "اس کال کا وقت پورا ہو گیا ہے۔ کال کرنے کا شکریہ!",
        "apology": "معاف کیجیے، جواب دینے میں مسئلہ ہوا۔ کیا آپ دہرا سکتے ہیں؟",
        "connecting": "براہ کرم ایک لمحہ، میں آپ کو ایک ساتھی سے ملا رہا ہوں۔",
        "transfer_failed": "معاف کیجیے، اس وقت کوئی کال نہیں لے سکا۔ میں اور کیا مدد کر سکتا ہوں؟",
        "unavailable": "معاف کیجیے، یہ لائن اس وقت کالز نہیں لے سکتی۔",
        "no_agent": "معاف کیجیے، اس وقت کوئی دستیاب نہیں ہے۔ خدا حافظ۔",
        "default_greeting": "السلام علیکم! میں آج آپ کی کیا مدد کر سکتا ہوں؟",
        "max_call_warning": "اس کال کا وقت تقریباً ختم ہونے والا ہے۔",
        "press_for_person": "کسی بھی وقت کسی شخص سے بات کرنے کے لیے {digit} دبائیں۔",
        "still_there": "کیا آپ ابھی بھی لائن پر ہیں؟",
        "idle_goodbye": "مجھے کچھ سنائی نہیں دے رہا، اس لیے میں کال ختم کر رہا ہوں۔ خدا حافظ!",
        "hold": "براہ کرم انتظار کریں، میں آپ کو ایک ساتھی سے ملا رہا ہوں۔",
        "handoff_whisper": "السلام علیکم، میں اے آئی اسسٹنٹ ہوں اور آپ کے لیے ایک کال ہے۔",
        "handoff_accept": "کال لینے کے لیے 1 دبائیں، یا انکار کے لیے فون بند کر دیں۔",
        "nobody_answered": "معاف کیجیے، اس وقت کوئی دستیاب نہیں ہے۔ میں آپ کی مدد کے لیے یہیں ہوں۔",
        "keypad_entry": "(کی پیڈ) {digits}",
    },
}

# What callers say when they want a person, by language; matched as whole words or phrases.
_HUMAN_REQUESTS: dict[str, tuple[str, ...]] = {
    "en": ("human", "real person", "speak to a person", "talk to a person", "operator",
           "representative", "live agent", "speak to someone", "talk to someone"),
    "ar": ("موظف", "انسان", "إنسان", "شخص حقيقي", "خدمة العملاء", "ممثل"),
    "fr": ("humain", "une personne", "conseiller", "opérateur", "operateur"),
    "es": ("humano", "una persona", "operador", "agente real", "representante"),
    "de": ("mensch", "einen menschen", "mitarbeiter", "berater"),
    "it": ("umano", "una persona", "operatore"),
    "pt": ("humano", "uma pessoa", "atendente", "operador"),
    "tr": ("insan", "gerçek kişi", "temsilci", "operatör", "yetkili"),
    "hi": ("इंसान", "व्यक्ति", "एजेंट", "ग्राहक सेवा"),
    "ur": ("انسان", "نمائندہ", "کسی شخص", "ایجنٹ"),
}  # fmt: skip


def line(name: Line, language: str) -> str:
    """The fixed line in a language ("ar", or a tag such as "ar-EG"), English when missing."""
    code = (language or "en").split("-")[0].lower()
    # Lines added later may be missing from some languages: English then, not a KeyError.
    return _LINES.get(code, {}).get(name) or _LINES["en"][name]


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def asks_for_human(text: str, phrase_language: str) -> bool:
    """Whether the caller asks to speak to a person (their language's phrases, and English)."""
    folded = _fold(text)
    phrases = _HUMAN_REQUESTS.get(phrase_language, ()) + _HUMAN_REQUESTS["en"]
    for phrase in phrases:
        # Word boundaries keep "humanity" or "inhuman" from matching "human".
        if re.search(rf"(?<!\w){re.escape(_fold(phrase))}(?!\w)", folded):
            return True
    return False
