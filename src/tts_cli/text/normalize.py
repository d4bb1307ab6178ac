"""Text normalisation entry point: Spanish gets the full normaliser (normalize_es); other
languages get whitespace/quote clean-up plus numbers spelled out by num2words when it knows
the language, else the text passes through unchanged."""
from __future__ import annotations

import functools
import re
import unicodedata

from tts_cli.text.normalize_es import normalize_es

# Typographic variants folded to one form each, so the symbol inventory stays small.
_QUOTES = str.maketrans({
    "“": '"', "”": '"', "„": '"', "‟": '"', "″": '"',
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "´": "'", "`": "'",
    "–": "—", "―": "—",  # en dash / horizontal bar -> em dash (a pause)
    "\u00a0": " ", "\u202f": " ", "\u2009": " ",  # non-breaking / thin spaces
})
_INVISIBLE_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")  # zero-width, BOM, soft hyphen


def basic_cleanup(text: str) -> str:
    """NFC, one kind of each quote, no invisible characters, single spaces, '...' kept."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE_RE.sub("", text.translate(_QUOTES))
    text = text.replace("…", "...")
    return re.sub(r"\s+", " ", text).strip()


def is_spanish(language: str) -> bool:
    return language.lower().replace("_", "-").split("-")[0] == "es"


@functools.lru_cache(maxsize=None)
def num2words_language(language: str) -> str | None:
    """num2words' code for an espeak/BCP-47 language code: 'pt-br' -> 'pt_BR', 'en-us' -> 'en',
    'de' -> 'de'; None when num2words does not support it."""
    try:
        from num2words import CONVERTER_CLASSES
    except ImportError:  # optional for non-Spanish text
        return None
    parts = language.replace("_", "-").split("-")
    candidates = [parts[0].lower()]
    if len(parts) > 1:
        candidates.insert(0, f"{parts[0].lower()}_{parts[1].upper()}")
    return next((c for c in candidates if c in CONVERTER_CLASSES), None)


def _numbers_with_num2words(text: str, lang: str) -> str:
    from num2words import num2words

    english = lang.startswith("en")
    # English style "1,500.25"; continental style "1.500,25".
    group, point = (",", ".") if english else (".", ",")
    number_re = re.compile(
        rf"(?<![\w.,])(-?)(\d{{1,3}}(?:{re.escape(group)}\d{{3}})+|\d+)(?:{re.escape(point)}(\d+))?(?![\d\w])")

    def say(m: re.Match) -> str:
        whole = m.group(2).replace(group, "")
        value = f"{m.group(1)}{whole}" + (f".{m.group(3)}" if m.group(3) else "")
        try:
            from decimal import Decimal
            # num2words writes "one thousand, five hundred": that comma is not a pause.
            return num2words(Decimal(value), lang=lang).replace(",", "")
        except Exception:  # num2words raises various errors for unsupported cases
            return m.group(0)

    return number_re.sub(say, text)


# Text the voice cannot speak: espeak-ng would switch language for it ("你" -> "chino símbolo",
# "Привет" -> "cirílico ...") or read a symbol's name ("😀" -> "cara sonriendo"). Letters count by
# the script their Unicode name starts with; letters of no script here (º, ª, µ) are kept.
_LATIN_LANGUAGES = frozenset(
    "es ca gl eu en fr de it pt nl pl ro sv da no nb nn fi cs sk hu tr id ms vi hr sl lt lv et sq af sw la eo "
    "ga cy is mt az tl".split())
_LANGUAGE_SCRIPTS = {
    "ru": ("CYRILLIC",), "uk": ("CYRILLIC",), "be": ("CYRILLIC",), "bg": ("CYRILLIC",), "mk": ("CYRILLIC",),
    "sr": ("CYRILLIC", "LATIN"), "kk": ("CYRILLIC",), "el": ("GREEK",), "grc": ("GREEK",), "ar": ("ARABIC",),
    "fa": ("ARABIC",), "ur": ("ARABIC",), "he": ("HEBREW",), "hi": ("DEVANAGARI",), "mr": ("DEVANAGARI",),
    "ne": ("DEVANAGARI",), "bn": ("BENGALI",), "ta": ("TAMIL",), "te": ("TELUGU",), "th": ("THAI",),
    "ka": ("GEORGIAN",), "hy": ("ARMENIAN",), "ko": ("HANGUL",), "zh": ("CJK",), "cmn": ("CJK",),
    "yue": ("CJK",), "ja": ("CJK", "HIRAGANA", "KATAKANA"),
}
_SCRIPTS = frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "CYRILLIC", "GREEK", "ARABIC", "HEBREW",
                      "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM",
                      "THAI", "LAO", "TIBETAN", "GEORGIAN", "ARMENIAN", "ETHIOPIC", "KHMER", "MYANMAR", "SINHALA",
                      "MONGOLIAN", "YI", "BOPOMOFO"})
_NO_SPEECH_CATEGORIES = frozenset({"So", "Sk", "Co", "Cn", "Cs", "Cf", "No"})  # emoji, symbols, ², ½, ZWJ


def language_scripts(language: str) -> tuple[str, ...] | None:
    """The Unicode scripts text in `language` is written in; None when unknown (nothing is dropped for it)."""
    base = language.lower().replace("_", "-").split("-")[0]
    if base in _LATIN_LANGUAGES:
        return ("LATIN",)
    return _LANGUAGE_SCRIPTS.get(base)


def _unspeakable(ch: str, scripts: tuple[str, ...] | None) -> bool:
    cat = unicodedata.category(ch)
    if cat in _NO_SPEECH_CATEGORIES or (cat == "Sm" and not ch.isascii()):
        return True
    if cat == "Mn" and "VARIATION SELECTOR" in unicodedata.name(ch, ""):
        return True
    if scripts is None or cat not in ("Lu", "Ll", "Lt", "Lo"):
        return False
    script = unicodedata.name(ch, "").split(" ")[0]
    return script in _SCRIPTS and script not in scripts


def split_unspeakable(text: str, language: str = "es") -> tuple[str, str]:
    """(text without what a `language` voice cannot speak, the characters taken out): letters of
    another script (Chinese, Cyrillic in Spanish ...), emoji and other symbols espeak-ng would
    read by their name. The removed characters leave a word break."""
    scripts = language_scripts(language)
    dropped = [ch for ch in text if _unspeakable(ch, scripts)]
    if not dropped:
        return text, ""
    kept = "".join(" " if _unspeakable(ch, scripts) else ch for ch in text)
    kept = re.sub(r"\s+([,.;:!?)\]}»])", r"\1", re.sub(r"\s+", " ", kept)).strip()
    return kept, "".join(dropped)


def normalize_text(text: str, language: str = "es") -> str:
    """Text ready for the phonemiser (or for characters mode) in `language`."""
    text = basic_cleanup(text)
    if is_spanish(language):
        return normalize_es(text)
    lang = num2words_language(language)
    if lang is not None:
        text = _numbers_with_num2words(text, lang)
    return text
