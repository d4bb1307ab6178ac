"""Long text -> FastPitch inputs: sentences, then clauses, then spaces, with the pause after each.

Text is cut into sentences, and sentences longer than `max_chars` at clause punctuation
(, ; : —), then at spaces; each chunk remembers the pause that follows it (`SENTENCE_PAUSE_S`
after a sentence, `CLAUSE_PAUSE_S` inside one). `[[ ... ]]` blocks (inline IPA) are never cut
and come back as ("phonemes", ...) segments.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SENTENCE_PAUSE_S = 0.25


CLAUSE_PAUSE_S = 0.1


MAX_CHUNK_CHARS = 200


@dataclass
class Chunk:
    """One FastPitch input: text and inline-phoneme pieces, and the pause that follows it."""

    segments: list[tuple[str, str]]  # (kind "text" | "phonemes", content)
    pause_s: float = SENTENCE_PAUSE_S

    @property
    def text(self) -> str:
        return " ".join(f"[[{c}]]" if k == "phonemes" else c for k, c in self.segments)


_PHONEME_BLOCK = re.compile(r"\[\[(.*?)\]\]", re.S)


# Titles that end in a period but never end a sentence.
_NO_SPLIT_ABBR = {"sr", "sra", "srta", "dr", "dra", "d", "dña", "ud", "uds", "prof", "lic", "ing", "av", "avda",
                  "núm", "pág", "mr", "mrs", "ms", "st", "vs", "etc."}


_SENTENCE_END = re.compile(r"([.!?…]+[\"'»)\]]*)(\s+)")


_CLAUSE_END = re.compile(r"([,;:—]+)(\s+)")


def pause_samples(chunk: Chunk, speed: float, sample_rate: int) -> int:
    """Silence after a chunk, in samples: pauses follow the speed."""
    return int(round(chunk.pause_s / float(speed) * sample_rate))


def _placeholder(i: int) -> str:
    return f"\uE000{i}\uE001"  # private-use characters: cannot occur in real text


def _sentences(text: str) -> list[str]:
    out, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        before = text[start:m.start()].split()
        last = before[-1].lower().strip("¿¡\"'«(") if before else ""
        if m.group(1) == "." and (last in _NO_SPLIT_ABBR or (len(last) == 1 and last.isalpha())):
            continue
        out.append(text[start:m.end(1)].strip())
        start = m.end()
    out.append(text[start:].strip())
    return [s for s in out if s]


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """Clause punctuation first (merging short clauses back together), then spaces."""
    if len(sentence) <= max_chars:
        return [sentence]
    pieces, start = [], 0
    for m in _CLAUSE_END.finditer(sentence):
        pieces.append(sentence[start:m.end(1)].strip())
        start = m.end()
    pieces.append(sentence[start:].strip())
    merged: list[str] = []
    for p in filter(None, pieces):
        if merged and len(merged[-1]) + 1 + len(p) <= max_chars:
            merged[-1] += " " + p
        else:
            merged.append(p)
    out = []
    for p in merged:
        while len(p) > max_chars:
            cut = p.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            out.append(p[:cut].strip())
            p = p[cut:].strip()
        if p:
            out.append(p)
    return out


def split_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[Chunk]:
    """Sentences (then clauses) of `text`, inline `[[phonemes]]` kept whole, with their pauses."""
    blocks: list[str] = []

    def hide(m: re.Match) -> str:
        blocks.append(m.group(1).strip())
        return " " + _placeholder(len(blocks) - 1) + " "

    hidden = _PHONEME_BLOCK.sub(hide, text.replace("\r", " "))
    chunks: list[Chunk] = []
    for paragraph in re.split(r"\n\s*\n|\n", hidden):
        for sentence in _sentences(re.sub(r"\s+", " ", paragraph).strip()):
            parts = _split_long(sentence, max_chars)
            for i, part in enumerate(parts):
                pause = SENTENCE_PAUSE_S if i == len(parts) - 1 else CLAUSE_PAUSE_S
                chunks.append(Chunk(_segments(part, blocks), pause))
    return [c for c in chunks if c.segments]


def _segments(part: str, blocks: list[str]) -> list[tuple[str, str]]:
    segs = []
    for piece in re.split(r"(\uE000\d+\uE001)", part):
        m = re.fullmatch(r"\uE000(\d+)\uE001", piece)
        if m:
            if blocks[int(m.group(1))]:
                segs.append(("phonemes", blocks[int(m.group(1))]))
        elif piece.strip():
            segs.append(("text", piece.strip()))
    return segs
