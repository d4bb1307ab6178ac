"""Dataset readers and `--format auto` detection.

Formats: ljspeech (metadata.csv), css10 (transcript.txt), manifest (NeMo JSONL), folder
(audio + same-named .txt/.lab). Detection at a folder, first match wins:
  metadata.csv -> ljspeech; transcript.txt -> css10; a JSONL manifest -> manifest;
  two or more sub-folders that are datasets themselves (and no audio directly in the folder)
  -> one speaker per sub-folder; audio files anywhere below -> folder (single speaker).
Multi-speaker by sub-folders: speaker = sub-folder name (unless the data names one itself,
via an LJSpeech 4th column or a manifest `speaker` field), and every id is prefixed
`<sub-folder>_` (unless it already starts with it), always, not only on collision, so ids
stay stable when speakers are added.
Single-speaker data gets speaker "default". `--format folder` forces one recursive,
single-speaker folder. Duplicate ids (after the first) are reported as problems.
"""
from __future__ import annotations

from pathlib import Path

from tts_cli.datasets.base import AUDIO_EXTENSIONS, DEFAULT_SPEAKER, Entry, EntryList, Problem, ReadResult, safe_id
from tts_cli.errors import DatasetError

from .css10 import MARKER as CSS10_MARKER
from .css10 import read_css10
from .folder import find_audio, read_folder
from .ljspeech import MARKER as LJSPEECH_MARKER
from .ljspeech import read_ljspeech
from .manifest import find_manifests, is_manifest, read_manifest

READERS = {"ljspeech": read_ljspeech, "css10": read_css10, "manifest": read_manifest, "folder": read_folder}
FORMATS = ("auto", *READERS)


def read_dataset(path: str | Path, format: str = "auto") -> EntryList:
    """All entries of the dataset at `path` (a folder, or a metadata.csv / transcript.txt /
    manifest file). Returns an EntryList (a list of Entry) with `.problems` and `.format`.
    Raises DatasetError when `path` is not a readable dataset or yields nothing at all."""
    try:
        return _read_dataset(path, format)
    except OSError as e:  # e.g. a folder we may not list
        raise DatasetError(f"{e.filename or path}: cannot read ({e.strerror or e})") from None


def _read_dataset(path: str | Path, format: str) -> EntryList:
    if format not in FORMATS:
        raise DatasetError(f"unknown dataset format {format!r} (known: {', '.join(FORMATS)})")
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    display_root = path.parent if path.is_file() else path

    fmt = format if format != "auto" else detect_format(path)
    if fmt is None:
        speakers = speaker_folders(path) if path.is_dir() else []
        if not speakers:
            raise DatasetError(
                f"{path}: not a dataset (no metadata.csv, transcript.txt, JSONL manifest, "
                f"or audio files with .txt/.lab transcripts)"
            )
        return _read_speakers(speakers, display_root, "auto")
    if path.is_dir() and fmt != "folder" and not _has_own_marker(path, fmt):
        # e.g. --format ljspeech on DATA/<speaker>/metadata.csv
        speakers = [(d, fmt) for d in _subfolders(path) if _has_own_marker(d, fmt)]
        if speakers:
            return _read_speakers(speakers, display_root, fmt)
        raise DatasetError(f"{path}: not a {fmt} dataset ({_marker_hint(fmt)} not found)")
    result = _read(path, fmt, display_root)
    return _finish(result, fmt, path)


def detect_format(path: Path) -> str | None:
    """The layout of one dataset (not the sub-folder multi-speaker case), or None."""
    if path.is_file():
        if path.name == LJSPEECH_MARKER:
            return "ljspeech"
        if path.name == CSS10_MARKER:
            return "css10"
        if path.suffix.lower() in (".jsonl", ".json"):
            return "manifest"
        return None
    if (path / LJSPEECH_MARKER).is_file():
        return "ljspeech"
    if (path / CSS10_MARKER).is_file():
        return "css10"
    if find_manifests(path):
        return "manifest"
    if speaker_folders(path):
        return None  # multi-speaker by sub-folders
    if find_audio(path):
        return "folder"
    return None


def speaker_folders(path: Path) -> list[tuple[Path, str]]:
    """(sub-folder, format) pairs when `path` holds one dataset per sub-folder, else []."""
    if any(p.suffix.lower() in AUDIO_EXTENSIONS for p in path.iterdir() if p.is_file()):
        return []
    found = []
    for sub in _subfolders(path):
        fmt = _detect_single(sub)
        if fmt:
            found.append((sub, fmt))
    return found if len(found) >= 2 else []


def _detect_single(path: Path) -> str | None:
    for fmt in ("ljspeech", "css10", "manifest"):
        if _has_own_marker(path, fmt):
            return fmt
    return "folder" if find_audio(path) else None


def _has_own_marker(path: Path, fmt: str) -> bool:
    if fmt == "ljspeech":
        return (path / LJSPEECH_MARKER).is_file()
    if fmt == "css10":
        return (path / CSS10_MARKER).is_file()
    if fmt == "manifest":
        return path.is_file() and is_manifest(path) or path.is_dir() and bool(find_manifests(path))
    return bool(find_audio(path))


def _marker_hint(fmt: str) -> str:
    return {"ljspeech": LJSPEECH_MARKER, "css10": CSS10_MARKER, "manifest": "a *.jsonl manifest"}.get(fmt, "audio files")


def _subfolders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read(path: Path, fmt: str, display_root: Path) -> ReadResult:
    if fmt == "folder" and path.is_file():
        raise DatasetError(f"{path}: --format folder needs a folder")
    return READERS[fmt](path, display_root)


def _read_speakers(speakers: list[tuple[Path, str]], display_root: Path, fmt_label: str) -> EntryList:
    merged = ReadResult()
    for sub, fmt in speakers:
        name = sub.name
        prefix = safe_id(name)
        part = _read(sub, fmt, display_root)
        for e in part.entries:
            if not e.id.startswith(f"{prefix}_"):  # ids like anna_0001 already name their speaker
                e.id = f"{prefix}_{e.id}"
            if e.speaker == DEFAULT_SPEAKER:
                e.speaker = name
        merged.entries += part.entries
        merged.problems += part.problems
    formats = sorted({fmt for _, fmt in speakers})
    return _finish(merged, f"{'+'.join(formats)} (one speaker per sub-folder)", display_root)


def _finish(result: ReadResult, fmt: str, path: Path) -> EntryList:
    """Drop duplicate ids (reported) and refuse a dataset with nothing in it."""
    seen: dict[str, str] = {}
    entries, problems = [], list(result.problems)
    for e in result.entries:
        if e.id in seen:
            problems.append(Problem(e.id, e.source, f"duplicate id (first at {seen[e.id]})"))
            continue
        seen[e.id] = e.source
        entries.append(e)
    if not entries and not problems:
        raise DatasetError(f"{path}: the dataset lists no utterances")
    return EntryList(entries, problems, fmt)


__all__ = [
    "Entry", "EntryList", "Problem", "DatasetError", "read_dataset", "detect_format", "FORMATS",
    "read_ljspeech", "read_css10", "read_folder", "read_manifest", "DEFAULT_SPEAKER",
]
