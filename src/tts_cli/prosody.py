"""Prosody helpers shared by `tts extract-pitch` and `tts train` (torch + numpy only, no librosa).

- `average_per_symbol`: frame values (pitch, energy) -> one value per input symbol, from durations.
- `normalize_pitch` / `denormalize_pitch`: z-scores on voiced frames; 0 (unvoiced) stays 0.
"""
from __future__ import annotations

import numpy as np
import torch


def average_per_symbol(values: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """Mean of the non-zero frames of each symbol; 0 for symbols with none or zero duration.

    values: [B, T] or [B, C, T] frame values (0 = unvoiced / padding).
    durations: [B, N] integer frames per symbol (padding symbols have duration 0).
    Returns [B, N] (or [B, C, N]) in the dtype of `values`.

    Vectorised with cumulative sums (no loop over symbols): the sum and the count of
    non-zero frames of symbol n are differences of prefix sums at its start and end frames.
    Durations that run past T (padding mismatch) are clipped at T.
    """
    squeeze = values.dim() == 2
    v = values.unsqueeze(1) if squeeze else values  # [B, C, T]
    B, C, T = v.shape
    if durations.shape[0] != B:
        raise ValueError(f"batch size mismatch: values {tuple(values.shape)}, durations {tuple(durations.shape)}")
    # float64 prefix sums keep long utterances exact (MPS lacks float64: fall back to float32)
    acc = torch.float32 if v.device.type == "mps" else torch.float64
    d = durations.to(device=v.device).long().clamp_min(0)
    ends = torch.cumsum(d, dim=1).clamp_max(T)  # [B, N]
    starts = torch.nn.functional.pad(ends[:, :-1], (1, 0))

    nonzero = (v != 0).to(acc)
    zero = torch.zeros(B, C, 1, dtype=acc, device=v.device)
    csum = torch.cat([zero, torch.cumsum(v.to(acc), dim=2)], dim=2)  # [B, C, T+1]
    ccnt = torch.cat([zero, torch.cumsum(nonzero, dim=2)], dim=2)

    e = ends.unsqueeze(1).expand(B, C, -1)
    s = starts.unsqueeze(1).expand(B, C, -1)
    sums = csum.gather(2, e) - csum.gather(2, s)
    counts = ccnt.gather(2, e) - ccnt.gather(2, s)
    out = torch.where(counts > 0, sums / counts.clamp_min(1), torch.zeros_like(sums)).to(values.dtype)
    return out.squeeze(1) if squeeze else out


def average_per_symbol_np(values: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """numpy convenience wrapper: [T] + [N] -> [N], or batched [B, T] + [B, N] -> [B, N]."""
    v = torch.as_tensor(np.asarray(values, dtype=np.float32))
    d = torch.as_tensor(np.asarray(durations, dtype=np.int64))
    single = v.dim() == 1
    if single:
        v, d = v[None], d[None]
    out = average_per_symbol(v, d).numpy()
    return out[0] if single else out


def normalize_pitch(pitch, mean, std):
    """(pitch - mean) / std on voiced (non-zero) values; zeros stay 0.

    Works on numpy arrays and torch tensors; `mean`/`std` may be scalars or per-item arrays
    that broadcast against `pitch` (e.g. per-speaker stats of shape [B, 1])."""
    if isinstance(pitch, torch.Tensor):
        mean = torch.as_tensor(mean, dtype=pitch.dtype, device=pitch.device)
        std = torch.as_tensor(std, dtype=pitch.dtype, device=pitch.device)
        return torch.where(pitch != 0, (pitch - mean) / std, torch.zeros_like(pitch))
    pitch = np.asarray(pitch, dtype=np.float32)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    return np.where(pitch != 0, (pitch - mean) / std, 0.0).astype(np.float32)


def denormalize_pitch(z, mean, std, voiced=None):
    """Inverse of `normalize_pitch` (Hz); where `voiced` is given and false, the result is 0."""
    hz = z * std + mean
    if voiced is None:
        return hz
    if isinstance(hz, torch.Tensor):
        return torch.where(voiced, hz, torch.zeros_like(hz))
    return np.where(voiced, hz, 0.0)


__all__ = ["average_per_symbol", "average_per_symbol_np", "normalize_pitch", "denormalize_pitch"]
