"""The one text pipeline used by preprocess and synthesis: text -> normalised text ->
phonemes -> model symbols.

text_type:
  "text"       normalise, then espeak-ng IPA (stress marks, punctuation, word spaces)
               (text/characters: characters the language cannot speak, such as another script
               or emoji, are taken out first and listed in TextResult.dropped)
  "characters" normalise, then lower-cased characters (no espeak needed)
  "phonemes"   the input already is a phoneme string: only cut into symbols
A text with nothing to pronounce gives an empty symbol list (callers reject it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from tts_cli.text.normalize import basic_cleanup, normalize_text, split_unspeakable
from tts_cli.text.phonemize import phonemize_many
from tts_cli.text.symbols import PUNCTUATION, SPACE, STRESS, canonical_text_type, characters_to_symbols, split_phonemes

SILENT_SYMBOLS = set(PUNCTUATION) | {SPACE, *STRESS}  # a text of only these has nothing to say


@dataclass
class TextResult:
    normalized: str
    phonemes: str  # IPA; in characters mode the lower-cased text the symbols come from
    symbols: list[str] = field(default_factory=list)
    dropped: str = ""  # characters taken out as unspeakable in the language (text / characters modes)


def _finish(symbols: list[str], keep_stress: bool) -> list[str]:
    if not keep_stress:
        symbols = [s for s in symbols if s not in STRESS]
    while symbols and symbols[0] == SPACE:
        symbols = symbols[1:]
    while symbols and symbols[-1] == SPACE:
        symbols = symbols[:-1]
    # Only punctuation/spaces/stress: nothing to say.
    return symbols if any(s not in SILENT_SYMBOLS for s in symbols) else []


def _strip_stress(phonemes: str) -> str:
    return re.sub("[" + "".join(STRESS) + "]", "", phonemes)


def texts_to_symbols(texts: list[str], language: str = "es", text_type: str = "text",
                     normalize: bool = True, keep_stress: bool = True) -> list[TextResult]:
    """Batch version of text_to_symbols: espeak runs once for all texts (much faster)."""
    text_type = canonical_text_type(text_type)
    if text_type == "phonemes":
        cleaned = [basic_cleanup(t) for t in texts]
        return [TextResult(c, c if keep_stress else _strip_stress(c),
                           _finish(split_phonemes(c), keep_stress)) for c in cleaned]
    # what the language cannot speak (other scripts, emoji) is taken out, never read as its name
    split = [split_unspeakable(normalize_text(t, language) if normalize else basic_cleanup(t), language)
             for t in texts]
    normalized, dropped = [n for n, _ in split], [d for _, d in split]
    if text_type == "characters":
        results = []
        for norm, gone in zip(normalized, dropped):
            symbols = _finish(characters_to_symbols(norm), keep_stress=True)
            results.append(TextResult(norm, "".join(symbols), symbols, gone))
        return results

    phonemes = phonemize_many(normalized, language)
    if not keep_stress:
        phonemes = [_strip_stress(p) for p in phonemes]
    return [TextResult(n, p, _finish(split_phonemes(p), keep_stress), d)
            for n, p, d in zip(normalized, phonemes, dropped)]


def text_to_symbols(text: str, language: str = "es", text_type: str = "text",
                    normalize: bool = True, keep_stress: bool = True) -> TextResult:
    """normalised text, phonemes and model symbols for one text."""
    return texts_to_symbols([text], language, text_type, normalize, keep_stress)[0]


def espeak_version_warning(ckpt_or_text: dict, current: str | None) -> str | None:
    """A warning when the checkpoint was trained with another espeak-ng version (phonemes can
    change between versions), else None. Accepts a checkpoint or its `text` section."""
    text = ckpt_or_text.get("text", ckpt_or_text) if isinstance(ckpt_or_text, dict) else {}
    trained = (text or {}).get("espeak_ng")
    if not trained or not current or str(trained) == str(current):
        return None
    return (f"espeak-ng {current} differs from {trained} used in training: phonemes may differ; "
            "check pronunciations or re-run preprocess with the training version")
