"""What the learned aligner reads: manifest rows as utterances of symbol ids, their mel frames
(WORK/mels or the sharper-window query features, cached between batches), padded batches and
the deterministic batch order that makes training resumable."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tts_cli.audio import load_audio, mel_spectrogram
from tts_cli.config import audio_config
from tts_cli.errors import AudioError
from tts_cli.models.alignment import prior_batch
from tts_cli.workspace import Workspace


@dataclass
class Utterance:
    id: str
    ids: np.ndarray  # int64 symbol ids
    n_frames: int
    symbols: list
    silent: np.ndarray  # bool per symbol: may get 0 frames
    positions: np.ndarray | None = None  # index of each aligned symbol in the manifest's list (None: all)
    n_symbols: int = 0  # length of the manifest's symbol list (durations are written at that length)

    def full_durations(self, dur: np.ndarray) -> np.ndarray:
        """Durations of the aligned symbols -> durations of every manifest symbol (0 for left-out ones)."""
        if self.positions is None:
            return dur
        full = np.zeros(self.n_symbols, dtype=dur.dtype)
        full[self.positions] = dur
        return full


def is_stress_mark(symbol: str) -> bool:
    return bool(symbol) and all(c in "ˈˌ'" for c in symbol)


def is_silent_symbol(symbol: str) -> bool:
    """Symbols with no sound of their own: stress marks and word spaces (any language)."""
    return bool(symbol) and all(c in "ˈˌ'" or c.isspace() for c in symbol)


def load_items(ws: Workspace, rows: list[dict], symbols: list[str], console,
                zero_width_stress: bool = True) -> tuple[list[Utterance], list[dict]]:
    """Manifest rows -> utterances with symbol ids (stress marks left out if `zero_width_stress`);
    bad rows are reported and skipped."""
    index = {s: i for i, s in enumerate(symbols)}
    items, skipped = [], []
    for row in rows:
        uid = row.get("id", "?")
        syms = row.get("symbols") or []
        missing = sorted({s for s in syms if s not in index})
        reason = None
        keep = np.array([not (zero_width_stress and is_stress_mark(s)) for s in syms], dtype=bool)
        if not syms or not keep.any():
            reason = "no symbols"
        elif missing:
            reason = f"symbols not in symbols.json: {' '.join(missing)}"
        elif not ws.mel_path(uid).exists():
            reason = f"missing {ws.mel_path(uid)}"
        else:
            reason = _check_mel(ws.mel_path(uid), int(row.get("n_frames", -1)))
        if reason:
            console.print(f"[yellow]skip {uid}: {reason}[/]")
            skipped.append({"id": uid, "reasons": [reason]})
            continue
        kept = [s for s, k in zip(syms, keep) if k]
        silent = np.array([is_silent_symbol(s) for s in kept], dtype=bool)
        positions = None if keep.all() else np.flatnonzero(keep)
        items.append(Utterance(uid, np.array([index[s] for s in kept], dtype=np.int64), int(row["n_frames"]), kept,
                               silent, positions, len(syms)))
    return items, skipped


_MEL_CACHE: dict = {}
_MEL_CACHE_LIMIT = 1 << 30  # bytes of mels kept in memory between batches


def _check_mel(path: Path, n_frames: int) -> str | None:
    """Why a mel file is unusable (reads only the header), or None."""
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as e:
        return f"unreadable {path}: {e}"
    if len(shape) != 2 or shape[1] != n_frames or n_frames < 1:
        return f"{path}: shape {shape} does not match n_frames={n_frames} in the manifest"
    return None


def load_mel(ws: Workspace, utt: Utterance, features: "QueryFeatures | None" = None) -> np.ndarray:
    """The aligner's input frames for `utt`: WORK/mels, or the query features when `features` is set."""
    key = (str(ws.root), utt.id, None if features is None else features.win_length)
    if key in _MEL_CACHE:
        return _MEL_CACHE[key]
    mel = _read_mel(ws, utt) if features is None else features.compute(ws, utt)
    if sum(m.nbytes for m in _MEL_CACHE.values()) + mel.nbytes <= _MEL_CACHE_LIMIT:
        _MEL_CACHE[key] = mel
    return mel


def _read_mel(ws: Workspace, utt: Utterance) -> np.ndarray:
    mel = np.load(ws.mel_path(utt.id), allow_pickle=False)
    if mel.ndim != 2 or mel.shape[1] != utt.n_frames:
        raise ValueError(f"{ws.mel_path(utt.id)}: shape {mel.shape} does not match n_frames={utt.n_frames} in the manifest")
    return mel.astype(np.float32, copy=False)


@dataclass
class QueryFeatures:
    """Log-mels of WORK/wavs with the workspace's audio settings but a shorter STFT window
    (same hop and centring, so the frames are those of WORK/mels)."""

    audio: Any  # config.AudioConfig of the workspace
    win_length: int

    def compute(self, ws: Workspace, utt: Utterance) -> np.ndarray:
        from dataclasses import replace

        wav = load_audio(ws.wav_path(utt.id), int(self.audio.sample_rate))
        mel = mel_spectrogram(wav, replace(self.audio, win_length=self.win_length)).numpy()
        if mel.shape[1] != utt.n_frames:
            raise ValueError(f"{ws.wav_path(utt.id)}: gives {mel.shape[1]} frames, "
                             f"the manifest says n_frames={utt.n_frames}")
        return mel


def query_features(ws: Workspace, items: list[Utterance], cfg_all: dict, win_length: int,
                    console) -> tuple[QueryFeatures | None, list[dict]]:
    """(features, bad rows): the query features `win_length` asks for, computed once for every
    item (cached like mels), or None (use WORK/mels) when it is 0, not shorter than the mels'
    window, or the workspace lacks some processed wav (a warning then: one kind of feature for
    the whole run). Utterances whose wav is unusable are reported in `bad` and must be skipped."""
    audio = audio_config(cfg_all)
    win = int(win_length or 0)
    if win <= 0 or win >= int(audio.win_length):
        return None, []
    missing = [u.id for u in items if not ws.wav_path(u.id).is_file()]
    if missing:
        console.print(f"[yellow]{ws.wav_path(missing[0])} and {len(missing) - 1} more wav(s) missing: the aligner "
                      f"reads WORK/mels instead of its {win}-sample-window features[/]")
        return None, []
    features, bad = QueryFeatures(audio, win), []
    for u in items:
        try:
            load_mel(ws, u, features)
        except (AudioError, ValueError, OSError) as e:
            reason = str(e) if str(ws.wav_path(u.id)) in str(e) else f"{ws.wav_path(u.id)}: {e}"
            console.print(f"[yellow]skip {u.id}: {reason}[/]")
            bad.append({"id": u.id, "reasons": [reason]})
    return features, bad


def collate(ws: Workspace, batch: list[Utterance], n_mel: int, prior_scaling: float, skip_silent: bool,
             features: QueryFeatures | None = None):
    import torch

    t_text = max(len(u.ids) for u in batch)
    t_mel = max(u.n_frames for u in batch)
    text = torch.zeros(len(batch), t_text, dtype=torch.long)
    mel = torch.zeros(len(batch), n_mel, t_mel)
    silent = torch.zeros(len(batch), t_text, dtype=torch.bool)
    for b, u in enumerate(batch):
        text[b, : len(u.ids)] = torch.from_numpy(u.ids)
        if skip_silent:
            silent[b, : len(u.ids)] = torch.from_numpy(u.silent)
        mel[b, :, : u.n_frames] = torch.from_numpy(load_mel(ws, u, features))
    text_lens = torch.tensor([len(u.ids) for u in batch])
    mel_lens = torch.tensor([u.n_frames for u in batch])
    prior = prior_batch(text_lens.tolist(), mel_lens.tolist(), prior_scaling)
    return text, text_lens, mel, mel_lens, prior, silent


def batch_for_step(n_items: int, lengths: np.ndarray, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Item indices of training batch `step`: a pure function of (seed, step).

    Each epoch shuffles the items with its own seed, sorts pools of 8 batches by length
    (so batches hold similar lengths: less padding) and shuffles the batch order.
    """
    n_batches = max(1, -(-n_items // batch_size))
    epoch, k = divmod(step, n_batches)
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n_items)
    pool = batch_size * 8
    batches = []
    for start in range(0, n_items, pool):
        chunk = perm[start: start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return batches[order[k % len(batches)]]


def clear_mel_cache() -> None:
    """Forget cached frames: a stage run may follow one in the same process after mels were rewritten."""
    _MEL_CACHE.clear()


__all__ = ["QueryFeatures", "Utterance", "batch_for_step", "clear_mel_cache", "collate", "is_silent_symbol",
           "is_stress_mark", "load_items", "load_mel", "query_features"]
