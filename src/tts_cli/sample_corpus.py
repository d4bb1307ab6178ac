"""The built-in sample corpus: espeak-ng reads `data/sentences_es.txt` aloud.

espeak-ng's own phoneme events say where each phoneme starts, so the corpus comes with a
ground truth (`truth.json`) that `tts align` is measured against.

espeak-ng is driven through the shared library shipped in the espeakng-loader wheel, via
ctypes (no system espeak, no phonemizer). Two facts shape the binding below:
- espeak-ng keeps waveform state between calls (pitch flutter phase and the like), so the
  same text spoken twice in one library instance comes out a few samples different. Each
  `speak()` therefore loads a *fresh* private copy of the library (about 5 ms), which makes
  the audio a pure function of (text, voice, rate).
- Phoneme events carry either espeak mnemonics or IPA, chosen at initialisation. We speak
  twice (fresh instances, identical audio) to record both.

Run: `python -m tts_cli.sample_corpus --out DIR [--speakers N] [--limit K] [--rate WPM]`.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import io
import json
import shutil
import sys
import tempfile
import threading
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from tts_cli.workspace import atomic_write_bytes, atomic_write_json, atomic_write_text

# Bump when the output for the same settings changes, so cached corpora get rebuilt.
GENERATOR_VERSION = 1

DEFAULT_SENTENCES = Path(__file__).resolve().parents[2] / "data" / "sentences_es.txt"

# espeak-ng voice variants appended to the language (`es+f3`) give the multi-speaker option.
VOICE_VARIANTS = ("", "f3", "m3", "f2", "m1", "f1", "m2", "f4")

# A real recording starts and ends with a little room tone: silence trimming has work to do.
PAD_RANGE_S = (0.2, 0.3)
NOISE_FLOOR_DBFS = -70.0

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


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or refused a request."""


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
        raise ValueError(f"rate must be {RATE_RANGE[0]}..{RATE_RANGE[1]} words per minute, got {rate}")
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


# --- the corpus ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Speaker:
    name: str  # folder name and id prefix
    voice: str  # espeak-ng voice name


@dataclass
class CorpusSummary:
    out: Path
    n_utterances: int
    seconds: float
    speakers: list[str]
    cached: bool
    build_s: float = 0.0

    def line(self) -> str:
        how = "already built with these settings, nothing to do" if self.cached else f"built in {self.build_s:.1f} s"
        return (f"Sample corpus {self.out}: {self.n_utterances} utterances, {len(self.speakers)} speaker(s), "
                f"{self.seconds / 60:.1f} min of audio ({how})")


def speakers_for(language: str, n: int) -> list[Speaker]:
    if not 1 <= n <= len(VOICE_VARIANTS):
        raise ValueError(f"--speakers must be 1..{len(VOICE_VARIANTS)} (espeak-ng voice variants), got {n}")
    out = []
    for variant in VOICE_VARIANTS[:n]:
        if variant:
            out.append(Speaker(f"{language}_{variant}", f"{language}+{variant}"))
        else:
            out.append(Speaker(language, language))
    return out


def default_sentence_file(language: str) -> Path:
    return DEFAULT_SENTENCES.with_name(f"sentences_{language.split('-')[0].lower()}.txt")


def read_sentences(path: Path, console=None) -> list[str]:
    """One sentence a line; blank lines and `#` comments skipped; lines with `|` (the
    metadata separator) are reported and skipped."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: sentence file not found (pass --sentences FILE)")
    sentences = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = " ".join(line.split())
        if not line or line.startswith("#"):
            continue
        if "|" in line:
            if console is not None:
                console.print(f"[yellow]{path}:{number}: skipped, '|' is the metadata separator[/]")
            continue
        sentences.append(line)
    if not sentences:
        raise ValueError(f"{path}: no sentences in this file")
    return sentences


def _pad_and_noise(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    lead = int(round(rng.uniform(*PAD_RANGE_S) * sample_rate))
    tail = int(round(rng.uniform(*PAD_RANGE_S) * sample_rate))
    audio = np.concatenate([np.zeros(lead, np.float32), samples, np.zeros(tail, np.float32)])
    audio += rng.normal(0.0, 10 ** (NOISE_FLOOR_DBFS / 20), audio.shape).astype(np.float32)
    return np.clip(audio, -1.0, 32767 / 32768), lead


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _truth_entry(text: str, speaker: Speaker, events: list[SpeechEvent], lead: int,
                 n_samples: int, sample_rate: int) -> dict:
    """Ground truth for one written wav: times include the added leading silence."""
    phonemes = [e for e in events if e.kind == "phoneme"]
    starts = [(lead + e.sample) / sample_rate for e in phonemes]
    ends = starts[1:] + [n_samples / sample_rate]
    words = [e for e in events if e.kind == "word"]
    return {
        "speaker": speaker.name,
        "voice": speaker.voice,
        "text": text,
        "phonemes": [e.phoneme for e in phonemes],
        "ipa": [e.ipa for e in phonemes],
        "starts_s": [round(t, 6) for t in starts],
        "ends_s": [round(t, 6) for t in ends],
        "duration_s": round(n_samples / sample_rate, 6),
        "lead_s": round(lead / sample_rate, 6),
        "words": [text[e.text_position - 1: e.text_position - 1 + e.length] for e in words],
        "word_starts_s": [round((lead + e.sample) / sample_rate, 6) for e in words],
    }


def _plan(sentences: list[str], speakers: list[Speaker], repeat: bool) -> list[tuple[str, Speaker, str]]:
    """(id, speaker, text): sentences dealt round-robin to speakers, or all to each with
    `repeat`. Ids carry the sentence number, so `es_f3_0002` is sentence 2."""
    plan = []
    for index, text in enumerate(sentences):
        chosen = speakers if repeat else [speakers[index % len(speakers)]]
        for speaker in chosen:
            plan.append((f"{speaker.name}_{index + 1:04d}", speaker, text))
    return plan


def _is_complete(out: Path, settings: dict) -> dict | None:
    """The stored corpus.json when DIR holds a complete corpus built with `settings`."""
    try:
        stored = json.loads((out / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("settings") != settings:
        return None
    if not all((out / f).is_file() for f in stored.get("files", [])):
        return None
    return stored


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Delete files a previous build (other settings) listed and this one does not write."""
    try:
        stored = json.loads((out / "corpus.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    for rel in stored.get("files", []):
        path = out / rel
        if rel not in keep and path.is_file() and out.resolve() in path.resolve().parents:
            path.unlink()


def build_sample_corpus(
    out: str | Path,
    speakers: int = 1,
    limit: int | None = None,
    language: str = "es",
    rate: int | None = None,
    sentences: str | Path | None = None,
    repeat: bool = False,
    seed: int = 0,
    force: bool = False,
    console=None,
    progress: bool = True,
) -> CorpusSummary:
    """Speak the sentence file into an LJSpeech-layout corpus at `out` with `truth.json`.

    One speaker: `out/metadata.csv` + `out/wavs/`. Several: `out/<speaker>/metadata.csv` +
    `out/<speaker>/wavs/`. `truth.json` and `corpus.json` always sit in `out`. A corpus
    already built with the same settings is left as it is (unless `force`).
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = console or Console()
    out = Path(out)
    sentence_file = Path(sentences) if sentences else default_sentence_file(language)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    if rate is not None and not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise ValueError(f"--rate must be {RATE_RANGE[0]}..{RATE_RANGE[1]} words per minute, got {rate}")
    voices = speakers_for(language, speakers)
    texts = read_sentences(sentence_file, console)[:limit]

    settings = {
        "generator_version": GENERATOR_VERSION,
        "espeak_ng": espeak_version(),
        "language": language,
        "voices": [s.voice for s in voices],
        "rate": rate,
        "limit": limit,
        "repeat": repeat,
        "seed": seed,
        "pad_range_s": list(PAD_RANGE_S),
        "noise_floor_dbfs": NOISE_FLOOR_DBFS,
        "sentences_sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest(),
    }
    stored = None if force else _is_complete(out, settings)
    if stored is not None:
        summary = CorpusSummary(out, stored["n_utterances"], stored["seconds"], stored["speakers"], cached=True)
        console.print(summary.line(), soft_wrap=True, markup=False, highlight=False)
        return summary

    started = time.perf_counter()
    plan = _plan(texts, voices, repeat)
    multi = len(voices) > 1
    folder = {s.name: (out / s.name if multi else out) for s in voices}
    truth: dict[str, dict] = {}
    rows: dict[str, list[str]] = {s.name: [] for s in voices}
    files: list[str] = []
    with Progress(TextColumn("[bold]Speaking[/]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("speak", total=len(plan))
        for utt_id, speaker, text in plan:
            samples, sample_rate, events = speak(text, speaker.voice, rate)
            rng = np.random.default_rng([seed, zlib.crc32(utt_id.encode())])
            audio, lead = _pad_and_noise(samples, sample_rate, rng)
            wav = folder[speaker.name] / "wavs" / f"{utt_id}.wav"
            atomic_write_bytes(wav, _wav_bytes(audio, sample_rate))
            files.append(wav.relative_to(out).as_posix())
            truth[utt_id] = _truth_entry(text, speaker, events, lead, len(audio), sample_rate)
            rows[speaker.name].append(f"{utt_id}|{text}|{text}\n")
            bar.advance(task)

    for speaker in voices:
        metadata = folder[speaker.name] / "metadata.csv"
        atomic_write_text(metadata, "".join(rows[speaker.name]))
        files.append(metadata.relative_to(out).as_posix())
    atomic_write_json(out / "truth.json", truth)
    files.append("truth.json")
    _remove_stale(out, set(files))
    seconds = sum(t["duration_s"] for t in truth.values())
    summary = CorpusSummary(out, len(truth), seconds, [s.name for s in voices], cached=False,
                            build_s=time.perf_counter() - started)
    # Written last: its presence with matching settings is what marks the corpus complete.
    atomic_write_json(out / "corpus.json", {
        "settings": settings, "sentence_file": str(sentence_file), "n_utterances": len(truth),
        "seconds": round(seconds, 3), "speakers": summary.speakers, "files": files,
    })
    console.print(summary.line(), soft_wrap=True, markup=False, highlight=False)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tts_cli.sample_corpus",
        description="Speak the built-in sentences with espeak-ng into an LJSpeech-layout corpus "
                    "plus truth.json (espeak-ng's phoneme start times).")
    parser.add_argument("--out", required=True, type=Path, help="corpus folder to write")
    parser.add_argument("--speakers", type=int, default=1,
                        help=f"espeak-ng voice variants, 1..{len(VOICE_VARIANTS)}; one sub-folder each when > 1")
    parser.add_argument("--limit", type=int, default=None, help="only the first K sentences")
    parser.add_argument("--language", default="es", help="espeak-ng voice / language (default: es)")
    parser.add_argument("--rate", type=int, default=None, help="speaking rate in words per minute (80..450)")
    parser.add_argument("--sentences", type=Path, default=None,
                        help="sentence file, one a line (default: data/sentences_<lang>.txt)")
    parser.add_argument("--repeat", action="store_true",
                        help="every speaker reads every sentence (default: sentences dealt across speakers)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the padding and noise floor")
    parser.add_argument("--force", action="store_true", help="rebuild even when the corpus is up to date")
    args = parser.parse_args(argv)
    try:
        build_sample_corpus(args.out, speakers=args.speakers, limit=args.limit, language=args.language,
                            rate=args.rate, sentences=args.sentences, repeat=args.repeat, seed=args.seed,
                            force=args.force)
    except (ValueError, FileNotFoundError, EspeakError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
