"""The built-in sample corpus: espeak-ng reads `src/tts_cli/resources/sentences/sentences_es.txt` aloud.

espeak-ng's own phoneme events say where each phoneme starts, so the corpus comes with a
ground truth (`truth.json`) that `tts align` is measured against.

espeak-ng is driven through the shared library of the espeakng-loader wheel via ctypes
(`tts_cli.espeak`; no system espeak, no phonemizer).

Run: `python -m tts_cli.sample_corpus --out DIR [--speakers N] [--limit K] [--rate WPM]`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from tts_cli.audio import save_wav
from tts_cli.resources import SENTENCES, resource_file
from tts_cli.workspace import atomic_write_json, atomic_write_text

# Bump when the output for the same settings changes, so cached corpora get rebuilt.
GENERATOR_VERSION = 1

DEFAULT_SENTENCES = resource_file(SENTENCES, "sentences_es.txt")

# espeak-ng voice variants appended to the language (`es+f3`) give the multi-speaker option.
VOICE_VARIANTS = ("", "f3", "m3", "f2", "m1", "f1", "m2", "f4")

# A real recording starts and ends with a little room tone: silence trimming has work to do.
PAD_RANGE_S = (0.2, 0.3)
NOISE_FLOOR_DBFS = -70.0

from tts_cli.errors import ConfigError, TTSError
from tts_cli.espeak import RATE_RANGE, SpeechEvent, espeak_version, speak

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
        raise ConfigError(f"--speakers must be 1..{len(VOICE_VARIANTS)} (espeak-ng voice variants), got {n}")
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
        raise ConfigError(f"{path}: sentence file not found (pass --sentences FILE)")
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
        raise ConfigError(f"{path}: no sentences in this file")
    return sentences


def _pad_and_noise(samples: np.ndarray, sample_rate: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    lead = int(round(rng.uniform(*PAD_RANGE_S) * sample_rate))
    tail = int(round(rng.uniform(*PAD_RANGE_S) * sample_rate))
    audio = np.concatenate([np.zeros(lead, np.float32), samples, np.zeros(tail, np.float32)])
    audio += rng.normal(0.0, 10 ** (NOISE_FLOOR_DBFS / 20), audio.shape).astype(np.float32)
    return np.clip(audio, -1.0, 32767 / 32768), lead


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

    console = console or Console()
    out = Path(out)
    sentence_file = Path(sentences) if sentences else default_sentence_file(language)
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    if rate is not None and not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
        raise ConfigError(f"--rate must be {RATE_RANGE[0]}..{RATE_RANGE[1]} words per minute, got {rate}")
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
    truth, rows, files = _speak_all(plan, voices, folder, out, rate, seed, console, progress)

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


def _speak_all(plan: list[tuple[str, Speaker, str]], voices: list[Speaker], folder: dict[str, Path], out: Path,
               rate: int | None, seed: int, console, progress: bool) -> tuple[dict, dict, list[str]]:
    """Speak every planned utterance to its wav; ({id: truth entry}, {speaker: metadata lines},
    files written relative to `out`)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    truth: dict[str, dict] = {}
    rows: dict[str, list[str]] = {s.name: [] for s in voices}
    files: list[str] = []
    with Progress(TextColumn("[bold]Speaking[/]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("speak", total=len(plan))
        for utt_id, speaker, text in plan:
            samples, sample_rate, events = speak(text, speaker.voice, rate)
            # seeded per utterance, so its padding and noise do not depend on the rest of the plan
            rng = np.random.default_rng([seed, zlib.crc32(utt_id.encode())])
            audio, lead = _pad_and_noise(samples, sample_rate, rng)
            wav = folder[speaker.name] / "wavs" / f"{utt_id}.wav"
            save_wav(wav, audio, sample_rate)
            files.append(wav.relative_to(out).as_posix())
            truth[utt_id] = _truth_entry(text, speaker, events, lead, len(audio), sample_rate)
            rows[speaker.name].append(f"{utt_id}|{text}|{text}\n")
            bar.advance(task)
    return truth, rows, files


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
                        help="sentence file, one a line (default: the bundled sentences_<lang>.txt)")
    parser.add_argument("--repeat", action="store_true",
                        help="every speaker reads every sentence (default: sentences dealt across speakers)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the padding and noise floor")
    parser.add_argument("--force", action="store_true", help="rebuild even when the corpus is up to date")
    args = parser.parse_args(argv)
    try:
        build_sample_corpus(args.out, speakers=args.speakers, limit=args.limit, language=args.language,
                            rate=args.rate, sentences=args.sentences, repeat=args.repeat, seed=args.seed,
                            force=args.force)
    except (TTSError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
