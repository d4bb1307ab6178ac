"""The FastPitch "task" for the shared training loop: forward + loss, KL ramp, validation samples,
and the self-describing part of its checkpoints."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tts_cli.audio import save_wav
from tts_cli.errors import ConfigError
from tts_cli.evaluation import asr as asr_module
from tts_cli.evaluation.quick import evaluate_checkpoint_quick
from tts_cli.inference.vocoders import griffin_lim, is_griffin_lim, load_vocoder
from tts_cli.models.fastpitch import FastPitchLoss
from tts_cli.workspace import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass
class FastPitchTaskSettings:
    """FastPitch-only keys of the recipe's `train:` section (the reference's values)."""

    loss_weights: dict = field(default_factory=lambda: {"mel": 1.0, "duration": 0.1, "pitch": 0.1,
                                                         "energy": 0.1, "attn": 1.0})
    kl_weight: float = 1.0  # binarisation loss weight once ramped in (learned alignment only)
    kl_start_epoch: int = 0  # scripts/train.sh: ramp from epoch 0 ...
    kl_warmup_epochs: int = 100  # ... to full weight at epoch 100
    # External durations: leave out the utterances `tts align` flagged in align_report.jsonl (low
    # attention confidence, a symbol held too long, sounds with no frame): a wrong alignment
    # teaches the decoder the wrong sound for a symbol.
    skip_flagged: bool = True

    KEYS = ("loss_weights", "kl_weight", "kl_start_epoch", "kl_warmup_epochs", "skip_flagged")

    @classmethod
    def pop_from(cls, train: dict) -> "FastPitchTaskSettings":
        """Take this task's keys out of a `train:` dict (the rest belongs to TrainSettings)."""
        d = {k: train.pop(k) for k in cls.KEYS if k in train}
        out = cls(**{k: v for k, v in d.items() if k != "loss_weights"})
        if "loss_weights" in d:
            unknown = set(d["loss_weights"]) - set(out.loss_weights)
            if unknown:
                raise ConfigError(f"unknown loss weight(s) {sorted(unknown)} (known: {sorted(out.loss_weights)})")
            out.loss_weights = {**out.loss_weights, **d["loss_weights"]}
        return out

    def to_dict(self) -> dict:
        return {"loss_weights": dict(self.loss_weights), "kl_weight": self.kl_weight,
                "kl_start_epoch": self.kl_start_epoch, "kl_warmup_epochs": self.kl_warmup_epochs,
                "skip_flagged": self.skip_flagged}

    def kl_at(self, epoch: int) -> float:
        """NVIDIA's ramp: min((epoch - start) / warmup, 1) * weight, epochs counted from 1."""
        e = epoch + 1 - self.kl_start_epoch
        if e <= 0:
            return 0.0
        ramp = 1.0 if self.kl_warmup_epochs <= 0 else min(e / self.kl_warmup_epochs, 1.0)
        return ramp * self.kl_weight


class FastPitchTask:
    def __init__(self, model, alignment: str, settings: FastPitchTaskSettings, meta: dict, audio_cfg,
                 val_samples: int = 2):
        self.model = model
        self.alignment = alignment
        self.settings = settings
        self.meta = meta
        self.audio_cfg = audio_cfg
        self.val_samples = val_samples
        w = settings.loss_weights
        self.criterion = FastPitchLoss(mel_weight=w["mel"], dur_weight=w["duration"], pitch_weight=w["pitch"],
                                       energy_weight=w["energy"], attn_weight=w["attn"])
        # with external durations the aligner is idle: freeze it so DDP needs no unused-parameter scan
        if alignment == "external" and getattr(model, "attention", None) is not None:
            model.attention.requires_grad_(False)
        self.find_unused_parameters = alignment == "learned"
        self._eval: dict | None = None  # set by enable_evaluation (rank 0 of a run with eval_every)

    def enable_evaluation(self, work, rows: list[dict], symbols: list[str], speakers: dict[str, int],
                          language: str = "es", asr: str = "none", limit: int = 4,
                          vocoder: str = "griffin-lim", audio=None) -> None:
        """Let `evaluate` score `limit` of `rows` (the validation split), those with the most words:
        a single word ("seven", "paused") says little about intelligibility and a recogniser often
        mis-hears one heard alone, so sentences make the CER that picks best.pt. The CER is on audio
        from `vocoder` (a `load_vocoder` spec for mels with `audio`). Recogniser and vocoder are
        loaded now, so a missing extra or an unfit vocoder stops the run before training
        (ASRUnavailable / VocoderError)."""
        recognizer = asr_module.load_asr(asr, language=language)
        voc = None if recognizer is None or is_griffin_lim(vocoder) else load_vocoder(vocoder, audio)
        by_words = sorted(rows, key=lambda r: -len(str(r.get("text", "")).split()))  # stable: ties keep order
        self._eval = {"work": work, "rows": by_words[: max(1, int(limit))], "symbols": list(symbols),
                      "speakers": dict(speakers), "language": language, "limit": int(limit),
                      "asr": recognizer, "vocoder": voc}

    @property
    def eval_vocoder(self):
        """The evaluation's vocoder (None: Griffin-Lim, or no evaluation)."""
        return self._eval["vocoder"] if self._eval else None

    # ------------------------------------------------------------------ loop API
    def to_device(self, batch: dict, device: torch.device) -> dict:
        nb = device.type == "cuda"
        return {k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in batch.items()}

    def loss(self, model, batch: dict, step: int, epoch: int):
        out = model(batch, alignment=self.alignment)
        return self.criterion(out, batch, kl_weight=self.settings.kl_at(epoch))

    def frames(self, batch: dict) -> int:
        return int(batch["mel_lens"].sum())

    def utterance_ids(self, batch: dict) -> list[str]:
        return list(batch.get("ids", []))

    def checkpoint_meta(self) -> dict:
        return self.meta

    def validate(self, model, batches: list[dict], step: int, samples_dir: Path | None) -> dict:
        """Mean loss terms over the validation set (teacher-forced durations, as the reference),
        plus PNGs (mel, pitch, alignment) and a Griffin-Lim WAV of the first utterances."""
        sums: dict[str, float] = {}
        n = 0
        first_out = None
        kl = self.settings.kl_weight
        for batch in batches:
            out = model(batch, alignment=self.alignment)
            total, terms = self.criterion(out, batch, kl_weight=kl)
            bs = len(batch["ids"])
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v) * bs
            n += bs
            if first_out is None:
                first_out = (batch, out)
        result = {k: v / max(n, 1) for k, v in sums.items()}
        result["loss"] = result.pop("total", float("nan"))
        if samples_dir is not None and first_out is not None and self.val_samples > 0:
            try:
                self._write_samples(model, *first_out, samples_dir)
            except Exception as e:  # a plotting problem must never kill a training run
                log.warning("could not write validation samples to %s: %s", samples_dir, e)
        return result

    def evaluate(self, model, step: int) -> dict | None:
        """The loop's quick evaluation (`eval_every`): free-running synthesis of a few validation
        utterances scored by MCD, duration MAE and, with a recogniser, CER
        (`tts_cli.evaluation.quick.evaluate_checkpoint_quick`). None when there is nothing to score."""
        if not self._eval or not self._eval["rows"]:
            return None

        e = self._eval
        return evaluate_checkpoint_quick(model, e["work"], e["rows"], symbols=e["symbols"], speakers=e["speakers"],
                                         asr=e["asr"], language=e["language"], limit=e["limit"], vocoder=e["vocoder"])

    # ------------------------------------------------------------------ samples
    def _write_samples(self, model, batch: dict, out: dict, samples_dir: Path) -> None:
        samples_dir.mkdir(parents=True, exist_ok=True)
        for b in range(min(self.val_samples, len(batch["ids"]))):
            uid = batch["ids"][b]
            T, N = int(batch["mel_lens"][b]), int(batch["symbol_lens"][b])
            pred = out["mel_out"][b, :T].float().T.cpu()
            tgt = batch["mels"][b, :, :T].float().cpu()
            dur = out["dur_tgt"][b, :N].cpu()
            pitch_pred, pitch_tgt = out["pitch_pred"][b, :N].float().cpu(), out["pitch_tgt"][b, :N].float().cpu()
            if out.get("attn_soft") is not None:
                attn = out["attn_soft"][b, 0, :T, :N].float().cpu()
            else:  # external durations: show the hard alignment they imply
                attn = torch.zeros(T, N)
                ends = torch.cumsum(dur, 0)
                for i in range(N):
                    attn[int(ends[i] - dur[i]):int(ends[i]), i] = 1.0
            _plot(samples_dir / f"{uid}.png", uid, pred, tgt, pitch_pred, pitch_tgt, dur, attn)
            if b == 0:
                # free-running synthesis: what `tts synthesize` would say for this text
                syms = batch["symbols"][b:b + 1, :N]
                spk = batch["speakers"][b:b + 1] if "speakers" in batch else None
                mel = model.infer(syms, batch["symbol_lens"][b:b + 1], speakers=spk, max_frames=4 * T + 100)["mel"][0]
                save_wav(samples_dir / f"{uid}_griffinlim.wav", griffin_lim(mel.float().cpu(), self.audio_cfg),
                          self.audio_cfg.sample_rate)


def _plot(path: Path, uid: str, pred, tgt, pitch_pred, pitch_tgt, dur, attn) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    import io

    fig, ax = plt.subplots(4, 1, figsize=(10, 11))
    vmin, vmax = float(tgt.min()), float(tgt.max())
    ax[0].imshow(tgt.numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax)
    ax[0].set_title(f"{uid}: target mel")
    ax[1].imshow(pred.numpy(), origin="lower", aspect="auto", vmin=vmin, vmax=vmax)
    ax[1].set_title("predicted mel (teacher-forced durations and pitch)")
    # per-symbol pitch drawn over the frames each symbol covers
    ax[2].plot(torch.repeat_interleave(pitch_tgt, dur).numpy(), label="target")
    ax[2].plot(torch.repeat_interleave(pitch_pred, dur).numpy(), label="predicted")
    ax[2].set_title("pitch per symbol (normalised)")
    ax[2].legend(loc="upper right")
    ax[3].imshow(attn.T.numpy(), origin="lower", aspect="auto", interpolation="none")
    ax[3].set_title("alignment (symbols x frames)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["FastPitchTask", "FastPitchTaskSettings"]
