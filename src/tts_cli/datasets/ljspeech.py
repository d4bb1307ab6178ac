"""LJSpeech layout: `metadata.csv` with `id|text[|normalized[|speaker]]`, audio in `wavs/<id>.wav`."""
from __future__ import annotations

from pathlib import Path

from tts_cli.datasets.base import (
    DEFAULT_SPEAKER,
    Entry,
    Problem,
    ReadResult,
    pipe_lines,
    safe_id,
    shorten,
    strip_audio_ext,
)

MARKER = "metadata.csv"


def read_ljspeech(path: str | Path, display_root: Path | None = None) -> ReadResult:
    """Entries of an LJSpeech-style folder (or its metadata.csv given directly).

    Columns: id, raw text, optional normalised text (kept as `normalized_hint`), optional speaker.
    Ids may carry `.wav`. Unparsable lines become problems.
    """
    root, rows = pipe_lines(Path(path), MARKER, display_root)
    out = ReadResult()
    for source, line, cols in rows:
        if len(cols) < 2:
            out.problems.append(Problem(shorten(line), source, "malformed line: expected id|text[|normalized]"))
            continue
        if len(cols) > 4:
            out.problems.append(Problem(shorten(cols[0]), source, f"malformed line: {len(cols)} '|' fields, at most 4 expected"))
            continue
        raw_id = strip_audio_ext(cols[0].strip())
        utt_id = safe_id(raw_id)
        if not utt_id:
            out.problems.append(Problem(shorten(line), source, "malformed line: empty id"))
            continue
        normalized = cols[2].strip() if len(cols) > 2 else ""
        speaker = cols[3].strip() if len(cols) > 3 else ""
        out.entries.append(Entry(
            id=utt_id,
            audio=root / "wavs" / f"{raw_id}.wav",
            text=cols[1].strip(),
            speaker=speaker or DEFAULT_SPEAKER,
            source=source,
            normalized_hint=normalized or None,
        ))
    return out
