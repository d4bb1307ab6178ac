"""Symbol splitting rules, the symbol table, characters mode and pre-phonemised input."""
import json

import pytest

from tts_cli.errors import ConfigError, WorkspaceError
from tts_cli.text import (PAD, SymbolTable, base_inventory, canonical_text_type,
                          characters_to_symbols, split_phonemes, text_to_symbols)


@pytest.mark.parametrize("ipa,expected", [
    ("mˈutʃo", ["m", "ˈ", "u", "tʃ", "o"]),  # affricate merged, stress separate
    ("dʒˈʌdʒ", ["dʒ", "ˈ", "ʌ", "dʒ"]),
    ("pˈitsa", ["p", "ˈ", "i", "ts", "a"]),
    ("t͡ʃa t͜sa", ["t͡ʃ", "a", " ", "t͜s", "a"]),  # tie bars join
    ("wˈɜːld", ["w", "ˈ", "ɜː", "l", "d"]),  # length mark attached
    ("kʰæ̃t", ["kʰ", "æ̃", "t"]),  # modifier letter and combining diacritic attached
    ("ˈaʊto ˌeɪ", ["ˈ", "aʊ", "t", "o", " ", "ˌ", "eɪ"]),  # espeak one-phoneme diphthongs
    ("xwˈan", ["x", "w", "ˈ", "a", "n"]),  # rising diphthong stays two symbols
    ("¿kˈe?  ¡sˈi!", ["¿", "k", "ˈ", "e", "?", " ", "¡", "s", "ˈ", "i", "!"]),
    ("  a   b ", ["a", " ", "b"]),
    ("", []),
])
def test_split_phonemes(ipa, expected):
    assert split_phonemes(ipa) == expected


def test_split_is_lossless_for_espeak_style_strings():
    ipa = "¿kˈomo estˈas, xwˈan? «tʃˈiko» ʎuˈeβe."
    assert "".join(split_phonemes(ipa)) == ipa


def test_characters_mode():
    assert characters_to_symbols("¡Hola,  Ñandú_sí!") == list("¡hola, ñandú sí!")  # pad "_" never appears
    r = text_to_symbols("El Sr. Gil tiene 2 años.", text_type="characters")
    assert r.normalized == "El señor Gil tiene dos años."
    assert r.symbols == list("el señor gil tiene dos años.")
    assert text_to_symbols("¿...?", text_type="characters").symbols == []


def test_pre_phonemised_input():
    r = text_to_symbols("  ¿kˈe  tˈal?  ", text_type="ipa")
    assert r.phonemes == "¿kˈe tˈal?"
    assert r.symbols == ["¿", "k", "ˈ", "e", " ", "t", "ˈ", "a", "l", "?"]
    # no normalisation of pre-phonemised text, even with digits-like content
    assert text_to_symbols("ˈuno 2", text_type="pre-phonemised").symbols[-1] == "2"
    assert text_to_symbols("kˈe", text_type="ipa", keep_stress=False).symbols == ["k", "e"]


def test_text_type_names():
    assert canonical_text_type("Text") == "text"
    assert canonical_text_type("ipa") == "phonemes"
    assert canonical_text_type("pre-phonemized") == "phonemes"
    with pytest.raises(ConfigError, match="unknown text type"):
        canonical_text_type("morse")


def test_base_inventory():
    inv = base_inventory("es", "text")
    assert inv[0] == PAD and inv[1] == " "
    assert {"¿", "¡", "ˈ", "ˌ", "tʃ", "θ", "ʎ", "ɲ", "ɾ", "r", "β", "ð", "ɣ", "x"} <= set(inv)
    assert len(inv) == len(set(inv))
    chars = base_inventory("es", "characters")
    assert "ñ" in chars and "á" in chars and "ˈ" not in chars
    assert "ñ" not in base_inventory("en-us", "characters")
    assert base_inventory("es-419", "text") == inv


def test_table_build_is_deterministic_and_appends_extras():
    corpus = [["k", "ˈ", "e"], ["ʔ", "ɨ", "a"], ["ɨ"]]
    t1 = SymbolTable.build(corpus, "es", "text")
    t2 = SymbolTable.build(list(reversed(corpus)), "es", "text")
    assert t1.symbols == t2.symbols
    base = base_inventory("es", "text")
    assert t1.symbols[: len(base)] == base
    assert t1.symbols[len(base):] == sorted(["ʔ", "ɨ"])
    assert t1.id_of(PAD) == 0 and t1.pad == PAD


def test_encode_decode_and_unknown():
    t = SymbolTable.build([], "es", "text")
    syms = split_phonemes("¿kˈomo estˈas?")
    ids = t.encode(syms)
    assert 0 not in ids and t.decode(ids) == syms
    with pytest.warns(UserWarning, match="ɨ"):
        ids2 = t.encode(["k", "ɨ", "a"])
    assert t.decode(ids2) == ["k", "a"]
    assert t.encode_with_unknown(["k", "ɨ"]) == ([t.id_of("k")], ["ɨ"])
    with pytest.raises(KeyError, match="not in the symbol table"):
        t.id_of("ɨ")


def test_save_load_round_trip(tmp_path):
    t = SymbolTable.build([["ʔ"]], "es-419", "text", meta={"espeak": {"version": "1.52.0"}})
    path = t.save(tmp_path / "symbols.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["symbols"][0] == "_" and data["pad"] == "_" and data["version"] == 1
    assert data["language"] == "es-419" and data["text_type"] == "text"
    assert data["espeak"]["version"] == "1.52.0"
    loaded = SymbolTable.load(path)
    assert loaded == t and len(loaded) == len(t)
    assert [p.name for p in tmp_path.iterdir()] == ["symbols.json"]  # no temp file left


def test_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"symbols": ["a", "_"]}', encoding="utf-8")
    with pytest.raises(WorkspaceError, match="pad"):
        SymbolTable.load(bad)
    bad.write_text("not json", encoding="utf-8")
    with pytest.raises(WorkspaceError, match="bad.json"):
        SymbolTable.load(bad)
    with pytest.raises(ValueError, match="duplicate"):
        SymbolTable(["_", "a", "a"])


def test_corpus_table_covers_spanish_sentences():
    pytest.importorskip("phonemizer")
    from tts_cli.text import texts_to_symbols

    results = texts_to_symbols(["¿Quién llegó ayer al pueblo?", "¡Qué cerveza tan fría, chico!"])
    table = SymbolTable.build([r.symbols for r in results], "es", "text")
    # the fixed Spanish inventory already holds every symbol espeak produced
    assert len(table) == len(base_inventory("es", "text"))
    for r in results:
        assert table.decode(table.encode(r.symbols)) == r.symbols
