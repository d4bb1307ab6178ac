"""espeak-ng phonemisation through phonemizer and espeakng-loader."""
import pytest

pytest.importorskip("phonemizer")

from tts_cli.text import espeak_info, phonemize, phonemize_many, text_to_symbols, texts_to_symbols
from tts_cli.errors import PhonemizerError
from tts_cli.text.phonemize import _backend


def test_fixed_spanish_sentences():
    assert phonemize("¿Cómo estás, Juan?") == "¿kˈomo estˈas, xwˈan?"
    assert phonemize("¡Hola! Mucho gusto.") == "¡ˈola! mˈutʃo ɣˈusto."
    assert phonemize("«Chico», dijo; llueve.") == "«tʃˈiko», dˈixo; ʎuˈeβe."


def test_stress_words_and_punctuation():
    out = phonemize("¿Dónde está la estación de tren? ¡Qué lejos!")
    assert out.startswith("¿") and "?" in out and "¡" in out and out.endswith("!")
    words = out.split(" ")
    assert len(words) == 8  # one phoneme word per written word
    assert out.count("ˈ") >= 5  # every content word carries a primary stress
    assert "  " not in out


def test_spain_and_latin_america_differ():
    assert "θ" in phonemize("cerveza", "es")
    es419 = phonemize("cerveza", "es-419")
    assert "θ" not in es419 and "s" in es419


def test_english():
    out = phonemize("Hello world, this is a test.", "en-us")
    assert out.count(" ") == 5 and "," in out and out.endswith(".")
    assert "ˈ" in out and "ð" in out


def test_batch_equals_single_and_keeps_alignment():
    texts = ["¿Qué hora es?", "", "...", "Hola\nmundo", "¡Vamos!", "¿?", "Adiós."]
    batch = phonemize_many(texts)
    assert len(batch) == len(texts)
    assert batch == [phonemize(t) for t in texts]
    assert batch[1] == batch[2] == batch[5] == ""  # nothing to pronounce
    assert batch[3] == phonemize("Hola mundo")  # a newline does not split one text in two
    assert batch[6].startswith("aðjˈos")


def test_backend_is_cached():
    assert _backend("es") is _backend("es")
    assert _backend("es") is not _backend("en-us")


def test_unknown_language_is_a_clear_error():
    with pytest.raises(PhonemizerError, match="xx-nope"):
        phonemize("hola", "xx-nope")


def test_espeak_info():
    info = espeak_info()
    assert info["source"] in ("espeakng-loader", "system")
    major, minor = (int(x) for x in info["version"].split(".")[:2])
    assert (major, minor) >= (1, 48)
    assert info["library"] and info["library_path"] == info["library"]


def test_frontend_phonemes_mode():
    r = text_to_symbols("El Dr. García pagó 3,50 €.")
    assert r.normalized == "El doctor García pagó tres euros con cincuenta céntimos."
    assert r.phonemes == phonemize(r.normalized)
    assert "".join(r.symbols) == r.phonemes.replace("  ", " ")
    assert r.symbols[-1] == "." and "ˈ" in r.symbols and " " in r.symbols


def test_frontend_batch_matches_single_and_rejects_empty():
    texts = ["Tengo 2 perros.", "¿¡!?", "La 1ª vez."]
    batch = texts_to_symbols(texts)
    assert [b.symbols for b in batch] == [text_to_symbols(t).symbols for t in texts]
    assert batch[1].symbols == []


def test_frontend_without_stress():
    r = text_to_symbols("Canción de cuna.", keep_stress=False)
    assert "ˈ" not in r.phonemes and "ˈ" not in r.symbols and "ˌ" not in r.symbols
    assert r.symbols


def test_broken_wheel_falls_back_to_system_or_explains(monkeypatch):
    import importlib

    import espeakng_loader

    # the package re-exports the function `phonemize`, which shadows the module attribute
    ph = importlib.import_module("tts_cli.text.phonemize")

    monkeypatch.setattr(ph, "_library", None)
    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: "/nonexistent/libespeak-ng.so")
    try:
        info = ph._configure_library()
        assert info["source"] == "system"
    except PhonemizerError as exc:  # no system espeak-ng on this machine
        assert "espeakng-loader" in str(exc) and "Fix:" in str(exc)
    finally:
        monkeypatch.undo()
        ph._library = None
        assert ph._configure_library()["source"] == "espeakng-loader"
