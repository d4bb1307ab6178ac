"""Accuracy of `tts align` against a ground truth of phoneme start times (the sample corpus's truth.json).

Both sides are reduced to phoneme sequences: stress marks are merged into the phoneme they
precede (espeak writes `ˈe` as one phoneme; our symbols are `ˈ`, `e`), and spaces,
punctuation and pauses are dropped. The two sequences are matched with difflib on their
stress-free IPA; only pairs of equal phonemes count. A phoneme's predicted start is the start
of its first symbol:

    start_s = trim_start_s + (frames before the symbol - frame_offset) * hop / sample_rate

frame_offset 0 (default) is the plain `cumsum * hop / sr` reading; on the sample corpus its mean
signed error is about -3 ms, so no half-frame correction is applied.
"""
from __future__ import annotations

import difflib
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tts_cli.errors import WorkspaceError
from tts_cli.workspace import Workspace

STRESS = "ˈˌ"
# Modifiers that espeak and our symbol table may place differently; irrelevant to timing.
IGNORED_MARKS = "ːˑ\u0361\u035c\u0303\u032f\u0329"


def normalise(symbol: str) -> str:
    """Comparable form of an IPA symbol: NFC, no stress, no length/tie/nasal/syllabic marks."""
    s = unicodedata.normalize("NFD", symbol)
    s = "".join(c for c in s if c not in STRESS and c not in IGNORED_MARKS)
    return unicodedata.normalize("NFC", s).strip()


def _is_phone(s: str) -> bool:
    return bool(s) and any(unicodedata.category(c)[0] == "L" for c in s)


def predicted_phones(symbols: list[str], durations: np.ndarray) -> list[tuple[str, int]]:
    """(normalised phoneme, first frame) per phonetic symbol; a stress mark's frames start its phoneme."""
    starts = np.concatenate([[0], np.cumsum(durations)[:-1]]).astype(int)
    out, pending = [], None
    for sym, start in zip(symbols, starts):
        if sym and all(c in STRESS for c in sym):
            pending = start if pending is None else pending
            continue
        norm = normalise(sym)
        if _is_phone(norm):
            out.append((norm, int(start if pending is None else pending)))
        pending = None
    return out


def truth_phones(entry: dict) -> list[tuple[str, float]]:
    """(normalised phoneme, start s) from a truth.json entry; pauses and empty symbols dropped."""
    names = entry.get("ipa") or entry["phonemes"]
    out = []
    for name, start in zip(names, entry["starts_s"]):
        norm = normalise(name or "")
        if _is_phone(norm):
            out.append((norm, float(start)))
    return out


@dataclass
class AccuracyResult:
    utterances: int
    truth_phones: int
    matched: int
    within: float  # share of matched boundaries within the tolerance
    median_ms: float
    mean_ms: float
    p90_ms: float
    tolerance_ms: float
    errors_ms: np.ndarray
    per_utterance: dict
    within_inner: float  # the same share without each utterance's first phoneme (its start is the
    # speech onset after the trimmed lead-in silence, which no duration can express)

    def lines(self) -> list[str]:
        return [
            f"utterances compared: {self.utterances}",
            f"phonemes matched: {self.matched} of {self.truth_phones} in the truth "
            f"({self.matched / max(1, self.truth_phones):.1%})",
            f"median |error|: {self.median_ms:.1f} ms, mean {self.mean_ms:.1f} ms, 90th percentile {self.p90_ms:.1f} ms",
            f"boundaries within {self.tolerance_ms:g} ms without utterance-initial onsets: {self.within_inner:.1%}",
            f"boundaries within {self.tolerance_ms:g} ms: {self.within:.1%}",
        ]


def evaluate(work: str | Path, truth: str | Path | dict, tolerance_ms: float = 20.0, frame_offset: float = 0.0,
             hop_length: int | None = None, sample_rate: int | None = None) -> AccuracyResult:
    """Compare WORK/durations with the truth's phoneme starts (see module docstring)."""
    ws = Workspace(work)
    rows = ws.load_manifest()
    cfg = ws.load_config(missing_ok=True)
    audio = cfg.get("audio", {})
    hop = hop_length or int(audio.get("hop_length", 256))
    sr = sample_rate or int(audio.get("sample_rate", 22050))
    if not isinstance(truth, dict):
        truth = json.loads(Path(truth).read_text(encoding="utf-8"))

    errors, initial, per_utt, n_truth, n_utts = [], [], {}, 0, 0
    for row in rows:
        uid = row["id"]
        entry = truth.get(uid) or truth.get(row.get("source_id", ""))
        path = ws.duration_path(uid)
        if entry is None or not path.exists():
            continue
        durations = np.load(path)
        pred = predicted_phones(row["symbols"], durations)
        true = truth_phones(entry)
        n_truth += len(true)
        n_utts += 1
        offset = float(row.get("trim_start_s", 0.0))
        sm = difflib.SequenceMatcher(a=[p for p, _ in pred], b=[t for t, _ in true], autojunk=False)
        utt_err = []
        for block in sm.get_matching_blocks():
            for k in range(block.size):
                _, frame = pred[block.a + k]
                _, t_start = true[block.b + k]
                p_start = offset + max(0.0, frame - frame_offset) * hop / sr
                utt_err.append(1000.0 * abs(p_start - t_start))
                initial.append(block.b + k == 0)
        errors += utt_err
        if utt_err:
            per_utt[uid] = float(np.mean(np.asarray(utt_err) <= tolerance_ms))
    err = np.asarray(errors, dtype=float)
    if err.size == 0:
        raise WorkspaceError(f"{ws.root}: no utterance could be compared (no durations, or ids not in the truth)")
    return AccuracyResult(
        utterances=n_utts, truth_phones=n_truth, matched=int(err.size),
        within=float(np.mean(err <= tolerance_ms)),
        within_inner=float(np.mean(err[~np.asarray(initial)] <= tolerance_ms)), median_ms=float(np.median(err)), mean_ms=float(err.mean()),
        p90_ms=float(np.percentile(err, 90)), tolerance_ms=tolerance_ms, errors_ms=err, per_utterance=per_utt,
    )
