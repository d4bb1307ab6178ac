"""Does the init voice time its symbols the way the workspace's durations do?

A base voice of the right language still has to relearn its timing when its training durations
followed another convention than `tts align`'s. The aligner gives stress marks and most word
spaces no frames; the es_base of 2026-11-27 learned from the Kokoro teacher's token durations,
which give them ~5 frames each. Spoken with the aligner's durations of a real Spanish speaker
(teacher-forced), it went from 0.6 % to 45 % CER (12 clips, Whisper base), and a few hundred
fine-tuning steps on those durations broke it (70 %); en_base, fine-tuned on `tts align`
durations, keeps 5 % either way. `tts align --from-teacher` now writes the aligner's convention
and es_base was retimed to it; the check stays for any base trained on other durations.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# share of the init voice's predicted frames that fall on symbols the workspace gives none:
# en_base 0.7-1.3 %, es_base 1.3 % (retimed; before: 18-21 %) (real Spanish and English clips, 40 each)
TIMING_GAP_LIMIT = 0.10


def timing_gap(init_ckpt: dict, ws, rows: Sequence[dict], limit: int = 40) -> float | None:
    """The share of frames the init checkpoint predicts for symbols that WORK's durations leave
    empty, over up to `limit` train clips it can read (None: no clip to compare)."""
    from tts_cli.checkpoints.format import CheckpointHeader
    from tts_cli.evaluation.scoring import DurationModel

    known = set(CheckpointHeader.of(init_ckpt).symbols or [])
    usable = [r for r in rows if r.get("split") == "train" and known.issuperset(r["symbols"])
              and ws.duration_path(r["id"]).exists()][: max(1, int(limit))]
    if not usable:
        return None
    base = DurationModel.from_checkpoint(init_ckpt, "cpu")
    on_empty = total = 0.0
    for r in usable:
        ours = np.load(ws.duration_path(r["id"]))
        theirs = base.durations(r["symbols"], None).astype(np.float64)  # the base's first speaker
        on_empty += float(theirs[ours == 0].sum())
        total += float(theirs.sum())
    return on_empty / total if total > 0 else None


__all__ = ["TIMING_GAP_LIMIT", "timing_gap"]
