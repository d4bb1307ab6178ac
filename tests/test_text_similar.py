"""New symbols of a fine-tuning language start from the nearest sounds the checkpoint knows."""
from tts_cli.text.similar import base_symbol, similar_symbols

SPANISH = ["_", " ", ".", "ˈ", "a", "b", "d", "e", "f", "i", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
           "x", "z", "ð", "ɡ", "ɾ", "ʝ", "β", "θ", "ɛ", "tʃ", "aɪ", "eɪ"]


def test_length_and_syllabic_marks_are_dropped():
    assert base_symbol("iː") == "i" and base_symbol("n̩") == "n" and base_symbol("a") == "a"
    assert similar_symbols("iː", SPANISH) == ["i"] and similar_symbols("l̩", SPANISH) == ["l"]


def test_english_sounds_on_a_spanish_voice():
    expect = {"ɪ": ["i"], "ʊ": ["u"], "æ": ["a"], "ʌ": ["a"], "ɑː": ["a"], "ɹ": ["ɾ"], "ʃ": ["s"], "h": ["x"],
              "v": ["β"], "ʒ": ["ʝ"], "ə": ["e"], "ɜː": ["ɛ"], "ɔː": ["o"], "oʊ": ["o", "u"], "dz": ["d", "z"]}
    for symbol, want in expect.items():
        assert similar_symbols(symbol, SPANISH) == want, symbol


def test_nothing_close_gives_nothing():
    assert similar_symbols("ʔ", SPANISH) == []
    assert similar_symbols("ʕ", SPANISH) == []
    assert similar_symbols("a", []) == []
