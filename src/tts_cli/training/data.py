"""Training data: a dataset over one workspace split, padding collate, and a length-bucketing
batch sampler with a frame budget.

Why a frame budget instead of a batch size: padded cost grows with the longest clip in the
batch, so a fixed batch size lets one long clip cause an OOM. Here every batch satisfies
`len(batch) * max_frames_in_batch <= batch_frames`; clips longer than `max_frames` are skipped
(with one warning listing them) rather than crashing a run hours in.

The order of batches is a pure function of (seed, epoch), and the sampler can start from any
batch index, which is what makes `--resume` continue on exactly the batches it would have seen.
Under DDP every rank builds the same batch list and takes every world_size-th batch.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from tts_cli.errors import ConfigError, WorkspaceError
from tts_cli.models.alignment import beta_binomial_prior
from tts_cli.workspace import Workspace

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- speakers and pitch

def speaker_map(rows: Sequence[dict]) -> dict[str, int]:
    """The workspace contract: sorted unique speaker names -> 0..S-1."""
    return {name: i for i, name in enumerate(sorted({str(r.get("speaker", "default")) for r in rows}))}


def load_pitch_stats(path: str | Path) -> dict:
    """pitch_stats.json as {"speakers": {name: {"mean", "std"}}, "corpus": {"mean", "std"}}.

    Tolerates the flat form {name: {"mean", "std"}} too, so an older workspace still trains.
    """
    path = Path(path)
    if not path.exists():
        raise WorkspaceError(f"{path}: missing; run `tts extract-pitch {path.parent}` first")
    raw = json.loads(path.read_text(encoding="utf-8"))
    speakers = raw.get("speakers")
    if not isinstance(speakers, dict):
        speakers = {k: v for k, v in raw.items() if isinstance(v, dict) and "mean" in v and "std" in v}
    corpus = raw.get("corpus") or raw.get("all") or raw.get("global")
    if not isinstance(corpus, dict) or "mean" not in corpus:
        if speakers:
            means = [float(v["mean"]) for v in speakers.values()]
            stds = [float(v["std"]) for v in speakers.values()]
            corpus = {"mean": float(np.mean(means)), "std": float(np.mean(stds))}
        else:
            raise WorkspaceError(f"{path}: no pitch mean/std found (expected 'speakers' and 'corpus' entries)")
    def plain(v: dict) -> dict:  # keep extra facts (fmin/fmax, counts) for the checkpoint
        extra = {k: x for k, x in v.items() if isinstance(x, (int, float, str)) and not isinstance(x, bool)}
        return {**extra, "mean": float(v["mean"]), "std": float(v["std"])}

    return {"speakers": {str(k): plain(v) for k, v in speakers.items()}, "corpus": plain(corpus)}


def speaker_pitch(stats: dict, speaker: str) -> tuple[float, float]:
    """(mean, std) for one speaker, falling back to the corpus statistics."""
    s = stats["speakers"].get(speaker) or stats["corpus"]
    std = float(s["std"]) if float(s["std"]) > 1e-3 else 1.0  # a monotone speaker must not explode the targets
    return float(s["mean"]), std


def _normalize_pitch(pitch: np.ndarray, mean: float, std: float) -> np.ndarray:
    try:
        from tts_cli.prosody import normalize_pitch
    except ImportError:  # the shared helper is missing: same rule, zeros (unvoiced) stay 0
        out = np.where(pitch > 0, (pitch - mean) / std, 0.0)
        return out.astype(np.float32)
    return np.asarray(normalize_pitch(pitch, mean, std), dtype=np.float32)


# ----------------------------------------------------------------------------- dataset

class TTSDataset:
    """Utterances of one workspace split, as tensors the model's `forward(batch)` expects.

    Item: {"id", "symbols" Long[N], "mel" [80,T], "pitch" [T] (normalised per speaker),
    "energy" [T], "speaker" int, optional "durations" Long[N], optional "attn_prior" [T,N]}.
    """

    def __init__(
        self,
        work,
        split: str | None = "train",
        *,
        symbols: Sequence[str] | None = None,
        speakers: dict[str, int] | None = None,
        pitch_stats: dict | None = None,
        use_durations: bool = True,
        attn_prior: bool = False,
        rows: Sequence[dict] | None = None,
    ):
        self.work = work if isinstance(work, Workspace) else Workspace(work)
        all_rows = self.work.load_manifest()
        self.rows = list(rows) if rows is not None else [r for r in all_rows if split is None or r.get("split") == split]
        self.symbols = list(symbols) if symbols is not None else self.work.load_symbols()
        self.symbol_index = {s: i for i, s in enumerate(self.symbols)}
        self.speakers = speakers if speakers is not None else speaker_map(all_rows)
        self.pitch_stats = pitch_stats if pitch_stats is not None else load_pitch_stats(self.work.pitch_stats)
        self.use_durations = use_durations
        self.attn_prior = attn_prior
        self._recorded_bins: dict[int, int] = {}
        if use_durations:
            missing = [r["id"] for r in self.rows if not self.work.duration_path(r["id"]).exists()]
            if missing:
                raise WorkspaceError(
                                     f"{self.work.root}: {len(missing)} utterance(s) have no durations (e.g. {', '.join(missing[:5])}); "
                                     f"run `tts align {self.work.root}` or train with --alignment learned"
                )
        unknown = sorted({s for r in self.rows for s in r["symbols"] if s not in self.symbol_index})
        if unknown:
            raise WorkspaceError(f"{self.work.symbols}: symbol(s) {unknown} used in manifest.jsonl are not in the table")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    @property
    def frame_lengths(self) -> list[int]:
        return [int(r["n_frames"]) for r in self.rows]

    def __getitem__(self, i: int) -> dict:
        import torch

        row = self.rows[i]
        uid = row["id"]
        mel = np.load(self.work.mel_path(uid))
        T = mel.shape[1]
        symbols = np.array([self.symbol_index[s] for s in row["symbols"]], dtype=np.int64)
        pitch = _fit(np.load(self.work.pitch_path(uid)).astype(np.float32), T, f"{uid} pitch")
        mean, std = speaker_pitch(self.pitch_stats, str(row.get("speaker", "default")))
        energy = _fit(np.load(self.work.energy_path(uid)).astype(np.float32), T, f"{uid} energy")
        item = {
            "id": uid,
            "symbols": torch.from_numpy(symbols),
            "mel": torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32)),
            "pitch": torch.from_numpy(_normalize_pitch(pitch, mean, std)),
            "energy": torch.from_numpy(energy),
            "speaker": int(self.speakers.get(str(row.get("speaker", "default")), 0)),
        }
        if self.use_durations:
            dur = np.load(self.work.duration_path(uid)).astype(np.int64)
            if len(dur) != len(symbols) or int(dur.sum()) != T:
                raise WorkspaceError(
                                     f"{self.work.duration_path(uid)}: {len(dur)} durations summing to {int(dur.sum())}, "
                                     f"expected {len(symbols)} summing to {T} frames; re-run `tts align --force`"
                )
            item["durations"] = torch.from_numpy(dur)
        if self.attn_prior:
            item["attn_prior"] = torch.as_tensor(_prior(len(symbols), T), dtype=torch.float32)
        if row.get("source_sr"):
            item["mel_bins"] = self.recorded_bins(int(row["source_sr"]), mel.shape[0])
        return item

    def recorded_bins(self, source_sr: int, n_mels: int) -> int:
        """Mel bins a clip of this sample rate fills (all of them from 16 kHz up, for mels to 8 kHz)."""
        if source_sr not in self._recorded_bins:
            from tts_cli.audio import mel_bins_recorded
            from tts_cli.config import audio_config

            self._recorded_bins[source_sr] = min(n_mels, mel_bins_recorded(source_sr, audio_config(self.work.load_config())))
        return self._recorded_bins[source_sr]


class ConcatTTSDataset:
    """Several TTSDatasets as one (the new voice's clips + the base's replay): items, ids and
    frame lengths in order, so the bucketing sampler sees one list."""

    def __init__(self, parts: Sequence[TTSDataset]):
        self.parts = [p for p in parts if len(p)]
        self._starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def ids(self) -> list[str]:
        return [i for p in self.parts for i in p.ids]

    @property
    def frame_lengths(self) -> list[int]:
        return [n for p in self.parts for n in p.frame_lengths]

    def __getitem__(self, i: int) -> dict:
        k = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self.parts[k][i - int(self._starts[k])]


def _fit(x: np.ndarray, T: int, what: str) -> np.ndarray:
    """Frame features must match the mel length; one frame of slack is padded/cut (framing rounding)."""
    if len(x) == T:
        return x
    if abs(len(x) - T) > 2:
        raise WorkspaceError(f"{what}: {len(x)} frames but the mel has {T}; re-run `tts extract-pitch --force`")
    return np.pad(x, (0, T - len(x)), mode="edge") if len(x) < T else x[:T]


def _prior(n_text: int, n_mel: int) -> np.ndarray:
    """Beta-binomial alignment prior [n_mel, n_text] (the align helper's function)."""
    return np.asarray(beta_binomial_prior(n_text, n_mel), dtype=np.float32)


def collate(items: list[dict]) -> dict:
    """Pad to the longest item: symbols with 0 (= pad), mels/pitch/energy/durations/priors with 0;
    "mel_bins" [B] (bins each clip's recording fills) only when some clip fills fewer than all."""
    import torch

    B = len(items)
    N = max(len(it["symbols"]) for it in items)
    T = max(it["mel"].shape[1] for it in items)
    n_mels = items[0]["mel"].shape[0]
    batch = {
        "ids": [it["id"] for it in items],
        "symbols": torch.zeros(B, N, dtype=torch.long),
        "symbol_lens": torch.tensor([len(it["symbols"]) for it in items], dtype=torch.long),
        "mels": torch.zeros(B, n_mels, T),
        "mel_lens": torch.tensor([it["mel"].shape[1] for it in items], dtype=torch.long),
        "pitch": torch.zeros(B, T),
        "energy": torch.zeros(B, T),
        "speakers": torch.tensor([it["speaker"] for it in items], dtype=torch.long),
    }
    has_dur = all("durations" in it for it in items)
    has_prior = all("attn_prior" in it for it in items)
    bins = [it.get("mel_bins", n_mels) for it in items]
    if min(bins) < n_mels:  # telephone-band clips: the loss leaves out the bins they cannot fill
        batch["mel_bins"] = torch.tensor(bins, dtype=torch.long)
    if has_dur:
        batch["durations"] = torch.zeros(B, N, dtype=torch.long)
    if has_prior:
        batch["attn_prior"] = torch.zeros(B, T, N)
    for b, it in enumerate(items):
        n, t = len(it["symbols"]), it["mel"].shape[1]
        batch["symbols"][b, :n] = it["symbols"]
        batch["mels"][b, :, :t] = it["mel"]
        batch["pitch"][b, :t] = it["pitch"]
        batch["energy"][b, :t] = it["energy"]
        if has_dur:
            batch["durations"][b, :n] = it["durations"]
        if has_prior:
            batch["attn_prior"][b, :t, :n] = it["attn_prior"]
    return batch


# ----------------------------------------------------------------------------- bucketing

class BucketBatchSampler:
    """Batches of similar-length clips whose padded size stays within a frame budget.

    - every batch: `len(batch) * max(lengths in batch) <= batch_frames`;
    - clips longer than `max_frames` (or the budget) are skipped, listed once in a warning;
    - order = f(seed, epoch): shuffle, sort inside pools of ~`pool` batches (keeps some
      randomness in who is batched with whom), cut batches, shuffle the batches;
    - DDP: `num_replicas`/`rank` give each rank every num_replicas-th batch; the list is padded
      by repeating batches so that all ranks run the same number of steps (no hang at the end);
    - resumable: `set_epoch(e)` then `set_start(k)` skips the first k batches of this rank.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_frames: int,
        *,
        max_frames: int | None = None,
        seed: int = 1234,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        ids: Sequence[str] | None = None,
        pool: int = 50,
        max_batch_size: int | None = None,
        warn: bool = True,
    ):
        if batch_frames <= 0:
            raise ConfigError("batch_frames must be positive")
        self.lengths = [int(x) for x in lengths]
        self.batch_frames = int(batch_frames)
        self.max_frames = min(int(max_frames or batch_frames), self.batch_frames)
        self.seed, self.shuffle, self.pool = int(seed), shuffle, int(pool)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.max_batch_size = max_batch_size
        self.epoch, self.start = 0, 0
        self.kept = [i for i, n in enumerate(self.lengths) if n <= self.max_frames]
        self.skipped = [i for i, n in enumerate(self.lengths) if n > self.max_frames]
        if self.skipped and warn:
            names = [f"{ids[i] if ids else i} ({self.lengths[i]} frames)" for i in self.skipped]
            log.warning(
                "skipping %d clip(s) longer than %d frames (raise --max-frames / --batch-frames to keep them): %s",
                len(names), self.max_frames, ", ".join(names),
            )
        if not self.kept:
            raise ConfigError(f"no clip fits the frame budget ({self.max_frames} frames)")

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = int(epoch), 0

    def set_start(self, batch_index: int) -> None:
        """Skip the first `batch_index` batches of this rank in the current epoch (resume)."""
        self.start = int(batch_index)

    def all_batches(self, epoch: int | None = None) -> list[list[int]]:
        """Every rank's batches of one epoch, in order (padded to a multiple of num_replicas)."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch])
        order = np.array(self.kept)
        if self.shuffle:
            order = order[rng.permutation(len(order))]
            # sort inside pools so batches are tight, but pools keep the mix random
            avg = max(1, self.batch_frames // max(1, int(np.mean([self.lengths[i] for i in order]))))
            size = max(1, self.pool * avg)
            pools = [order[i:i + size] for i in range(0, len(order), size)]
            order = np.concatenate([p[np.argsort([self.lengths[i] for i in p], kind="stable")] for p in pools])
        else:
            order = order[np.argsort([self.lengths[i] for i in order], kind="stable")]
        batches: list[list[int]] = []
        cur: list[int] = []
        cur_max = 0
        for i in order.tolist():
            n = self.lengths[i]
            new_max = max(cur_max, n)
            full = self.max_batch_size is not None and len(cur) >= self.max_batch_size
            if cur and (new_max * (len(cur) + 1) > self.batch_frames or full):
                batches.append(cur)
                cur, new_max = [], n
            cur.append(i)
            cur_max = new_max
        if cur:
            batches.append(cur)
        if self.shuffle:
            batches = [batches[j] for j in rng.permutation(len(batches))]
        rem = len(batches) % self.num_replicas
        if rem:  # every rank must run the same number of steps
            batches += batches[: self.num_replicas - rem]
        return batches

    def batches(self) -> list[list[int]]:
        return self.all_batches()[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.start:]

    def __len__(self) -> int:
        """Batches per epoch for this rank (from the epoch start, ignoring `set_start`)."""
        return len(self.batches())


def ignore_signals(worker_id: int) -> None:
    """DataLoader worker_init_fn: Ctrl-C / SIGTERM are the main process's business (it finishes
    the step and saves a checkpoint); a worker dying on them would break that last step."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def padded_frames(batch: Sequence[int], lengths: Sequence[int]) -> int:
    return len(batch) * max(lengths[i] for i in batch)


__all__ = [
    "TTSDataset", "collate", "BucketBatchSampler", "ignore_signals", "speaker_map", "load_pitch_stats", "speaker_pitch", "padded_frames",
]
