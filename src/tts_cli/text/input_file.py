"""`-i FILE` for `tts synthesize`: one utterance a line, `id|text` or plain text. Lines with more
`|` fields (LJSpeech's `id|text|normalized text`, a held-out list's `id|text|recording.wav`) speak
the text field; the rest is not read aloud. A `.csv` / `.tsv` file without `|` is read as comma
(or semicolon, as spreadsheets save it in much of Europe and Latin America) / tab separated
`id,text[,...]` (quoted fields as the csv module reads them) when every row starts with an id and,
without a header row, no space follows the delimiter (a sentence writes "Sí, claro"); otherwise
its lines are plain text. A header row (`id,text`, `name|sentence`, `id;texto`, ...) is skipped."""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from tts_cli.errors import SynthesisError

_ID = re.compile(r"[\w.\-]+")
# a first row naming its columns instead of holding an utterance
_ID_HEADERS = {"id", "uid", "utt", "utt_id", "utterance", "utterance_id", "name", "key", "file", "filename",
               "audio", "path", "wav", "nombre", "archivo", "clave"}
_TEXT_HEADERS = {"text", "sentence", "transcript", "transcription", "prompt", "utterance", "normalized_text",
                 "texto", "frase", "oración", "oracion", "transcripción", "transcripcion"}


def _read_lines(p: Path) -> list[str]:
    try:
        return p.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SynthesisError(f"{p}: cannot read ({e})") from None


def _is_header(fields: list[str]) -> bool:
    return len(fields) > 1 and fields[0].lower() in _ID_HEADERS and fields[1].lower() in _TEXT_HEADERS


def _delimited_rows(p: Path, lines: list[str]) -> list[tuple[int, list[str]]] | None:
    """(line number, fields) of a comma/semicolon/tab separated file, or None when it is not one:
    the suffix is not .csv/.tsv, a line uses `|`, or with no delimiter does every row start with an
    id followed by its text (directly, unless a header row names the columns)."""
    delimiters = {".csv": ",;", ".tsv": "\t"}.get(p.suffix.lower())
    if not delimiters:
        return None
    kept = [(n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not kept or any("|" in line for _, line in kept):
        return None
    for delimiter in delimiters:
        raw = list(zip((n for n, _ in kept), csv.reader([line for _, line in kept], delimiter=delimiter)))
        header = bool(raw) and _is_header([f.strip() for f in raw[0][1]])
        raw = raw[1:] if header else raw
        # a sentence puts a space after its comma ("Sí, claro"); a CSV row without a header must not
        if raw and all(len(f) > 1 and _ID.fullmatch(f[0].strip()) and (header or not f[1][:1].isspace())
                       for _, f in raw):
            return [(n, [f.strip() for f in fields]) for n, fields in raw]
    return None


def read_input_file(path: str | os.PathLike, with_lines: bool = False) -> list[tuple]:
    """(id, text) per non-empty line: `id|text[|more fields]`, `id,text` in a .csv, or plain text
    (ids utt_0001, utt_0002, ...); with_lines=True: (id, text, line number) so messages can point
    at the line."""
    p = Path(path)
    lines = _read_lines(p)
    rows = _delimited_rows(p, lines)
    if rows is None:
        rows = []
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [f.strip() for f in line.split("|")]
            if len(fields) > 1 and _ID.fullmatch(fields[0]):
                rows.append((n, fields))
            else:
                rows.append((n, [line]))
        if rows and _is_header(rows[0][1]):
            rows = rows[1:]
    out, seen = [], set()
    for n, fields in rows:
        if len(fields) > 1:
            # the text field; an empty one falls back to the next (e.g. only a normalized text)
            uid, text = fields[0], next((f for f in fields[1:] if f), "")
        else:
            uid, text = f"utt_{n:04d}", fields[0]
        if uid in seen:
            uid = f"{uid}_{n}"
        seen.add(uid)
        out.append((uid, text, n) if with_lines else (uid, text))
    return out
