"""`tts make-corpus`: a teacher voice reads a sentence list into an LJSpeech-layout corpus.

Layout (one voice; with several voices each gets a sub-folder DIR/<voice>/, which
`tts preprocess` reads as one speaker per sub-folder):

    DIR/metadata.csv              id|text|normalized     (ids <voice>_<sentence number>, 00001...)
    DIR/wavs/<id>.wav             22050 Hz mono PCM16
    DIR/teacher_durations.jsonl   per utterance: the teacher's phoneme tokens and their durations (s)
    DIR/teacher/<id>.json         the same, one file per utterance (the resume state)
    DIR/rejected.jsonl            sentences the teacher could not speak, with the reason
    DIR/corpus.json               settings; a re-run with other settings into DIR is refused

Resumable: an utterance whose wav and teacher/<id>.json exist (for the same text) is skipped, so
an interrupted run goes on where it stopped; metadata.csv and teacher_durations.jsonl are rebuilt
from the per-utterance files at the end of every run. Every file is written atomically.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tts_cli.audio import save_wav
from tts_cli.errors import CorpusError, TeacherInputError
from tts_cli.resources import SENTENCES, language_file, resource_file
from tts_cli.teacher import load_teacher, unavailable_reason
from tts_cli.teacher.kokoro import VOICES_DIR
from tts_cli.workers import die_with_parent
from tts_cli.workspace import atomic_write_json, atomic_write_jsonl, atomic_write_text

DEFAULT_SENTENCES = resource_file(SENTENCES, "teacher_sentences_es.txt")


def default_sentences(language: str = "es") -> Path:
    """The bundled sentence list for a teacher language (teacher_sentences_<lang>.txt: es, en),
    else the Spanish one."""
    return language_file(SENTENCES, "teacher_sentences", language) or DEFAULT_SENTENCES
# Bump when the audio or files for the same settings change, so old corpora are not mixed in.
CORPUS_VERSION = 1
# Settings that change the audio: a folder made with others is not resumed.
_AUDIO_SETTINGS = ("teacher", "voice", "speed", "language", "sample_rate", "corpus_version")


@dataclass(frozen=True)
class Sentence:
    utt_id: str
    text: str
    line: int  # 1-based line in the sentence file, for messages


def read_sentences(path: str | os.PathLike) -> list[tuple[int, str]]:
    """(line number, sentence) for every non-empty line that is not a `#` comment."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"sentence file {path} not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc})") from None
    return [(i, " ".join(line.split())) for i, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")]


def plan_sentences(path: str | os.PathLike, voice: str, limit: int | None = None) -> list[Sentence]:
    """Stable ids: <voice>_<sentence number> (number = position among the file's sentences)."""
    rows = read_sentences(path)
    if limit is not None:
        rows = rows[:max(0, int(limit))]
    width = max(5, len(str(len(rows))))
    return [Sentence(f"{voice}_{n:0{width}d}", text, line) for n, (line, text) in enumerate(rows, 1)]


def parse_voices(voice: str | Sequence[str]) -> list[str]:
    names = voice.split(",") if isinstance(voice, str) else list(voice)
    names = [v.strip() for v in names if v and v.strip()]
    if not names:
        raise CorpusError("no voice given")
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------- one utterance

def _sidecar(folder: Path, utt_id: str) -> Path:
    return folder / "teacher" / f"{utt_id}.json"


def _done(folder: Path, s: Sentence) -> bool:
    wav, side = folder / "wavs" / f"{s.utt_id}.wav", _sidecar(folder, s.utt_id)
    if not (wav.is_file() and side.is_file()):
        return False
    try:
        return json.loads(side.read_text(encoding="utf-8")).get("text") == s.text
    except (OSError, ValueError):
        return False  # unreadable: make it again


_TEACHER = None  # one per process (worker or main)


def _init_worker(settings: dict) -> None:
    global _TEACHER

    if settings.get("parent_pid"):
        die_with_parent(settings["parent_pid"])  # never outlive a killed `tts make-corpus`
    _TEACHER = load_teacher(settings["teacher"], voice=settings["voice"], speed=settings["speed"], threads=1,
                            sample_rate=settings["sample_rate"], language=settings["language"])


def _make_one(folder: str, s: Sentence) -> dict:
    """Speak one sentence and write its wav and teacher/<id>.json; never raises for bad input."""
    folder_path = Path(folder)
    if "|" in s.text:
        return {"id": s.utt_id, "ok": False, "line": s.line, "text": s.text,
                "reason": "contains '|', the metadata.csv column separator"}
    try:
        out = _TEACHER.synthesize(s.text)
    except TeacherInputError as exc:
        return {"id": s.utt_id, "ok": False, "line": s.line, "text": s.text, "reason": str(exc)}
    duration = len(out.audio) / out.sample_rate
    save_wav(folder_path / "wavs" / f"{s.utt_id}.wav", out.audio, out.sample_rate)
    row = {"id": s.utt_id, "text": s.text, "normalized": out.normalized, "phonemes": out.phonemes,
           "tokens": out.tokens, "durations_s": out.durations_s, "units": out.units,
           "duration_s": round(duration, 6), "sample_rate": out.sample_rate, "line": s.line}
    # The sidecar is written last: its presence marks the utterance done.
    atomic_write_json(_sidecar(folder_path, s.utt_id), row)
    return {"id": s.utt_id, "ok": True, "duration_s": duration, "seconds": out.seconds}


# ----------------------------------------------------------------------------- one voice

def _check_settings(folder: Path, settings: dict) -> None:
    path = folder / "corpus.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        clash = {k: (old.get(k), settings[k]) for k in _AUDIO_SETTINGS if old.get(k) != settings[k]}
        if old and clash:
            what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in clash.items())
            raise CorpusError(f"{folder} holds a corpus made with other settings ({what}): "
                              "use another --out folder (or delete it)")
    atomic_write_json(path, settings)


def _assemble(folder: Path, plan: Iterable[Sentence]) -> tuple[int, float]:
    """Rebuild metadata.csv and teacher_durations.jsonl from the per-utterance files."""
    meta, rows, total = [], [], 0.0
    for s in plan:
        if not _done(folder, s):
            continue
        row = json.loads(_sidecar(folder, s.utt_id).read_text(encoding="utf-8"))
        meta.append(f"{s.utt_id}|{s.text}|{row['normalized']}\n")
        rows.append({k: row[k] for k in ("id", "phonemes", "tokens", "durations_s", "units", "duration_s",
                                         "sample_rate")})
        total += float(row["duration_s"])
    atomic_write_text(folder / "metadata.csv", "".join(meta))
    atomic_write_jsonl(folder / "teacher_durations.jsonl", rows)
    return len(meta), total


def _run_voice(folder: Path, settings: dict, plan: list[Sentence], workers: int, console, progress: bool) -> dict:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    folder.mkdir(parents=True, exist_ok=True)
    _check_settings(folder, settings)
    todo = [s for s in plan if not _done(folder, s)]
    stats = {"voice": settings["voice"], "folder": str(folder), "sentences": len(plan),
             "skipped": len(plan) - len(todo), "made": 0, "failed": 0, "audio_s": 0.0, "model_s": 0.0,
             "wall_s": 0.0, "interrupted": False}
    rejected = []
    start = time.perf_counter()
    cols = (TextColumn(f"[bold]{settings['voice']}"), BarColumn(), MofNCompleteColumn(), TextColumn("•"),
            TimeElapsedColumn(), TextColumn("•"), TimeRemainingColumn())

    def record(result: dict) -> None:
        if result["ok"]:
            stats["made"] += 1
            stats["audio_s"] += result["duration_s"]
            stats["model_s"] += result["seconds"]
        else:
            stats["failed"] += 1
            rejected.append({k: result[k] for k in ("id", "line", "text", "reason")})
            console.print(f"[yellow]skipped[/] {settings['sentences']}:{result['line']} ({result['id']}): "
                          f"{result['reason']}")

    try:
        with Progress(*cols, console=console, transient=True, disable=not progress) as bar:
            task = bar.add_task("speak", total=len(todo))
            if todo and workers <= 1:
                _init_worker(settings)
                for s in todo:
                    record(_make_one(str(folder), s))
                    bar.advance(task)
            elif todo:
                _run_pool(folder, settings, todo, workers, record, lambda: bar.advance(task))
    except KeyboardInterrupt:
        stats["interrupted"] = True
    finally:
        stats["wall_s"] = time.perf_counter() - start
        stats["utterances"], stats["corpus_audio_s"] = _assemble(folder, plan)
        if rejected or not (folder / "rejected.jsonl").exists():
            atomic_write_jsonl(folder / "rejected.jsonl", rejected)
    return stats


def _run_pool(folder: Path, settings: dict, todo: list[Sentence], workers: int, record, advance) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn: each worker builds its own onnxruntime session and espeak instance from scratch.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=({**settings, "parent_pid": os.getpid()},)) as pool:
        queue, pending = list(reversed(todo)), set()
        try:
            while queue or pending:
                while queue and len(pending) < workers * 4:  # bounded: results arrive in order of work
                    pending.add(pool.submit(_make_one, str(folder), queue.pop()))
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    record(fut.result())
                    advance()
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise


# ----------------------------------------------------------------------------- entry point

def make_corpus(teacher: str = "kokoro", voice: str | Sequence[str] = "ef_dora",
                sentences: str | os.PathLike = DEFAULT_SENTENCES, out: str | os.PathLike = "teacher_corpus",
                workers: int = 1, limit: int | None = None, speed: float = 1.0, language: str = "es",
                sample_rate: int = 22050, progress: bool = True) -> list[dict]:
    """Speak `sentences` with each voice into `out` (sub-folder per voice when several).

    Returns one stats dict per voice. workers: processes (0 = all cores), one onnxruntime
    thread each."""
    from rich.console import Console

    reason = unavailable_reason(teacher)
    if reason:
        raise CorpusError(reason)
    if not 0.25 <= float(speed) <= 4.0:
        raise CorpusError(f"--speed {speed} out of range 0.25..4")
    voices = parse_voices(voice)

    for v in voices:
        if not (VOICES_DIR / f"{v}.bin").is_file():
            known = sorted(p.stem for p in VOICES_DIR.glob("*.bin"))
            raise CorpusError(f"unknown {teacher} voice {v!r}: available {', '.join(known)}")
    workers = int(workers) if workers and int(workers) > 0 else (os.cpu_count() or 1)
    out = Path(out)
    console = Console(stderr=True, quiet=not progress)
    results = []
    for v in voices:
        plan = plan_sentences(sentences, v, limit)
        if not plan:
            raise CorpusError(f"{sentences}: no sentences")
        settings = {"teacher": teacher, "voice": v, "speed": float(speed), "language": language,
                    "sample_rate": int(sample_rate), "corpus_version": CORPUS_VERSION,
                    "sentences": str(sentences)}
        folder = out / v if len(voices) > 1 else out
        stats = _run_voice(folder, settings, plan, workers, console, progress)
        results.append(stats)
        if stats["interrupted"]:
            break
    _summary(console, results, out)
    if any(r["interrupted"] for r in results):
        raise KeyboardInterrupt
    return results


def _summary(console, results: list[dict], out: Path) -> None:
    from rich.table import Table

    table = Table(title=f"tts make-corpus → {out}")
    for col in ("voice", "sentences", "done before", "made now", "failed", "corpus audio", "teacher RTF",
                "wall"):
        table.add_column(col, justify="left" if col == "voice" else "right")
    for r in results:
        rtf = f"{r['model_s'] / r['audio_s']:.3f}" if r["audio_s"] else "-"
        table.add_row(r["voice"], str(r["sentences"]), str(r["skipped"]), str(r["made"]), str(r["failed"]),
                      _hms(r["corpus_audio_s"]), rtf, _hms(r["wall_s"]))
    console.print(table)
    if any(r["interrupted"] for r in results):
        console.print("[yellow]interrupted[/]: run the same command again to go on where it stopped")


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
