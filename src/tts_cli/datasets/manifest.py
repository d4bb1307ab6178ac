"""NeMo-style JSONL manifests: one object per line with `audio_filepath`, `text`, optional `speaker`."""
from __future__ import annotations

import json
from pathlib import Path

from tts_cli.datasets.base import (
    DEFAULT_SPEAKER,
    Entry,
    Problem,
    ReadResult,
    read_text_file,
    rel,
    safe_id,
    shorten,
    strip_audio_ext,
)
from tts_cli.errors import DatasetError

MANIFEST_SUFFIXES = (".jsonl", ".json")
AUDIO_KEYS = ("audio_filepath", "audio")


def is_manifest(path: Path) -> bool:
    """A .jsonl/.json file whose first non-empty line is an object naming an audio file."""
    if path.suffix.lower() not in MANIFEST_SUFFIXES or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    return isinstance(obj, dict) and any(k in obj for k in AUDIO_KEYS)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return False


def find_manifests(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and is_manifest(p))


def read_manifest(path: str | Path, display_root: Path | None = None) -> ReadResult:
    """Entries of one manifest file, or of every manifest in a folder (sorted by name).

    Relative audio paths are relative to the manifest's folder. The id is the `id` field if
    present, else the audio file name without extension. Speaker values (NeMo uses ints) become str.
    """
    path = Path(path)
    files = [path] if path.is_file() else find_manifests(path)
    if not files:
        raise DatasetError(f"{path}: no JSONL manifest with 'audio_filepath' found")
    out = ReadResult()
    for manifest in files:
        _read_one(manifest, display_root or manifest.parent, out)
    return out


def _read_one(manifest: Path, display_root: Path, out: ReadResult) -> None:
    shown = rel(manifest, display_root)
    for lineno, line in enumerate(read_text_file(manifest).splitlines(), start=1):
        if not line.strip():
            continue
        source = f"{shown}:{lineno}"
        try:
            obj = json.loads(line)
        except ValueError:
            out.problems.append(Problem(shorten(line), source, "malformed line: not valid JSON"))
            continue
        audio_value = next((obj[k] for k in AUDIO_KEYS if isinstance(obj, dict) and k in obj), None)
        if not isinstance(audio_value, str) or not audio_value.strip():
            out.problems.append(Problem(shorten(line), source, "malformed line: no 'audio_filepath'"))
            continue
        audio = Path(audio_value.strip()).expanduser()
        if not audio.is_absolute():
            audio = manifest.parent / audio
        utt_id = safe_id(str(obj.get("id") or strip_audio_ext(audio.name)))
        if not utt_id:
            out.problems.append(Problem(shorten(line), source, "malformed line: empty id"))
            continue
        text = obj.get("text")
        speaker = obj.get("speaker")
        normalized = obj.get("normalized_text")
        out.entries.append(Entry(
            id=utt_id, audio=audio,
            text=str(text).strip() if text is not None else "",
            speaker=str(speaker).strip() if speaker not in (None, "") else DEFAULT_SPEAKER,
            source=source,
            normalized_hint=str(normalized).strip() if normalized else None,
        ))
