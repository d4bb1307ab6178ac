"""A plain folder: audio files, each with a same-named `.txt` or `.lab` transcript, searched recursively."""
from __future__ import annotations

from pathlib import Path

from tts_cli.datasets.base import AUDIO_EXTENSIONS, Entry, Problem, ReadResult, rel, safe_id
from tts_cli.errors import DatasetError

TRANSCRIPT_SUFFIXES = (".txt", ".lab", ".normalized.txt")  # the last one: LibriTTS naming


def find_audio(root: Path) -> list[Path]:
    """Audio files under `root`, skipping hidden files and folders, in a stable order."""
    found = []
    for p in root.rglob("*"):
        parts = p.relative_to(root).parts
        if any(part.startswith(".") for part in parts):
            continue
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file():
            found.append(p)
    return sorted(found)


def transcript_for(audio: Path) -> Path | None:
    stem = audio.with_suffix("")
    for suffix in TRANSCRIPT_SUFFIXES:
        cand = stem.with_name(stem.name + suffix)
        if cand.is_file():
            return cand
    return None


def read_folder(path: str | Path, display_root: Path | None = None) -> ReadResult:
    """Entries of a folder of audio + transcript files.

    The id is the audio path relative to the folder, without extension, '/' -> '_'
    (so `ch1/001.wav` and `ch2/001.wav` stay distinct). Audio with no transcript is a problem.
    """
    root = Path(path)
    shown_root = display_root or root
    out = ReadResult()
    for audio in find_audio(root):
        rel_stem = audio.relative_to(root).with_suffix("").as_posix()
        utt_id = safe_id(rel_stem)
        transcript = transcript_for(audio)
        if transcript is None:
            out.problems.append(Problem(utt_id, rel(audio, shown_root), "no transcript: expected a same-named .txt or .lab file"))
            continue
        try:
            text = " ".join(transcript.read_text(encoding="utf-8-sig").split())
        except (UnicodeDecodeError, OSError) as e:
            reason = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else (e.strerror or str(e))
            out.problems.append(Problem(utt_id, rel(transcript, shown_root), f"unreadable transcript: {reason}"))
            continue
        out.entries.append(Entry(id=utt_id, audio=audio, text=text, source=rel(transcript, shown_root)))
    if not out.entries and not out.problems:
        raise DatasetError(f"{root}: no audio files found")
    return out
