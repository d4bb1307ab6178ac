"""Model symbols: how a phoneme string is cut into input positions, and the symbol table.

Decisions (one symbol = one model input position = one duration):

* Stress marks ˈ ˌ are symbols of their own, placed before the stressed syllable's vowel
  as espeak writes them. This keeps the inventory small (no stressed copy of every vowel)
  and the aligner learns to give them ~0 frames.
* Combining diacritics (nasal ̃, syllabic ̩, ...) and modifier letters (length ː ˑ,
  aspiration ʰ, palatalisation ʲ, labialisation ʷ, ...) belong to the symbol before them:
  "ɜː" and "ã" are one symbol each.
* A tie bar (t͡ʃ, t͜s) joins the characters on both sides into one symbol.
* A fixed list of untied multi-character phonemes is merged into one symbol: affricates
  (tʃ dʒ ts dz tɕ dʑ ʈʂ ɖʐ pf) and the falling diphthongs that espeak emits as a single
  phoneme (aɪ aʊ eɪ eʊ oɪ oʊ ɔɪ əʊ), so symbols line up one-to-one with espeak's phonemes
  for Spanish. Rising diphthongs (we, je) stay two symbols, as in espeak.
* A word boundary is one " " symbol; punctuation marks are symbols (pauses and intonation
  cues). Runs of spaces collapse to one.
* Index 0 is the pad symbol "_", which never appears in text.
"""
from __future__ import annotations

import json
import unicodedata
import warnings
from pathlib import Path

from tts_cli.errors import ConfigError, WorkspaceError
from tts_cli.workspace import atomic_write_json

PAD = "_"
SPACE = " "
STRESS = ("ˈ", "ˌ")
# Punctuation the model sees. phonemize keeps the same set (minus ' and -, which espeak
# reads as part of words); characters mode may use all of it.
PUNCTUATION = list("!'(),-.:;?¡¿«»—\"[]{}…")

TIE_BARS = ("\u0361", "\u035c")  # t͡ʃ, t͜s
# Modifier letters that modify the preceding sound (not ˈ ˌ, which are stress symbols).
ATTACHING_MODIFIERS = set("ːˑʰʱʲʷˠˤⁿˡʼ˞ᵊ")
MULTI_CHAR_PHONEMES = (
    "tʃ", "dʒ", "ts", "dz", "tɕ", "dʑ", "ʈʂ", "ɖʐ", "pf",  # affricates
    "aɪ", "aʊ", "eɪ", "eʊ", "oɪ", "oʊ", "ɔɪ", "əʊ",  # diphthongs espeak treats as one phoneme
)

# "text": normalise + espeak-ng; "characters": graphemes; "phonemes": the input already is IPA.
TEXT_TYPES = ("text", "characters", "phonemes")
_TEXT_TYPE_ALIASES = {
    "text": "text", "espeak": "text",
    "characters": "characters", "chars": "characters", "graphemes": "characters",
    "phonemes": "phonemes", "ipa": "phonemes", "pre-phonemised": "phonemes", "pre-phonemized": "phonemes",
    "prephonemised": "phonemes", "prephonemized": "phonemes", "phonemised": "phonemes", "phonemized": "phonemes",
}

# The IPA espeak-ng emits for Spanish (es: Spain, es-419: Latin America), from phonemising a
# word list covering every phoneme and spelling rule; symbols as split_phonemes cuts them.
SPANISH_IPA = [
    "a", "b", "d", "e", "f", "i", "j", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u", "w",
    "x", "z", "ð", "ŋ", "ɡ", "ɣ", "ɲ", "ɾ", "ʎ", "ʝ", "β", "θ", "ɛ", "ts", "tʃ",
    "aɪ", "aʊ", "eɪ", "eʊ", "oɪ",
]
# General American / British English as espeak-ng writes them.
ENGLISH_IPA = [
    "a", "b", "d", "e", "f", "h", "i", "iː", "j", "k", "l", "m", "n", "o", "p", "r", "s",
    "t", "u", "uː", "v", "w", "z", "æ", "ð", "ŋ", "ɐ", "ɑ", "ɑː", "ɒ", "ɔ", "ɔː", "ə", "ɚ",
    "ɛ", "ɜ", "ɜː", "ɡ", "ɪ", "ɹ", "ɾ", "ʃ", "ʊ", "ʌ", "ʒ", "ʔ", "θ", "ᵻ", "n̩", "l̩",
    "tʃ", "dʒ", "aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "əʊ",
]
SPANISH_LETTERS = list("abcdefghijklmnopqrstuvwxyzáéíóúüñ")
LATIN_LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def canonical_text_type(text_type: str) -> str:
    """'text' (normalise + espeak-ng), 'characters', or 'phonemes' (input already phonemised)."""
    try:
        return _TEXT_TYPE_ALIASES[text_type.lower()]
    except KeyError:
        raise ConfigError(f"unknown text type {text_type!r}: use one of {', '.join(TEXT_TYPES)}") from None


def _base_language(language: str) -> str:
    return language.lower().replace("_", "-").split("-")[0]


def _attaches(ch: str) -> bool:
    """Does `ch` belong to the symbol before it (diacritic or modifier letter)?"""
    return ch in ATTACHING_MODIFIERS or unicodedata.category(ch) in ("Mn", "Me")


def split_phonemes(phonemes: str) -> list[str]:
    """Cut an IPA string into model symbols (see the module docstring for the rules)."""
    text = unicodedata.normalize("NFC", phonemes).strip()
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            if out and out[-1] != SPACE:
                out.append(SPACE)
            i += 1
            continue
        if ch in TIE_BARS and out:  # tie bar: glue the next character to the last symbol
            out[-1] += ch + (text[i + 1] if i + 1 < n else "")
            i += 2
            continue
        if _attaches(ch) and out and out[-1] not in (SPACE, *STRESS):
            out[-1] += ch
            i += 1
            continue
        symbol = next((m for m in MULTI_CHAR_PHONEMES if text.startswith(m, i)), ch)
        out.append(symbol)
        i += len(symbol)
    return out


def characters_to_symbols(text: str) -> list[str]:
    """Characters mode: lower-cased characters, spaces (collapsed) and punctuation."""
    text = unicodedata.normalize("NFC", text).lower().replace(PAD, " ")
    out: list[str] = []
    for ch in text:
        if ch.isspace():
            if out and out[-1] != SPACE:
                out.append(SPACE)
        else:
            out.append(ch)
    while out and out[-1] == SPACE:
        out.pop()
    return out


def base_inventory(language: str = "es", text_type: str = "text") -> list[str]:
    """Symbols every table for (language, text_type) has, in a fixed order: pad, space,
    punctuation, then stress marks + the language's espeak IPA (phoneme modes) or the
    alphabet (characters mode). Corpus symbols outside this are appended by SymbolTable.build."""
    text_type = canonical_text_type(text_type)
    base = _base_language(language)
    symbols = [PAD, SPACE, *PUNCTUATION]
    if text_type == "characters":
        symbols += SPANISH_LETTERS if base == "es" else LATIN_LETTERS
    else:
        symbols += list(STRESS)
        symbols += {"es": SPANISH_IPA, "en": ENGLISH_IPA}.get(base, [])
    return list(dict.fromkeys(symbols))  # drop duplicates, keep order


class SymbolTable:
    """Symbol <-> id mapping; id 0 is the pad symbol. Saved as WORK/symbols.json."""

    VERSION = 1

    def __init__(self, symbols: list[str], pad: str = PAD, language: str = "es",
                 text_type: str = "text", meta: dict | None = None):
        if not symbols or symbols[0] != pad:
            raise ValueError(f"symbol table must start with the pad symbol {pad!r}")
        if len(set(symbols)) != len(symbols):
            dupes = sorted({s for s in symbols if symbols.count(s) > 1})
            raise ValueError(f"duplicate symbols in table: {dupes}")
        self.symbols = list(symbols)
        self.pad = pad
        self.language = language
        self.text_type = text_type
        self.meta = dict(meta or {})  # extra provenance (e.g. espeak version), saved as-is
        self._ids = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._ids

    def __eq__(self, other) -> bool:
        return isinstance(other, SymbolTable) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"SymbolTable({len(self)} symbols, {self.language}, {self.text_type})"

    def id_of(self, symbol: str) -> int:
        try:
            return self._ids[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} is not in the symbol table") from None

    def encode_with_unknown(self, symbols: list[str]) -> tuple[list[int], list[str]]:
        """(ids of the known symbols, the unknown symbols that were dropped)."""
        ids, unknown = [], []
        for s in symbols:
            if s in self._ids:
                ids.append(self._ids[s])
            else:
                unknown.append(s)
        return ids, unknown

    def encode(self, symbols: list[str]) -> list[int]:
        """Ids for `symbols`; unknown symbols are dropped with a warning."""
        ids, unknown = self.encode_with_unknown(symbols)
        if unknown:
            warnings.warn(f"dropped symbols not in the table: {sorted(set(unknown))}", stacklevel=2)
        return ids

    def decode(self, ids) -> list[str]:
        return [self.symbols[int(i)] for i in ids]

    def to_dict(self) -> dict:
        return {**self.meta, "symbols": self.symbols, "pad": self.pad, "language": self.language,
                "text_type": self.text_type, "version": self.VERSION}

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "SymbolTable":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkspaceError(f"{path}: cannot read symbol table ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("symbols"), list):
            raise WorkspaceError(f"{path}: not a symbol table (no 'symbols' list)")
        known = {"symbols", "pad", "language", "text_type", "version"}
        try:
            return cls(data["symbols"], pad=data.get("pad", PAD), language=data.get("language", "es"),
                       text_type=data.get("text_type", "text"),
                       meta={k: v for k, v in data.items() if k not in known})
        except ValueError as exc:
            raise WorkspaceError(f"{path}: {exc}") from None

    @classmethod
    def build(cls, symbol_lists, language: str = "es", text_type: str = "text",
              meta: dict | None = None) -> "SymbolTable":
        """Base inventory + every other symbol found in the corpus, sorted (deterministic)."""
        base = base_inventory(language, text_type)
        known = set(base)
        extra = sorted({s for symbols in symbol_lists for s in symbols if s not in known and s != PAD})
        return cls(base + extra, PAD, language, canonical_text_type(text_type), meta)
