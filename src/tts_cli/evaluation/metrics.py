"""Objective voice-quality metrics (pure functions; numpy only at import time).

Intelligibility (text against a transcript):
- `normalize_for_scoring(text, language)`: our text normaliser (digits, abbreviations and
  symbols spelled out in the language), then lower-case, every punctuation mark (¿ ¡ « » …
  included) replaced by a space, whitespace collapsed. Both the reference text and the
  recogniser's output go through it, so "¿Tienes 25?" and "tienes veinticinco" match.
- `fold_accents(text)`: drops diacritics (á→a, ü→u, ç→c) but keeps ñ, which is a different
  sound in Spanish, not an accent mark; used for the accent-folded CER, which forgives
  orthographic accent slips of the recogniser (esta/está) that no listener hears.
- `cer` / `wer`: Levenshtein distance (substitutions, deletions, insertions all cost 1) over
  characters (spaces included) / words, divided by the reference length. An empty reference
  scores 0 against an empty hypothesis and 1 against anything else.

Signal metrics against the reference recording:
- `mel_cepstrum(log_mel)`: the cepstrum of the log-mel amplitude envelope. With x_n the
  natural-log mel amplitude of band n (N bands, our `mel_spectrogram`),
      c_k = (1/N) Σ_n x_n cos(π k (n + ½) / N),   k = 1..order (c0, the gain, is excluded),
  i.e. the coefficients of ln|H| = c0 + 2 Σ_k c_k cos(k ω̃) on the mel-warped axis ω̃ — the
  same convention as SPTK mel-cepstra, so the numbers are on the usual MCD scale.
- `mcd_dtw`: per frame pair MCD = (10 / ln 10) · sqrt(2 Σ_{k=1..order} (c_k − c'_k)²) dB;
  frames are paired by dynamic time warping (steps (1,0), (0,1), (1,1), cost = the frame MCD),
  and the score is the mean frame MCD over the warping path. All frames of both clips are used
  (the reference is silence-trimmed by preprocessing). order = 24 by default.
- `f0_rmse_cents`: F0 error in cents, 1200·log2(f_syn / f_ref), RMS over frame pairs where both
  tracks are voiced (F0 > 0); frames are paired by a DTW path when one is given (the one
  `mcd_dtw` found), else by linear time-stretching of the synthetic track onto the reference's
  frames. Voicing error = share of paired frames whose voiced/unvoiced decisions differ. RMSE is
  dominated by octave-type tracker errors, so the gross pitch error rate (GPE: share of
  both-voiced pairs off by more than 20 %) and the RMSE of the remaining pairs come with it.
- `duration_stats`: total duration difference/ratio and speaking-rate difference.
- `duration_mae_frames`: mean absolute per-symbol duration error in frames.
"""
from __future__ import annotations

import math
import re
import unicodedata
from typing import Sequence

import numpy as np

from tts_cli.audio import mel_spectrogram
from tts_cli.config import AudioConfig
from tts_cli.text.normalize import normalize_text

MCD_ORDER = 24
GROSS_PITCH_ERROR = 0.2  # relative F0 deviation counted as a gross pitch error (the usual GPE threshold)
_MCD_SCALE = 10.0 / math.log(10.0)
_KEEP_MARKS = {("n", "\u0303"), ("N", "\u0303")}  # ñ / Ñ survive accent folding


# ----------------------------------------------------------------------------- text

def normalize_for_scoring(text: str, language: str = "es") -> str:
    """Text as it is compared: spelled-out numbers, lower case, no punctuation, single spaces."""
    try:
        text = normalize_text(text, language)
    except Exception:  # the scorer must still work on text the normaliser cannot handle
        text = unicodedata.normalize("NFC", text)
    text = unicodedata.normalize("NFC", text).lower()
    # every punctuation mark and symbol (¿¡«»—…'"$%) becomes a word break
    text = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


def fold_accents(text: str) -> str:
    """Remove diacritics except the tilde of ñ: 'Qué pingüino ñandú' -> 'Que pinguino ñandu'."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.category(ch) == "Mn" and not (out and (out[-1], ch) in _KEEP_MARKS):
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (unit costs) between two sequences."""
    if len(ref) < len(hyp):  # keep the row short
        ref, hyp = hyp, ref
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def _rate(errors: int, ref_len: int, hyp_len: int) -> float:
    if ref_len == 0:
        return 0.0 if hyp_len == 0 else 1.0
    return errors / ref_len


def cer(ref: str, hyp: str, language: str | None = "es", fold: bool = False) -> float:
    """Character error rate of `hyp` against `ref` after `normalize_for_scoring`
    (language=None: the strings are compared as given). fold=True: accent-folded CER."""
    if language is not None:
        ref, hyp = normalize_for_scoring(ref, language), normalize_for_scoring(hyp, language)
    if fold:
        ref, hyp = fold_accents(ref), fold_accents(hyp)
    return _rate(edit_distance(ref, hyp), len(ref), len(hyp))


def wer(ref: str, hyp: str, language: str | None = "es") -> float:
    """Word error rate of `hyp` against `ref` after `normalize_for_scoring`."""
    if language is not None:
        ref, hyp = normalize_for_scoring(ref, language), normalize_for_scoring(hyp, language)
    r, h = ref.split(), hyp.split()
    return _rate(edit_distance(r, h), len(r), len(h))


def text_scores(ref: str, hyp: str, language: str = "es") -> dict:
    """CER, accent-folded CER and WER plus the normalised strings that were compared."""
    r, h = normalize_for_scoring(ref, language), normalize_for_scoring(hyp, language)
    return {"cer": cer(r, h, None), "cer_folded": cer(r, h, None, fold=True), "wer": wer(r, h, None),
            "ref_normalized": r, "hyp_normalized": h}


# ----------------------------------------------------------------------------- mel cepstral distortion

def mel_cepstrum(log_mel: np.ndarray, order: int = MCD_ORDER) -> np.ndarray:
    """[n_mels, T] natural-log mel amplitudes -> [T, order] cepstra c_1..c_order (definition above)."""
    x = np.asarray(log_mel, dtype=np.float64)
    n = x.shape[0]
    if not 0 < order < n:
        raise ValueError(f"cepstral order {order} must be between 1 and n_mels - 1 ({n - 1})")
    k = np.arange(1, order + 1)[:, None]
    basis = np.cos(np.pi * k * (np.arange(n)[None, :] + 0.5) / n) / n  # [order, n_mels]
    return (basis @ x).T


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-cost monotonic path through an [n, m] cost matrix with steps (1,0), (0,1), (1,1).

    Returns (path [L, 2] of (i, j) index pairs from (0, 0) to (n-1, m-1), total cost).
    Filled anti-diagonal by anti-diagonal, so numpy does the inner loop.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    if n == 0 or m == 0:
        raise ValueError("DTW needs two non-empty sequences")
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    move = np.zeros((n + 1, m + 1), dtype=np.int8)  # 0 diagonal, 1 from above (i-1), 2 from left (j-1)
    for d in range(2, n + m + 1):
        i = np.arange(max(1, d - m), min(n, d - 1) + 1)
        j = d - i
        options = np.stack([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])
        best = np.argmin(options, axis=0)
        acc[i, j] = cost[i - 1, j - 1] + options[best, np.arange(len(i))]
        move[i, j] = best
    path = []
    i, j = n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = move[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return np.asarray(path[::-1], dtype=np.int64), float(acc[n, m])


def mcd_dtw_mels(ref_mel: np.ndarray, syn_mel: np.ndarray, order: int = MCD_ORDER) -> tuple[float, np.ndarray]:
    """(MCD in dB averaged over the DTW path, path [L, 2] of (ref frame, syn frame)) for two log-mels."""
    c_ref, c_syn = mel_cepstrum(ref_mel, order), mel_cepstrum(syn_mel, order)
    # squared distances without the [n, m, order] difference tensor
    sq = (c_ref ** 2).sum(1)[:, None] + (c_syn ** 2).sum(1)[None, :] - 2.0 * c_ref @ c_syn.T
    cost = _MCD_SCALE * np.sqrt(2.0 * np.maximum(sq, 0.0))
    path, _ = dtw_path(cost)
    return float(cost[path[:, 0], path[:, 1]].mean()), path


def mcd_dtw(ref_wav: np.ndarray, syn_wav: np.ndarray, sr: int, order: int = MCD_ORDER,
            audio_cfg=None) -> float:
    """Mel-cepstral distortion (dB) between two waveforms, frames paired by DTW.

    The log-mels are our own `tts_cli.audio.mel_spectrogram` (audio_cfg, default: the project's
    AudioConfig at `sr`)."""
    return mcd_dtw_mels(log_mel(ref_wav, sr, audio_cfg), log_mel(syn_wav, sr, audio_cfg), order)[0]


def log_mel(wav: np.ndarray, sr: int, audio_cfg=None) -> np.ndarray:
    """Our log-mel [n_mels, T] as numpy (torch imported here, not at module level)."""
    cfg = audio_cfg or AudioConfig(sample_rate=int(sr))
    return mel_spectrogram(np.asarray(wav, dtype=np.float32), cfg).numpy()


# ----------------------------------------------------------------------------- pitch

def _stretch(track: np.ndarray, n: int) -> np.ndarray:
    """Resample a frame track to n frames by nearest frame in linear time (voicing preserved)."""
    if len(track) == n:
        return track
    if len(track) == 0:
        return np.zeros(n, track.dtype)
    idx = np.round(np.linspace(0, len(track) - 1, n)).astype(np.int64)
    return track[idx]


def f0_rmse_cents(ref_f0: np.ndarray, syn_f0: np.ndarray, path: np.ndarray | None = None) -> dict:
    """F0 error of `syn_f0` against `ref_f0` (Hz per frame, 0 = unvoiced).

    Frame pairs: `path` ([L, 2] of (ref index, syn index), e.g. from `mcd_dtw_mels`) or else the
    synthetic track stretched linearly onto the reference frames. Returns
    rmse_cents (NaN when no pair is voiced in both), mean_offset_cents (syn − ref, signed),
    gross_error_rate (share of both-voiced pairs with |syn/ref − 1| > 20 %), rmse_cents_fine (RMSE
    over the other both-voiced pairs), voicing_error (share of pairs with different voicing),
    both_voiced (count), pairs (count).
    """
    ref = np.asarray(ref_f0, dtype=np.float64).reshape(-1)
    syn = np.asarray(syn_f0, dtype=np.float64).reshape(-1)
    if path is not None:
        path = np.asarray(path, dtype=np.int64)
        a, b = ref[path[:, 0]], syn[path[:, 1]]
    else:
        a, b = ref, _stretch(syn, len(ref))
    va, vb = a > 0, b > 0
    both = va & vb
    pairs = len(a)
    nan = float("nan")
    out = {"rmse_cents": nan, "mean_offset_cents": nan, "gross_error_rate": nan, "rmse_cents_fine": nan,
           "voicing_error": float(np.mean(va != vb)) if pairs else nan,
           "both_voiced": int(both.sum()), "pairs": int(pairs)}
    if both.any():
        cents = 1200.0 * np.log2(b[both] / a[both])
        out["rmse_cents"] = float(np.sqrt(np.mean(cents * cents)))
        out["mean_offset_cents"] = float(np.mean(cents))
        gross = np.abs(b[both] / a[both] - 1.0) > GROSS_PITCH_ERROR
        out["gross_error_rate"] = float(np.mean(gross))
        if not gross.all():
            out["rmse_cents_fine"] = float(np.sqrt(np.mean(cents[~gross] ** 2)))
    return out


# ----------------------------------------------------------------------------- durations

def f0_level_range(f0: np.ndarray, low: float = 5.0, high: float = 95.0) -> dict:
    """A voice's pitch level and range from one F0 track (Hz per frame, 0 = unvoiced):
    median_hz over voiced frames and range_st, the low..high percentile span in semitones
    (percentiles, not min/max, so a single octave error does not define the range)."""
    f = np.asarray(f0, dtype=np.float64).reshape(-1)
    f = f[np.isfinite(f) & (f > 0)]
    if f.size < 2:
        return {"median_hz": float("nan"), "range_st": float("nan")}
    lo, hi = np.percentile(f, [low, high])
    return {"median_hz": float(np.median(f)), "range_st": float(12.0 * np.log2(hi / lo))}


def duration_stats(ref_seconds: float, syn_seconds: float, n_units: int | None = None) -> dict:
    """Total duration and speaking-rate comparison of two renderings of the same text.

    duration_diff_s = syn − ref; duration_ratio = syn / ref; speaking_rate_diff_pct =
    (rate_syn / rate_ref − 1)·100 = (ref / syn − 1)·100 (positive = the model speaks faster).
    With `n_units` (e.g. symbols or characters of the text) the rates themselves are added as
    units per second.
    """
    ref_s, syn_s = float(ref_seconds), float(syn_seconds)
    out = {"ref_seconds": ref_s, "syn_seconds": syn_s, "duration_diff_s": syn_s - ref_s,
           "duration_ratio": syn_s / ref_s if ref_s > 0 else float("nan"),
           "speaking_rate_diff_pct": (ref_s / syn_s - 1.0) * 100.0 if ref_s > 0 and syn_s > 0 else float("nan")}
    if n_units is not None:
        out["ref_rate"] = n_units / ref_s if ref_s > 0 else float("nan")
        out["syn_rate"] = n_units / syn_s if syn_s > 0 else float("nan")
    return out


def duration_mae_frames(pred: Sequence[float], ref: Sequence[float]) -> float:
    """Mean absolute per-symbol duration error in frames (same symbols, same order)."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    if p.shape != r.shape:
        raise ValueError(f"duration arrays differ in length: {len(p)} predicted, {len(r)} reference symbols")
    if p.size == 0:
        return float("nan")
    return float(np.mean(np.abs(p - r)))


# ----------------------------------------------------------------------------- aggregation

def char_weighted(rates: Sequence[float], ref_chars: Sequence[int]) -> float | None:
    """One CER over many clips: every clip's errors (rate x its normalised reference length) over
    all their characters, as corpus CERs are reported; a misheard one-word clip weighs what its few
    characters weigh, not as much as a whole sentence. None without characters."""
    total = sum(ref_chars)
    return sum(r * n for r, n in zip(rates, ref_chars)) / total if total else None


def summarize(values: Sequence[float]) -> dict:
    """mean / median / count over the finite values (NaN when none)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "n": int(v.size)}


__all__ = [
    "MCD_ORDER", "normalize_for_scoring", "fold_accents", "edit_distance", "cer", "wer", "text_scores",
    "mel_cepstrum", "dtw_path", "mcd_dtw_mels", "mcd_dtw", "log_mel", "f0_rmse_cents",
    "f0_level_range", "duration_stats", "duration_mae_frames", "char_weighted", "summarize",
]
