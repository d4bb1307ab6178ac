"""`-i FILE` for `tts synthesize`: one utterance a line, `id|text` or plain text."""
from __future__ import annotations

import os
import re
from pathlib import Path

from tts_cli.errors import SynthesisError


def read_input_file(path: str | os.PathLike, with_lines: bool = False) -> list[tuple]:
    """(id, text) per non-empty line: `id|text` or plain text (ids utt_0001, utt_0002, ...);
    with_lines=True: (id, text, line number) so messages can point at the line."""
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
        uid, sep, text = line.partition("|")
        if sep and re.fullmatch(r"[\w.\-]+", uid.strip()):
            uid, text = uid.strip(), text.strip()
        else:
            uid, text = f"utt_{n:04d}", line
        if uid in seen:
            uid = f"{uid}_{n}"
        seen.add(uid)
        out.append((uid, text, n) if with_lines else (uid, text))
    return out
