"""`-i FILE` for `tts synthesize`: one utterance a line, `id|text` or plain text. Lines with more
`|` fields (LJSpeech's `id|text|normalized text`, a held-out list's `id|text|recording.wav`) speak
the text field; the rest is not read aloud."""
from __future__ import annotations

import os
import re
from pathlib import Path

from tts_cli.errors import SynthesisError


def read_input_file(path: str | os.PathLike, with_lines: bool = False) -> list[tuple]:
    """(id, text) per non-empty line: `id|text[|more fields]` or plain text (ids utt_0001, utt_0002,
    ...); with_lines=True: (id, text, line number) so messages can point at the line."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SynthesisError(f"{p}: cannot read ({e})") from None
    out, seen = [], set()
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("|")]
        if len(fields) > 1 and re.fullmatch(r"[\w.\-]+", fields[0]):
            # the text field; an empty one falls back to the next (e.g. only a normalized text)
            uid, text = fields[0], next((f for f in fields[1:] if f), "")
        else:
            uid, text = f"utt_{n:04d}", line
        if uid in seen:
            uid = f"{uid}_{n}"
        seen.add(uid)
        out.append((uid, text, n) if with_lines else (uid, text))
    return out
