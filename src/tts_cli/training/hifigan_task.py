"""The HiFi-GAN "task" for the shared training loop (`tts_cli.training.loop`).

The loop trains `task.model` = the generator with the optimizer and schedule this task builds
(`build_optimizer`: AdamW, lr 2e-4, betas 0.8/0.99, lr x `lr_decay` once per epoch, as the
reference's ExponentialLR). The discriminators (MPD + MSD) are the task's own: inside `loss`
each step first updates them (LSGAN loss on real vs detached generated audio), then returns the
generator loss 45 x mel-L1 + feature matching + adversarial for the loop to back-propagate and
step. Their weights, optimizer, schedule and scaler travel in every checkpoint through
`checkpoint_meta` and come back through `restore`, so resume is exact like FastPitch's.

Training data are random `segment_size`-sample windows (8192 = 32 frames) cut from each
utterance with an RNG seeded by (seed, epoch, utterance), so a resumed run sees the same windows.
Input mels come from WORK/mels (ground truth) or WORK/gta (FastPitch teacher-forced mels, same
length); the mel loss compares mels of the real and generated audio (full band, as the reference).
"""
from __future__ import annotations

import logging
import wave
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from tts_cli.audio import mel_spectrogram, save_wav
from tts_cli.config import AudioConfig
from tts_cli.errors import WorkspaceError
from tts_cli.models.hifigan import Discriminators, discriminator_loss, feature_loss, generator_loss, mel_loss
from tts_cli.training.optim import build_optimizer

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- settings

@dataclass
class HiFiGANTaskSettings:
    """HiFi-GAN-only keys of the recipe's `train:` section."""

    segment_size: int = 8192  # samples per training window
    batch_size: int = 16
    lr_decay: float = 0.999  # x per epoch (ExponentialLR)
    mel_weight: float = 45.0
    loss_fmax: float | None = None  # mel-loss band edge (None = Nyquist, as the reference)
    discriminator_width: float = 1.0  # channel multiplier of MPD/MSD (1 = the paper; < 1 for quick tests)

    @classmethod
    def pop_from(cls, train: dict) -> "HiFiGANTaskSettings":
        return cls(**{f.name: train.pop(f.name) for f in fields(cls) if f.name in train})

    def to_dict(self) -> dict:
        return asdict(self)


# Loop settings where HiFi-GAN's reference differs from FastPitch's (recipe values still win).
TRAIN_DEFAULTS = {"optimizer": "adamw", "lr": 2e-4, "betas": (0.8, 0.99), "eps": 1e-9, "weight_decay": 0.01,
                  "grad_clip": 1e9, "schedule": "constant", "warmup": 0, "max_grad_norm": None}


class ExponentialPerEpoch:
    """LambdaLR factor gamma ** epoch, with epoch = optimizer steps // steps_per_epoch.
    A callable object so the scheduler's state_dict keeps it as plain data."""

    def __init__(self, gamma: float, steps_per_epoch: int):
        self.gamma, self.steps_per_epoch = float(gamma), max(1, int(steps_per_epoch))

    def __call__(self, k: int) -> float:
        return self.gamma ** (int(k) // self.steps_per_epoch)


# ----------------------------------------------------------------------------- data

def read_wav(path: Path) -> np.ndarray:
    """Mono float32 in [-1, 1]: stdlib `wave` for PCM16 (GPU boxes lack soundfile), soundfile otherwise."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getsampwidth() == 2:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
                return (pcm.reshape(-1, w.getnchannels()).mean(1) / 32768.0).astype(np.float32)
    except (wave.Error, EOFError):
        pass
    import soundfile as sf

    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(1).astype(np.float32)


class VocoderDataset:
    """(mel, audio) pairs of one workspace split.

    train=True: a `segment_size` window at a random frame (RNG from seed, epoch, index);
    train=False: whole utterances (validation). Mels from `mel_dir` ("mels" or "gta")."""

    def __init__(self, ws, split: str | None, hop_length: int, segment_size: int = 8192, mel_dir: str = "mels",
                 train: bool = True, seed: int = 1234, log_floor: float = float(np.log(1e-5))):
        self.ws = ws
        self.rows = [r for r in ws.load_manifest() if split is None or r.get("split") == split]
        self.hop, self.segment_size, self.mel_dir = int(hop_length), int(segment_size), mel_dir
        self.seg_frames = max(1, self.segment_size // self.hop)
        self.train, self.seed, self.epoch = train, int(seed), 0
        self.log_floor = log_floor
        missing = [r["id"] for r in self.rows if not self.mel_file(r["id"]).exists()]
        if missing:
            hint = " (run with --gta CKPT to write them)" if mel_dir == "gta" else ""
            raise WorkspaceError(f"{ws.root}: {len(missing)} utterance(s) have no {mel_dir}/<id>.npy "
                                 f"(e.g. {', '.join(missing[:5])}){hint}")

    def mel_file(self, uid: str) -> Path:
        return self.ws.dir(self.mel_dir) / f"{uid}.npy"

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def ids(self) -> list[str]:
        return [r["id"] for r in self.rows]

    def __getitem__(self, i: int) -> dict:
        row = self.rows[i]
        uid = row["id"]
        mel = np.load(self.mel_file(uid)).astype(np.float32)
        wav = read_wav(self.ws.root / row.get("audio", f"wavs/{uid}.wav"))
        T = mel.shape[1]
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            F = self.seg_frames
            start = int(rng.integers(0, T - F + 1)) if T > F else 0
            mel = mel[:, start:start + F]
            if mel.shape[1] < F:
                mel = np.pad(mel, ((0, 0), (0, F - mel.shape[1])), constant_values=self.log_floor)
            audio = wav[start * self.hop:(start + F) * self.hop]
            audio = np.pad(audio, (0, F * self.hop - len(audio)))
        else:
            audio = np.pad(wav, (0, max(0, T * self.hop - len(wav))))[:T * self.hop]
        return {"id": uid, "mel": torch.from_numpy(np.ascontiguousarray(mel)),
                "audio": torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)),
                "n_samples": min(len(wav), T * self.hop)}


def collate_vocoder(items: list[dict], log_floor: float = float(np.log(1e-5))) -> dict:
    """Pad mels with the log floor (silence) and audio with zeros."""
    B, n_mels = len(items), items[0]["mel"].shape[0]
    T = max(it["mel"].shape[1] for it in items)
    N = max(len(it["audio"]) for it in items)
    mels = torch.full((B, n_mels, T), log_floor)
    audio = torch.zeros(B, 1, N)
    for b, it in enumerate(items):
        mels[b, :, :it["mel"].shape[1]] = it["mel"]
        audio[b, 0, :len(it["audio"])] = it["audio"]
    return {"ids": [it["id"] for it in items], "mels": mels, "audio": audio,
            "mel_lens": torch.tensor([it["mel"].shape[1] for it in items]),
            "n_samples": torch.tensor([it["n_samples"] for it in items])}


class EpochAwareSampler:
    """The loop's batch sampler, also telling the dataset the epoch (its windows depend on it).
    Works with DataLoader workers as long as they are not persistent (re-pickled each epoch)."""

    def __init__(self, sampler, dataset: VocoderDataset):
        self.sampler, self.dataset = sampler, dataset

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.epoch = int(epoch)

    def set_start(self, k: int) -> None:
        self.sampler.set_start(k)

    def __iter__(self):
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


# ----------------------------------------------------------------------------- the task

class HiFiGANTask:
    find_unused_parameters = False

    def __init__(self, generator, settings: HiFiGANTaskSettings, meta: dict, audio_cfg, device,
                 amp: str = "none", train_settings=None, dist_enabled: bool = False, val_samples: int = 2,
                 discriminators=None):
        self.model = generator
        self.settings = settings
        self.meta = meta
        self.audio_cfg = audio_cfg
        self.val_samples = val_samples
        self.device = torch.device(device)
        self.disc = (discriminators or Discriminators(width=settings.discriminator_width)).to(self.device)
        self.disc_train = self.disc
        if dist_enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.disc_train = DDP(self.disc, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        ts = train_settings
        kw = {"fused": True} if self.device.type == "cuda" else {}
        self.optim_d = torch.optim.AdamW(self.disc.parameters(), lr=ts.lr if ts else 2e-4,
                                         betas=tuple(ts.betas) if ts else (0.8, 0.99), eps=ts.eps if ts else 1e-9,
                                         weight_decay=ts.weight_decay if ts else 0.01, **kw)
        self.sched_d = None  # built with the generator's, once steps per epoch are known
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=amp == "fp16")
        loss_fields = {f.name: getattr(audio_cfg, f.name) for f in fields(AudioConfig)}
        self.loss_audio = AudioConfig(**{**loss_fields, "fmax": settings.loss_fmax})
        self._pending_restore: dict | None = None

    # ------------------------------------------------------------------ optimizer hook
    def build_optimizer(self, model, settings, steps_per_epoch: int):
        """(generator optimizer, scheduler) for the loop; also the discriminators' scheduler."""
        opt = build_optimizer(model.parameters(), settings.optimizer, lr=settings.lr, betas=settings.betas,
                              eps=settings.eps, weight_decay=settings.weight_decay,
                              max_grad_norm=settings.max_grad_norm)
        per_epoch = max(1, steps_per_epoch // max(1, settings.grad_accumulation))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, ExponentialPerEpoch(self.settings.lr_decay, per_epoch))
        self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.optim_d,
                                                         ExponentialPerEpoch(self.settings.lr_decay, per_epoch))
        if self._pending_restore is not None:
            self._load_d_state(self._pending_restore)
        return opt, sched

    # ------------------------------------------------------------------ state
    def restore(self, ckpt: dict) -> None:
        """Discriminator side of a resumed run (the loop restores the generator side)."""
        self.disc.load_state_dict(ckpt["discriminator"])
        self._pending_restore = ckpt  # optimizer/scheduler once they exist
        if self.sched_d is not None:
            self._load_d_state(ckpt)

    def _load_d_state(self, ckpt: dict) -> None:
        self.optim_d.load_state_dict(ckpt["optimizer_d"])
        self.sched_d.load_state_dict(ckpt["scheduler_d"])
        if ckpt.get("scaler_d"):
            self.scaler_d.load_state_dict(ckpt["scaler_d"])
        self._pending_restore = None

    def checkpoint_meta(self) -> dict:
        meta = dict(self.meta)
        meta["discriminator"] = {k: v.detach().cpu() for k, v in self.disc.state_dict().items()}
        meta["optimizer_d"] = self.optim_d.state_dict()
        if self.sched_d is not None:
            meta["scheduler_d"] = self.sched_d.state_dict()
        meta["scaler_d"] = self.scaler_d.state_dict() if self.scaler_d.is_enabled() else {}
        return meta

    # ------------------------------------------------------------------ loop API
    def to_device(self, batch: dict, device: torch.device) -> dict:
        nb = device.type == "cuda"
        return {k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in batch.items()}

    def frames(self, batch: dict) -> int:
        return int(batch["mel_lens"].sum())

    def utterance_ids(self, batch: dict) -> list[str]:
        return list(batch.get("ids", []))

    def _mel(self, audio: torch.Tensor) -> torch.Tensor:
        return mel_spectrogram(audio.squeeze(1).float(), self.loss_audio)

    def loss(self, model, batch: dict, step: int, epoch: int):
        y, mel = batch["audio"], batch["mels"]
        y_hat = model(mel)
        n = min(y.shape[-1], y_hat.shape[-1])
        y, y_hat = y[..., :n], y_hat[..., :n]

        # discriminators: real vs (detached) generated
        self.optim_d.zero_grad(set_to_none=True)
        rs, gs, _, _ = self.disc_train(y, y_hat.detach())
        loss_d = discriminator_loss(rs, gs)
        if torch.isfinite(loss_d):
            self.scaler_d.scale(loss_d).backward()
            self.scaler_d.step(self.optim_d)
            self.scaler_d.update()
            if self.sched_d is not None:
                self.sched_d.step()
        else:
            log.warning("non-finite discriminator loss at step %d: discriminator step skipped", step)

        # generator: mel L1 x 45 + feature matching + adversarial
        loss_mel = mel_loss(self._mel(y_hat), self._mel(y), self.settings.mel_weight)
        rs, gs, fr, fg = self.disc_train(y, y_hat)
        loss_fm = feature_loss(fr, fg)
        loss_adv = generator_loss(gs)
        total = loss_mel + loss_fm + loss_adv
        terms = {"mel": loss_mel.detach(), "fm": loss_fm.detach(), "adv": loss_adv.detach(),
                 "disc": loss_d.detach(), "total": total.detach()}
        return total, terms

    def validate(self, model, batches: list[dict], step: int, samples_dir: Path | None) -> dict:
        """Mel L1 (unweighted) of whole validation utterances; WAV samples of the first ones."""
        total, count, written = 0.0, 0, 0
        for batch in batches:
            wav = model(batch["mels"]).squeeze(1).float()
            for b, uid in enumerate(batch["ids"]):
                n = int(batch["n_samples"][b])
                fake, real = wav[b:b + 1, :n], batch["audio"][b:b + 1, 0, :n]
                l1 = torch.nn.functional.l1_loss(self._mel(fake), self._mel(real))
                total += float(l1)
                count += 1
                if samples_dir is not None and written < self.val_samples:
                    samples_dir.mkdir(parents=True, exist_ok=True)
                    save_wav(samples_dir / f"{uid}.wav", fake[0].cpu(), self.audio_cfg.sample_rate)
                    written += 1
        mel_l1 = total / max(count, 1)
        return {"loss": mel_l1, "mel_l1": mel_l1}


__all__ = ["HiFiGANTask", "HiFiGANTaskSettings", "VocoderDataset", "collate_vocoder", "EpochAwareSampler",
           "ExponentialPerEpoch", "TRAIN_DEFAULTS", "read_wav"]
