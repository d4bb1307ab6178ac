"""Text front end: normalisation, espeak-ng phonemisation, model symbols.

Importing this package is cheap: phonemizer and num2words load on first use.
"""
from tts_cli.errors import PhonemizerError
from tts_cli.text.frontend import TextResult, text_to_symbols, texts_to_symbols
from tts_cli.text.normalize import normalize_text
from tts_cli.text.phonemize import espeak_info, phonemize, phonemize_many
from tts_cli.text.symbols import (
                                  PAD,
                                  PUNCTUATION,
                                  STRESS,
                                  TEXT_TYPES,
                                  SymbolTable,
                                  base_inventory,
                                  canonical_text_type,
                                  characters_to_symbols,
                                  split_phonemes,
)

__all__ = [
    "PAD", "PUNCTUATION", "STRESS", "TEXT_TYPES", "PhonemizerError", "SymbolTable", "TextResult",
    "base_inventory", "canonical_text_type", "characters_to_symbols", "espeak_info",
    "normalize_text", "phonemize", "phonemize_many", "split_phonemes", "text_to_symbols",
    "texts_to_symbols",
]
