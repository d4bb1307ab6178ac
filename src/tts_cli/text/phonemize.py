"""Grapheme-to-phoneme with espeak-ng through phonemizer.

espeak-ng comes from the espeakng-loader wheel (library + data), so no system package is
needed; a system libespeak-ng is the fallback when the wheel is unusable. One backend per
(process, language) is created on first use and kept: creating one costs far more than
phonemising a sentence.

Output: IPA with stress marks (ˈ ˌ), words separated by single spaces, punctuation kept in
place (including Spanish ¿ ¡ « »). Texts with nothing to pronounce give "".
"""
from __future__ import annotations

import os
import re
import threading

from tts_cli.errors import PhonemizerError

# Punctuation phonemizer keeps in the output (everything else non-verbal is dropped by espeak).
# Matches symbols.PUNCTUATION minus characters espeak reads inside words (' and -).
PRESERVED_PUNCTUATION = ';:,.!?¡¿—…"«»“”(){}[]'

_lock = threading.Lock()
_backends: dict[tuple[int, str], object] = {}
_library: dict | None = None  # {"library": path, "data_path": path|None, "source": ...}

# Anything espeak can pronounce: a letter or a digit.
_SPEAKABLE_RE = re.compile(r"[^\W_]")


def _configure_library() -> dict:
    """Point phonemizer at espeakng-loader's library and data; fall back to the system."""
    global _library
    if _library is not None:
        return _library
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    problems = []
    try:
        import espeakng_loader

        lib, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        if not os.path.isfile(lib):
            raise FileNotFoundError(f"{lib} missing")
        EspeakWrapper.set_library(lib)
        _set_data_path(EspeakWrapper, data)
        _probe()
        _library = {"library": lib, "data_path": data, "source": "espeakng-loader"}
        return _library
    except Exception as exc:  # broken/missing wheel: try the system library
        problems.append(f"espeakng-loader: {exc}")
    EspeakWrapper.set_library(None)
    _set_data_path(EspeakWrapper, None)
    try:
        _probe()
        _library = {"library": None, "data_path": None, "source": "system"}
        return _library
    except Exception as exc:
        problems.append(f"system libespeak-ng: {exc}")
    raise PhonemizerError(
        "espeak-ng not usable (" + "; ".join(problems) + "). "
        "Fix: pip install espeakng-loader (or install libespeak-ng1 from your OS)")


def _set_data_path(wrapper, data: str | None) -> None:
    # espeak-ng reads ESPEAK_DATA_PATH itself; phonemizer >= 3.3 can also pass it explicitly.
    if data is None:
        os.environ.pop("ESPEAK_DATA_PATH", None)
    else:
        os.environ["ESPEAK_DATA_PATH"] = data
    if hasattr(wrapper, "set_data_path"):
        wrapper.set_data_path(data)


def _probe() -> None:
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    EspeakWrapper()  # loads and initialises the library; raises when unusable


def _backend(language: str):
    """The process's backend for `language` (created once)."""
    key = (os.getpid(), language)  # a forked worker builds its own
    backend = _backends.get(key)
    if backend is not None:
        return backend
    with _lock:
        if key not in _backends:
            _configure_library()
            import logging

            from phonemizer.backend import EspeakBackend

            quiet = logging.getLogger("tts_cli.phonemizer")
            quiet.setLevel(logging.ERROR)
            try:
                _backends[key] = EspeakBackend(
                    language, preserve_punctuation=True, punctuation_marks=PRESERVED_PUNCTUATION,
                    with_stress=True, language_switch="remove-flags", words_mismatch="ignore",
                    logger=quiet)
            except RuntimeError as exc:
                raise PhonemizerError(f"espeak-ng cannot phonemise language {language!r}: {exc}. "
                                      "Fix: use an espeak-ng voice code such as es, es-419, en-us") from None
        return _backends[key]


def _clean(text: str) -> str:
    # phonemizer treats "\n" as a line break between utterances: one text must stay one line.
    return re.sub(r"\s+", " ", text).strip()


def _tidy(phonemes: str) -> str:
    return re.sub(r"\s+", " ", phonemes).strip()


def phonemize_many(texts: list[str], language: str = "es") -> list[str]:
    """Phonemise many texts in one espeak call; result i belongs to texts[i]."""
    from phonemizer.separator import Separator

    cleaned = [_clean(t) for t in texts]
    out = [""] * len(cleaned)
    todo = [i for i, t in enumerate(cleaned) if _SPEAKABLE_RE.search(t)]
    if not todo:
        return out
    backend = _backend(language)
    separator = Separator(phone="", word=" ", syllable="")
    batch = [cleaned[i] for i in todo]
    with _lock:  # one espeak instance is not re-entrant
        result = backend.phonemize(batch, separator=separator, strip=True, njobs=1)
        if len(result) != len(batch):  # never trust a shifted batch: redo one by one
            result = [(backend.phonemize([t], separator=separator, strip=True, njobs=1) or [""])[0]
                      for t in batch]
    for i, phonemes in zip(todo, result):
        out[i] = _tidy(phonemes)
    return out


def phonemize(text: str, language: str = "es") -> str:
    """IPA for one text (stress marks, punctuation and word spaces kept)."""
    return phonemize_many([text], language)[0]


def espeak_info() -> dict:
    """espeak-ng version, library path and its origin, for `tts doctor` and the workspace:
    {"version", "library" (= "library_path"), "data_path", "source": "espeakng-loader" | "system",
    "phonemizer", "espeakng_loader"} (all str or None)."""
    info = dict(_configure_library())
    try:
        from phonemizer.backend.espeak.wrapper import EspeakWrapper

        wrapper = EspeakWrapper()
        info["version"] = ".".join(str(v) for v in wrapper.version)
        info["library"] = info["library_path"] = str(wrapper.library_path)
        info["data_path"] = str(wrapper.data_path)
    except Exception as exc:  # report rather than fail: doctor prints it
        info["version"] = None
        info["error"] = str(exc)
    try:
        from importlib.metadata import version

        info["phonemizer"] = version("phonemizer")
        info["espeakng_loader"] = version("espeakng-loader") if info["source"] == "espeakng-loader" else None
    except Exception:
        pass
    return info
