"""Does the init voice time its symbols the way the workspace's durations do?

A base voice of the right language still has to relearn its timing when its training durations
followed another convention than `tts align`'s. The aligner gives stress marks and most word
spaces no frames; es_base learned from the Kokoro teacher's durations, which give them ~5 frames
each. Spoken with the aligner's durations of a real Spanish speaker (teacher-forced), es_base
goes from 0.6 % to 45 % CER (12 clips, Whisper base), and a few hundred fine-tuning steps on
those durations break it (70 %); en_base, fine-tuned on `tts align` durations, keeps 5 % either way.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# share of the init voice's predicted frames that fall on symbols the workspace gives none:
# en_base 0.7-1.3 %, es_base 18-21 % (real Spanish and English clips, 40 each)
TIMING_GAP_LIMIT = 0.10


def timing_gap(init_ckpt: dict, ws, rows: Sequence[dict], limit: int = 40) -> float | None:
    """The share of frames the init checkpoint predicts for symbols that WORK's durations leave
    empty, over up to `limit` train clips it can read (None: no clip to compare)."""
    import torch

    from tts_cli.checkpoints.format import CheckpointHeader
    from tts_cli.checkpoints.load import build_fastpitch

    header = CheckpointHeader.of(init_ckpt)
    if not header.symbols:
        return None
    index = {s: i for i, s in enumerate(header.symbols)}
    usable = [r for r in rows if r.get("split") == "train" and all(s in index for s in r["symbols"])
              and ws.duration_path(r["id"]).exists()][: max(1, int(limit))]
    if not usable:
        return None
    model = build_fastpitch(init_ckpt).eval()
    speaker = torch.zeros(1, dtype=torch.long) if len(header.speakers) > 1 else None
    on_empty = total = 0.0
    for r in usable:
        ours = np.load(ws.duration_path(r["id"]))
        with torch.no_grad():
            out = model.infer(torch.tensor([[index[s] for s in r["symbols"]]]), speakers=speaker)
        theirs = out["durations"][0, : len(ours)].float().numpy()
        on_empty += float(theirs[ours == 0].sum())
        total += float(theirs.sum())
    return on_empty / total if total > 0 else None


__all__ = ["TIMING_GAP_LIMIT", "timing_gap"]
