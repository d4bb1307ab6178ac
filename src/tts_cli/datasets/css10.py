"""CSS10 layout: `transcript.txt` with `path|original|normalized|duration` (path relative to the root)."""
from __future__ import annotations

from pathlib import Path

from tts_cli.datasets.base import Entry, Problem, ReadResult, pipe_lines, safe_id, shorten, strip_audio_ext

MARKER = "transcript.txt"


def read_css10(path: str | Path, display_root: Path | None = None) -> ReadResult:
    """Entries of a CSS10 folder (or its transcript.txt given directly).

    The id is the audio file's name without extension (CSS10 names are unique across books).
    Text is the original column; the normalised one is kept as `normalized_hint`.
    """
    root, rows = pipe_lines(Path(path), MARKER, display_root)
    out = ReadResult()
    for source, line, cols in rows:
        if len(cols) < 2 or not cols[0].strip():
            out.problems.append(Problem(shorten(line), source, "malformed line: expected path|original|normalized|duration"))
            continue
        audio_rel = cols[0].strip()
        utt_id = safe_id(strip_audio_ext(Path(audio_rel).name))
        if not utt_id:
            out.problems.append(Problem(shorten(line), source, "malformed line: no file name in the path column"))
            continue
        normalized = cols[2].strip() if len(cols) > 2 else ""
        out.entries.append(Entry(
            id=utt_id, audio=root / audio_rel, text=cols[1].strip(), source=source,
            normalized_hint=normalized or None,
        ))
    return out
