"""espeak-ng through the espeakng-loader wheel's shared library, via ctypes.

Used for speech (the sample corpus) with phoneme events: the ground truth of `tts align`.
Two facts shape the binding:
- espeak-ng keeps waveform state between calls (pitch flutter phase and the like), so the
  same text spoken twice in one library instance comes out a few samples different. Each
  `speak()` therefore loads a *fresh* private copy of the library (about 5 ms), which makes
  the audio a pure function of (text, voice, rate).
- Phoneme events carry either espeak mnemonics or IPA, chosen at initialisation. We speak
  twice (fresh instances, identical audio) to record both.
"""
from __future__ import annotations

import ctypes
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from tts_cli.errors import ConfigError, EspeakError

# --- speak_lib.h -------------------------------------------------------------------------
AUDIO_OUTPUT_SYNCHRONOUS = 2
espeakINITIALIZE_PHONEME_EVENTS = 0x0001
espeakINITIALIZE_PHONEME_IPA = 0x0002
espeakCHARS_UTF8 = 1
POS_CHARACTER = 1
espeakRATE = 1
RATE_RANGE = (80, 450)  # espeakRATE_MINIMUM .. espeakRATE_MAXIMUM, words per minute

EVENT_KINDS = {1: "word", 2: "sentence", 3: "mark", 4: "play", 5: "end", 6: "msg_terminated", 7: "phoneme"}
_EVENT_LIST_TERMINATED = 0
_EVENT_SAMPLERATE = 8


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),  # word / sentence events
        ("name", ctypes.c_char_p),  # mark / play events
        ("string", ctypes.c_char * 8),  # phoneme events: UTF-8, NUL-terminated unless 8 bytes long
    ]


class _Event(ctypes.Structure):
    # espeak_EVENT: 40 bytes on 64-bit (6 ints, then the pointer and the union 8-aligned at 24/32).
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character index into the text
        ("length", ctypes.c_int),  # word length in characters (word events)
        ("audio_position", ctypes.c_int),  # ms, truncated
        ("sample", ctypes.c_int),  # sample index from the start of this espeak_Synth's audio
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class SpeechEvent:
    """One espeak-ng event, positioned in the audio returned by `speak()`."""

    kind: str  # "phoneme", "word", "sentence", "end", ...
    sample: int  # start, in samples (exact)
    audio_position_ms: int  # the same instant in ms as espeak reports it (truncated)
    text_position: int  # 1-based character index in the text
    length: int = 0  # word events: length in characters
    number: int = 0  # word / sentence events: running number
    phoneme: str = ""  # phoneme events: espeak mnemonic ("_:" etc. are pauses)
    ipa: str | None = None  # phoneme events: IPA ("" for pauses); None when not requested

    @property
    def is_pause(self) -> bool:
        return self.kind == "phoneme" and self.phoneme.startswith("_")


_lib_dir: tempfile.TemporaryDirectory | None = None
# Two threads loading the same path would share one instance: one synthesis at a time.
_espeak_lock = threading.RLock()


def _private_library_path() -> Path:
    """A private copy of espeakng-loader's library, so our instances share no state with
    anyone else's (phonemizer makes its own copy too) and can be unloaded and reloaded."""
    global _lib_dir
    try:
        import espeakng_loader
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise EspeakError("espeakng-loader is not installed: pip install espeakng-loader") from e
    source = Path(espeakng_loader.get_library_path())
    if _lib_dir is None:
        _lib_dir = tempfile.TemporaryDirectory(prefix="tts-espeak-")
    target = Path(_lib_dir.name) / source.name
    if not target.exists():
        shutil.copy2(source, target)
    return target


def _data_path() -> bytes:
    import espeakng_loader

    return espeakng_loader.get_data_path().encode()


def _unload(lib: ctypes.CDLL) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(lib._handle)


@contextmanager
def _fresh_espeak(options: int) -> Iterator[tuple[ctypes.CDLL, int]]:
    """A newly loaded, initialised espeak-ng instance in synchronous mode; unloaded on exit."""
    lib = ctypes.CDLL(str(_private_library_path()), mode=ctypes.RTLD_LOCAL)
    try:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, _data_path(), options)
        if sample_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (data at {_data_path().decode()})")
        yield lib, sample_rate
    finally:
        try:
            lib.espeak_Terminate()
        finally:
            _unload(lib)


def espeak_version() -> str:
    with _espeak_lock, _fresh_espeak(0) as (lib, _):
        return (lib.espeak_Info(None) or b"?").decode()


def _phoneme_name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _synthesize(text: str, voice: str, rate: int | None, ipa: bool) -> tuple[np.ndarray, int, list[SpeechEvent]]:
    """One espeak_Synth call in a fresh instance: PCM16 samples, sample rate, events."""
    options = espeakINITIALIZE_PHONEME_EVENTS | (espeakINITIALIZE_PHONEME_IPA if ipa else 0)
    chunks: list[np.ndarray] = []
    events: list[SpeechEvent] = []

    def on_audio(wav, n_samples, event_array):  # called by espeak while it synthesises
        if wav and n_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while event_array[i].type != _EVENT_LIST_TERMINATED:
            ev = event_array[i]
            i += 1
            if ev.type == _EVENT_SAMPLERATE:
                continue
            kind = EVENT_KINDS.get(ev.type, str(ev.type))
            name = _phoneme_name(bytes(ev.id.string)) if kind == "phoneme" else ""
            number = ev.id.number if kind in ("word", "sentence") else 0
            events.append(SpeechEvent(
                kind=kind, sample=ev.sample, audio_position_ms=ev.audio_position,
                text_position=ev.text_position, length=ev.length if kind == "word" else 0,
                number=number, phoneme=name,
            ))
        return 0

    callback = _SynthCallback(on_audio)  # must stay referenced while espeak may call it
    with _espeak_lock, _fresh_espeak(options) as (lib, sample_rate):
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice!r} (try 'es', 'es+f3', 'es-419', 'en-us')")
        if rate is not None:
            lib.espeak_SetParameter(espeakRATE, int(rate), 0)
        data = text.encode("utf-8") + b"\0"
        status = lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, espeakCHARS_UTF8, None, None)
        if status != 0:
            raise EspeakError(f"espeak_Synth failed with status {status} for {text!r}")
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return pcm, sample_rate, events


def speak(text: str, voice: str = "es", rate: int | None = None, ipa: bool = True
          ) -> tuple[np.ndarray, int, list[SpeechEvent]]:
    """Speak `text` with espeak-ng: (float32 samples in [-1, 1], sample rate, events).

    Phoneme events carry the espeak mnemonic and, with `ipa=True`, the IPA string too.
    Deterministic: the same arguments give the same samples in any process.
    """
    if rate is not None and not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise ConfigError(f"rate must be {RATE_RANGE[0]}..{RATE_RANGE[1]} words per minute, got {rate}")
    pcm, sample_rate, events = _synthesize(text, voice, rate, ipa=False)
    if ipa:
        pcm_ipa, _, events_ipa = _synthesize(text, voice, rate, ipa=True)
        ours = [e for e in events if e.kind == "phoneme"]
        theirs = [e for e in events_ipa if e.kind == "phoneme"]
        if len(ours) != len(theirs) or any(a.sample != b.sample for a, b in zip(ours, theirs)):
            raise EspeakError(f"espeak-ng gave different phonemes in IPA mode for {text!r}")
        ipa_names = iter(b.phoneme for b in theirs)
        events = [replace(e, ipa=next(ipa_names)) if e.kind == "phoneme" else e for e in events]
    return pcm.astype(np.float32) / 32768.0, sample_rate, events
