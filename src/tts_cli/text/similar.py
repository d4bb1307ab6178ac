"""Which known symbols a new IPA symbol sounds most like, to start its embedding from them.

Fine-tuning a voice to another language (or accent) meets symbols the checkpoint never saw:
English on a Spanish voice brings ~30 (iː, ɪ, æ, ʌ, ɹ, oʊ, ...). Starting every one of them at
the same mean embedding makes the model learn each vowel from nothing on minutes of data; starting
iː at i, oʊ at (o + u), ɹ at ɾ gives it the nearest sound it already knows.

`similar_symbols(symbol, known)` returns the known symbols to average (empty: none is close):
1. the symbol without length and syllabic marks (iː -> i, n̩ -> n);
2. else its characters, each mapped on its own (oʊ -> o, u; dz -> d, z);
3. a character not known is replaced by its nearest neighbours in NEAREST, in order.
"""
from __future__ import annotations

import unicodedata

# marks that lengthen, make syllabic or otherwise colour a sound without changing what it is
_MARKS = "ːˑ̩̯̃ʰʲʷ̪̺̻̥̬"

# nearest sounds, most similar first (place and manner for consonants, height and backness for
# vowels); only what a voice of another language is likely to lack
NEAREST: dict[str, str] = {
    # vowels
    "æ": "aɛ", "ɐ": "aə", "ɑ": "a", "ɒ": "ɔo", "ɔ": "o", "ə": "eɛa", "ɚ": "əeɾ", "ɜ": "ɛe", "ɝ": "ɜɾ",
    "ɪ": "ie", "ʊ": "uo", "ʌ": "aə", "ᵻ": "ɪi", "ɨ": "iu", "ʉ": "u", "y": "iu", "ø": "eo", "œ": "ɛɔ",
    "ɛ": "e", "e": "ɛ", "o": "ɔ", "ɯ": "u", "ɤ": "o", "ɘ": "ə", "ɵ": "o", "ɞ": "ɔ", "ɶ": "a", "a": "ɐ",
    # consonants
    "ɹ": "ɾr", "ɻ": "ɹɾ", "r": "ɾ", "ɾ": "r", "ʁ": "ʀx", "ʀ": "r", "ɽ": "ɾ",
    "ʃ": "ɕs", "ʒ": "ʝz", "ɕ": "ʃs", "ʑ": "ʒz", "ç": "xʃ", "x": "χh", "χ": "x", "h": "x", "ɦ": "h",
    "v": "βb", "β": "bv", "f": "ɸ", "ɸ": "f", "ʋ": "vβ", "w": "uʋ", "j": "iʝ", "ʝ": "j",
    "θ": "s", "ð": "d", "z": "s", "s": "z", "ʔ": "", "ŋ": "n", "ɲ": "nj", "ɳ": "n", "ɴ": "ŋ",
    "ɫ": "l", "ʎ": "lj", "ɭ": "l", "ɬ": "l", "ɡ": "g", "g": "ɡ", "ɣ": "ɡ", "ʈ": "t", "ɖ": "d", "c": "k",
    "ɟ": "ɡ", "q": "k", "ɢ": "ɡ",
}


def base_symbol(symbol: str) -> str:
    """The symbol without length, syllabicity and similar marks: `iː` -> `i`, `n̩` -> `n`."""
    decomposed = unicodedata.normalize("NFD", symbol)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _MARKS))


def _nearest(char: str, known: set[str], depth: int = 0) -> list[str]:
    if char in known:
        return [char]
    if depth > 2:
        return []
    for alt in NEAREST.get(char, ""):
        hit = _nearest(alt, known, depth + 1)
        if hit:
            return hit
    return []


def similar_symbols(symbol: str, known: set[str] | list[str]) -> list[str]:
    """Known symbols whose mean embedding is a good start for `symbol` (empty: none is close)."""
    known = set(known)
    base = base_symbol(symbol)
    if base != symbol and base in known:
        return [base]
    if len(base) == 1:
        return _nearest(base, known)
    parts: list[str] = []
    for char in base:  # a diphthong or an affricate: every part it is made of
        parts.extend(_nearest(char, known))
    return parts


__all__ = ["NEAREST", "base_symbol", "similar_symbols"]
