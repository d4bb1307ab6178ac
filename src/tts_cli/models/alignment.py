"""The FastPitch 1.1 / RAD-TTS alignment module ("One TTS Alignment To Rule Them All").

One copy, used twice: `tts align` trains it standalone (`Aligner` = symbol embedding +
`AlignmentEncoder`), and FastPitch imports `AlignmentEncoder` for joint alignment.

Pieces:
- `AlignmentEncoder`: conv key encoder (symbols) and query encoder (mel frames); attention
  logits are -temperature x squared L2 distance, log-softmax over symbols plus the log of a
  beta-binomial prior. Parameter names match NVIDIA's `attention.*` state-dict keys.
- `beta_binomial_prior` / `prior_batch`: the attention prior that pulls attention to the diagonal.
- `ForwardSumLoss` (CTC over the attention, with a blank column) and `BinarizationLoss`.
- `mas` / `mas_batch` / `binarize`: monotonic alignment search (numba, imported lazily, with a
  numpy fallback), and `durations_from_hard`.

Padded symbols are masked with a large *finite* negative number: with -inf, CTC backward on
CPU gives NaN gradients as soon as the text lengths in a batch differ.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Large negative but finite: exp() underflows to exactly 0, gradients stay finite.
MASK_VALUE = -1e4
TEMPERATURE = 0.0005
BLANK_LOGPROB = -1.0


class ConvNorm(nn.Module):
    """Conv1d with 'same' padding and Xavier init; wrapped so the keys read `...N.conv.weight`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, w_init_gain: str = "linear"):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        nn.init.xavier_uniform_(self.conv.weight, gain=nn.init.calculate_gain(w_init_gain))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class AlignmentEncoder(nn.Module):
    """Soft alignment between mel frames (queries) and symbol embeddings (keys).

    NVIDIA's `ConvAttention` with its default "3xconv" query encoder; under FastPitch's
    `attention.` prefix the parameter names and shapes equal NVIDIA's, so its weights load as is.
    """

    def __init__(self, n_mel_channels: int = 80, n_text_channels: int = 384, n_att_channels: int = 80,
                 temperature: float = TEMPERATURE):
        super().__init__()
        self.temperature = temperature
        self.key_proj = nn.Sequential(
            ConvNorm(n_text_channels, n_text_channels * 2, 3, w_init_gain="relu"),
            nn.ReLU(),
            ConvNorm(n_text_channels * 2, n_att_channels, 1),
        )
        self.query_proj = nn.Sequential(
            ConvNorm(n_mel_channels, n_mel_channels * 2, 3, w_init_gain="relu"),
            nn.ReLU(),
            ConvNorm(n_mel_channels * 2, n_mel_channels, 1),
            nn.ReLU(),
            ConvNorm(n_mel_channels, n_att_channels, 1),
        )
        # Unused in the forward pass; kept only so NVIDIA's state dict loads with strict=True.
        self.attn_proj = nn.Conv2d(n_att_channels, 1, kernel_size=1)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, text_mask: torch.Tensor | None = None,
                attn_prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """queries: mel [B, n_mel, T_mel]; keys: symbol embeddings [B, n_text, T_text];
        text_mask: bool [B, T_text], True at real symbols; attn_prior: [B, T_mel, T_text].

        Returns (soft attention [B, 1, T_mel, T_text], attn_logprob [B, 1, T_mel, T_text]).
        Rows of the soft attention sum to 1 over the real symbols; padded mel frames are not
        masked (the losses and MAS take the mel lengths).
        """
        k = self.key_proj(keys)  # [B, C, T_text]
        q = self.query_proj(queries)  # [B, C, T_mel]
        # Squared distance via |q|^2 - 2 q.k + |k|^2: avoids a [B, C, T_mel, T_text] temporary.
        dist = (q.pow(2).sum(1).unsqueeze(2) - 2 * torch.bmm(q.transpose(1, 2), k)
                + k.pow(2).sum(1).unsqueeze(1)).clamp_min(0.0)
        logits = -self.temperature * dist  # [B, T_mel, T_text]
        if text_mask is not None:
            logits = logits.masked_fill(~text_mask[:, None, :], MASK_VALUE)
        attn_logprob = F.log_softmax(logits, dim=2)
        if attn_prior is not None:
            attn_logprob = attn_logprob + torch.log(attn_prior + 1e-8)
            if text_mask is not None:  # the prior may be 0 at padding; keep the mask value there
                attn_logprob = attn_logprob.masked_fill(~text_mask[:, None, :], MASK_VALUE)
        attn = torch.softmax(attn_logprob, dim=2)
        return attn.unsqueeze(1), attn_logprob.unsqueeze(1)


class Aligner(nn.Module):
    """Standalone aligner for `tts align`: symbol embedding + `AlignmentEncoder`.

    The embedding is named like FastPitch's `encoder.word_emb`, so a FastPitch checkpoint's
    `encoder.word_emb.weight` + `attention.*` map onto `embedding.weight` + `attention.*`.
    """

    def __init__(self, n_symbols: int, n_mel_channels: int = 80, n_text_channels: int = 384,
                 n_att_channels: int = 80, temperature: float = TEMPERATURE, padding_idx: int = 0):
        super().__init__()
        self.embedding = nn.Embedding(n_symbols, n_text_channels, padding_idx=padding_idx)
        self.attention = AlignmentEncoder(n_mel_channels, n_text_channels, n_att_channels, temperature)

    def forward(self, text: torch.Tensor, text_lens: torch.Tensor, mel: torch.Tensor,
                attn_prior: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """text: int [B, T_text]; text_lens: [B]; mel: [B, n_mel, T_mel] -> (soft, logprob)."""
        keys = self.embedding(text).transpose(1, 2)
        return self.attention(mel, keys, lengths_to_mask(text_lens, text.shape[1]), attn_prior)


def lengths_to_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """bool [B, max_len], True at positions < length."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


# --------------------------------------------------------------------------- prior

def beta_binomial_prior(n_text: int, n_mel: int, scaling: float = 1.0) -> torch.Tensor:
    """Attention prior [n_mel, n_text]: row i (mel frame i+1 of n_mel) is the beta-binomial pmf
    over symbols 0..n_text-1 with a = scaling*(i+1), b = scaling*(n_mel-i); each row sums to 1.

    The pmf is written with lgamma (no scipy), in float64 for accuracy.
    """
    if n_text <= 0 or n_mel <= 0:
        return torch.zeros(max(n_mel, 0), max(n_text, 0))
    n = n_text - 1
    k = torch.arange(n_text, dtype=torch.float64)[None, :]
    i = torch.arange(1, n_mel + 1, dtype=torch.float64)[:, None]
    a, b = scaling * i, scaling * (n_mel + 1 - i)

    def betaln(x, y):
        return torch.lgamma(x) + torch.lgamma(y) - torch.lgamma(x + y)

    log_pmf = (math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
               + betaln(k + a, n - k + b) - betaln(a, b))
    pmf = torch.exp(log_pmf)
    return (pmf / pmf.sum(1, keepdim=True)).float()


@functools.lru_cache(maxsize=256)
def _cached_prior(n_text: int, n_mel: int, scaling: float) -> torch.Tensor:
    return beta_binomial_prior(n_text, n_mel, scaling)


def prior_batch(text_lens, mel_lens, scaling: float = 1.0, max_text: int | None = None,
                max_mel: int | None = None) -> torch.Tensor:
    """Zero-padded priors [B, T_mel, T_text] for a batch (each size computed once and cached)."""
    text_lens = [int(x) for x in text_lens]
    mel_lens = [int(x) for x in mel_lens]
    max_text = max(text_lens) if max_text is None else max_text
    max_mel = max(mel_lens) if max_mel is None else max_mel
    out = torch.zeros(len(text_lens), max_mel, max_text)
    for b, (t, m) in enumerate(zip(text_lens, mel_lens)):
        out[b, :m, :t] = _cached_prior(t, m, float(scaling))
    return out


# --------------------------------------------------------------------------- losses

class ForwardSumLoss(nn.Module):
    """Forward-sum (CTC) loss: the likelihood of all monotonic alignments of the mel frames to the
    symbol sequence, with a blank column (log-prob `blank_logprob`) prepended as the CTC blank.

    `skippable` (bool [B, T_text]) drops silent symbols (stress marks, word spaces) from the
    CTC targets: they keep their attention columns (and stay in the key context) but are never
    required to own a frame, so attention learns to leave them empty.
    """

    def __init__(self, blank_logprob: float = BLANK_LOGPROB):
        super().__init__()
        self.blank_logprob = blank_logprob
        self.ctc = nn.CTCLoss(blank=0, reduction="mean", zero_infinity=True)

    def forward(self, attn_logprob: torch.Tensor, text_lens: torch.Tensor, mel_lens: torch.Tensor,
                skippable: torch.Tensor | None = None) -> torch.Tensor:
        """attn_logprob [B, 1, T_mel, T_text] -> scalar (mean over the batch of loss / target length)."""
        logp = F.pad(attn_logprob.squeeze(1), (1, 0), value=self.blank_logprob)  # [B, T_mel, 1+T_text]
        positions = torch.arange(logp.shape[2], device=logp.device)
        logp = logp.masked_fill(positions[None, None, :] > text_lens[:, None, None], MASK_VALUE)
        logp = F.log_softmax(logp, dim=2)
        target_lens = text_lens
        if skippable is not None:
            keep = lengths_to_mask(text_lens, logp.shape[2] - 1) & ~skippable.to(torch.bool)
            target_lens = keep.sum(1)
            # blank first, then the kept columns in order; the tail repeats the blank (ignored by CTC)
            order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True) + 1
            columns = torch.cat([torch.zeros_like(order[:, :1]), order], dim=1)
            columns = torch.where(positions[None, :] <= target_lens[:, None], columns, torch.zeros_like(columns))
            logp = torch.gather(logp, 2, columns[:, None, :].expand(-1, logp.shape[1], -1))
        targets = positions[1:][None, :].expand(len(text_lens), -1)
        return self.ctc(logp.transpose(0, 1), targets, mel_lens, target_lens)


class BinarizationLoss(nn.Module):
    """Pulls the soft alignment towards the hard (MAS) one: -mean log soft prob on the hard path."""

    def forward(self, hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        on_path = hard == 1
        return -torch.log(soft[on_path].clamp_min(1e-12)).sum() / hard.sum().clamp_min(1)


# --------------------------------------------------------------------------- MAS

def _load_kernels():
    """The numba kernels (compiled once, cached on disk), or None when numba is missing."""
    try:
        from . import mas_numba
    except ImportError:  # e.g. a training box without numba: fall back to numpy
        return None
    return mas_numba


def _mas_reference(log_attn: np.ndarray, skippable: np.ndarray | None = None) -> np.ndarray | None:
    """The DP of `mas_numba._viterbi` in numpy (vectorised over symbols): the fallback without
    numba, ~50x slower. Returns None when no path exists."""
    t_mel, t_text = log_attn.shape
    skip = np.zeros(t_text, bool) if skippable is None else np.asarray(skippable, bool)
    hard = np.zeros((t_mel, t_text), dtype=np.float32)
    neg = -np.inf
    first_real = int(np.argmin(skip)) if not skip.all() else t_text - 1
    score = np.where(np.arange(t_text) <= first_real, log_attn[0], neg)
    back = np.empty((t_mel, t_text), dtype=np.int64)
    chain = np.flatnonzero(skip[:-1]) + 1  # symbols that may be reached over a skippable one
    for i in range(1, t_mel):
        reach = np.concatenate(([neg], score[:-1]))
        came = np.arange(-1, t_text - 1)
        for j in chain:
            if reach[j - 1] > reach[j]:
                reach[j], came[j] = reach[j - 1], came[j - 1]
        advance = (reach >= score) & (came >= 0)
        back[i] = np.where(advance, came, np.arange(t_text))
        score = np.where(advance, reach, score) + log_attn[i]
    j, best = t_text - 1, score[t_text - 1]
    for k in range(t_text - 2, -1, -1):
        if not skip[k + 1]:
            break
        if score[k] > best:
            j, best = k, score[k]
    if best == neg:
        return None
    for i in range(t_mel - 1, -1, -1):
        hard[i, j] = 1
        if i > 0:
            j = back[i, j]
    return hard


def _spread(t_mel: int, t_text: int) -> np.ndarray:
    """Degenerate case (fewer frames than symbols): spread the frames evenly over the symbols."""
    if t_mel == 1:
        return np.zeros(1, dtype=np.int64)
    return np.round(np.arange(t_mel) * (t_text - 1) / (t_mel - 1)).astype(np.int64)


def mas(log_attn: np.ndarray, skippable: np.ndarray | None = None) -> np.ndarray:
    """Monotonic alignment search on one [T_mel, T_text] score matrix (log-probs).

    Returns hard [T_mel, T_text] float32 maximising the summed score: each frame on exactly one
    symbol, the symbol index steps by 0 or +1 per frame, from symbol 0 at frame 0 to the last
    symbol at the last frame. `skippable` (bool [T_text]) marks silent symbols (stress marks,
    word spaces) the path may also jump over, giving them 0 frames. When no path exists (fewer
    frames than symbols that need one) the frames are spread evenly instead (some symbols then
    get 0 frames, which `tts align` reports).
    """
    log_attn = np.ascontiguousarray(log_attn, dtype=np.float64)
    t_mel, t_text = log_attn.shape
    skip = np.zeros(t_text, np.bool_) if skippable is None else np.ascontiguousarray(skippable, dtype=np.bool_)
    hard = np.zeros((t_mel, t_text), dtype=np.float32)
    if t_mel == 0 or t_text == 0:
        return hard
    kernels = _load_kernels()
    if kernels is None:
        found = _mas_reference(log_attn, skip)
        ok = found is not None
        hard = found if ok else hard
    else:
        ok = kernels.mas_single(log_attn, skip, hard)
    if not ok:
        hard[:] = 0
        hard[np.arange(t_mel), _spread(t_mel, t_text)] = 1
    return hard


def mas_batch(log_attn, text_lens, mel_lens, skippable=None) -> np.ndarray:
    """MAS over a padded batch [B, T_mel, T_text] (numpy or torch; skippable bool [B, T_text]);
    returns float32 numpy of the same shape, zeros outside each (mel_len, text_len) block."""
    if isinstance(log_attn, torch.Tensor):
        log_attn = log_attn.detach().to("cpu", torch.float32).numpy()
    if isinstance(skippable, torch.Tensor):
        skippable = skippable.cpu().numpy()
    log_attn = np.ascontiguousarray(log_attn, dtype=np.float32)
    n_b, _, t_text = log_attn.shape
    text_lens = np.asarray([int(x) for x in text_lens], dtype=np.int64)
    mel_lens = np.asarray([int(x) for x in mel_lens], dtype=np.int64)
    skip = (np.zeros((n_b, t_text), np.bool_) if skippable is None
            else np.ascontiguousarray(skippable, dtype=np.bool_))
    hard = np.zeros(log_attn.shape, dtype=np.float32)
    kernels = _load_kernels()
    if kernels is not None:
        ok = np.zeros(n_b, dtype=np.bool_)
        kernels.mas_batch(log_attn, text_lens, mel_lens, skip, hard, ok)
        redo = np.flatnonzero(~ok)
    else:
        redo = range(n_b)
    for b in redo:  # fallback path, and degenerate utterances
        t, m = text_lens[b], mel_lens[b]
        hard[b] = 0
        hard[b, :m, :t] = mas(log_attn[b, :m, :t], skip[b, :t])
    return hard


def binarize(attn_logprob: torch.Tensor, text_lens: torch.Tensor, mel_lens: torch.Tensor,
             skippable: torch.Tensor | None = None) -> torch.Tensor:
    """Hard alignment for a training batch: [B, 1, T_mel, T_text] log-probs (or log soft attention)
    -> hard attention of the same shape, on the input's device. Any per-frame constant offset
    (e.g. log(soft) vs logprob) gives the same path."""
    hard = mas_batch(attn_logprob.squeeze(1), text_lens, mel_lens, skippable)
    return torch.from_numpy(hard).to(attn_logprob.device).unsqueeze(1)


def durations_from_hard(hard) -> np.ndarray:
    """Frames per symbol (int32), summing to the number of frames of a [T_mel, T_text] path."""
    if isinstance(hard, torch.Tensor):
        hard = hard.detach().cpu().numpy()
    return np.asarray(hard).sum(0).round().astype(np.int32)


__all__ = [
    "AlignmentEncoder", "Aligner", "ConvNorm", "lengths_to_mask", "beta_binomial_prior", "prior_batch",
    "ForwardSumLoss", "BinarizationLoss", "mas", "mas_batch", "binarize", "durations_from_hard",
    "MASK_VALUE", "TEMPERATURE",
]
