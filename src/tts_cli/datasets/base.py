"""What every dataset reader returns: entries to process and problems to report.

Readers only parse the layout. They do not open audio: a missing audio file or an empty text
is returned as an ordinary Entry and rejected later by `tts preprocess`, with its reason.
Lines they cannot parse at all become `Problem`s (written to WORK/rejected.jsonl).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tts_cli.errors import DatasetError

DEFAULT_SPEAKER = "default"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64")


@dataclass
class Entry:
    id: str  # file-system safe, unique within a dataset
    audio: Path
    text: str
    speaker: str = DEFAULT_SPEAKER
    source: str = ""  # human pointer, e.g. "metadata.csv:12" or "anna/x.txt"
    normalized_hint: str | None = None  # a normalised transcript shipped with the data (LJSpeech col 3)


@dataclass
class Problem:
    id: str  # the entry id, or the start of the unparsable line
    source: str
    reason: str

    def as_dict(self) -> dict:
        """The WORK/rejected.jsonl row (`dict(problem)` gives the same)."""
        return {"id": self.id, "source": self.source, "reason": self.reason}

    def keys(self):  # mapping protocol, so dict(problem) works
        return ("id", "source", "reason")

    def __getitem__(self, key: str) -> str:
        return self.as_dict()[key]


class EntryList(list):
    """A list of Entry, plus `.problems` (list[Problem]) and `.format` (the layout read)."""

    def __init__(self, entries=(), problems=None, format: str = ""):
        super().__init__(entries)
        self.problems: list[Problem] = list(problems or [])
        self.format = format

    @property
    def entries(self) -> list[Entry]:
        return list(self)

    @property
    def speakers(self) -> list[str]:
        return sorted({e.speaker for e in self})


@dataclass
class ReadResult:
    entries: list[Entry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


_UNSAFE = re.compile(r"[^\w.\-]+")


def safe_id(raw: str) -> str:
    """An id usable as a file name (WORK/wavs/<id>.wav): path separators and odd characters -> '_'."""
    return _UNSAFE.sub("_", raw.strip()).lstrip(".")


def strip_audio_ext(name: str) -> str:
    low = name.lower()
    for ext in AUDIO_EXTENSIONS:
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def shorten(line: str, limit: int = 80) -> str:
    line = line.strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"


def read_text_file(path: Path) -> str:
    """A metadata/transcript file as text (UTF-8, BOM stripped) or a DatasetError."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DatasetError(f"{path}: not UTF-8 text (bad byte at line {line})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror or e})") from None


def pipe_lines(path: Path, marker: str,
               display_root: Path | None = None) -> tuple[Path, Iterator[tuple[str, str, list[str]]]]:
    """A `|`-separated metadata file (`path` itself, or `path/marker`): (root folder, an iterator of
    (source pointer "file:line", line, columns) over its non-blank lines)."""
    meta = path if path.is_file() else path / marker
    root = meta.parent
    shown = rel(meta, display_root or root)
    lines = read_text_file(meta).splitlines()  # read now: an unreadable file fails before any entry
    rows = ((f"{shown}:{n}", line, line.split("|")) for n, line in enumerate(lines, start=1) if line.strip())
    return root, rows


def rel(path: Path, root: Path) -> str:
    """`path` relative to the dataset root, for source pointers."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
