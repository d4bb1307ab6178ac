"""The `train:` section of a recipe, typed and checked: what every training run is told."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from tts_cli.config import Settings, check_choice, check_number
from tts_cli.errors import ConfigError
from tts_cli.training.runtime import AMP_SETTINGS

BEST_METRICS = ("loss", "mcd", "cer", "cer_chars", "dur_mae")  # best.pt keeps the lowest of one of these


@dataclass
class TrainSettings(Settings):
    """The `train:` section of a recipe. Defaults = NVIDIA's FastPitch recipe where it has one."""

    SECTION: ClassVar[str] = "train"

    steps: int = 1000
    lr: float = 0.1
    optimizer: str = "lamb"  # lamb | adamw
    betas: tuple = (0.9, 0.98)
    eps: float = 1e-9
    weight_decay: float = 1e-6
    max_grad_norm: float = 1.0  # LAMB's internal global-norm clip (apex FusedLAMB default)
    grad_clip: float = 1000.0  # clip_grad_norm_ before the step (reference --grad-clip-thresh)
    schedule: str = "noam"  # noam (reference warm-up then 1/sqrt(step)) | constant
    warmup: int = 1000
    grad_accumulation: int = 1
    batch_frames: int = 16 * 800  # padded mel frames per batch (per GPU)
    max_frames: int | None = None  # longer clips are skipped (default: the budget)
    max_batch_size: int | None = None
    checkpoint_every: int = 1000
    keep_last: int = 3
    val_every: int = 1000
    val_samples: int = 2  # utterances rendered to RUN/samples at each validation
    log_every: int = 10
    amp: Any = "auto"  # auto (bf16 on CUDA if supported) | bf16 | fp16 | none
    compile: bool = False
    seed: int = 1234
    max_nonfinite: int = 10  # consecutive non-finite steps before the run stops
    num_workers: int = 2
    steps_per_minute: float | None = None  # when steps is unset: steps = this x minutes of train audio
    # the same, when the init checkpoint (fine-tuning) already speaks the workspace's language
    steps_per_minute_in_language: float | None = None
    eval_every: int = 0  # quick objective evaluation every N steps (and at the last step); 0 = off
    eval_asr: str = "none"  # recogniser for the evaluation's CER: none | whisper-base
    eval_utterances: int = 4  # validation utterances evaluated each time
    # what the evaluation's CER listens through: griffin-lim (cheap, a higher CER floor) |
    # universal (the default vocoder of `tts synthesize`: what the user will hear) | a HiFi-GAN file
    eval_vocoder: str = "griffin-lim"
    best_metric: str = "loss"  # what best.pt minimises: loss (validation) | mcd | cer | cer_chars | dur_mae (evaluation)
    # exponential moving average of the weights (reference --ema-decay; 0 = off). When on, validation,
    # evaluation and the checkpoints' "model" use the averaged weights; the raw ones resume training.
    ema_decay: float = 0.0

    def __post_init__(self):
        check_number("steps", self.steps, low=1, integer=True)
        check_number("lr", self.lr, low=0, low_open=True)
        for name in ("batch_frames", "grad_accumulation", "keep_last", "log_every", "max_nonfinite"):
            check_number(name, getattr(self, name), low=1, integer=True)
        for name in ("warmup", "num_workers", "val_samples", "val_every", "checkpoint_every"):  # 0 = none / off
            check_number(name, getattr(self, name), low=0, integer=True)
        for name in ("max_frames", "max_batch_size"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=1, integer=True)
        for name in ("steps_per_minute", "steps_per_minute_in_language"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=0, low_open=True)
        check_number("ema_decay", self.ema_decay, low=0, high=0.99999)  # 1 would never move
        check_choice("optimizer", str(self.optimizer).lower(), ("lamb", "adamw", "adam"))
        check_choice("schedule", str(self.schedule).lower(), ("noam", "constant"))
        check_choice("amp", self.amp, AMP_SETTINGS)
        if self.best_metric not in BEST_METRICS:
            raise ConfigError(f"best_metric {self.best_metric!r}: use one of {', '.join(BEST_METRICS)} "
                             "(all lower-is-better)")
        if int(self.eval_every) < 0 or int(self.eval_utterances) < 1:
            raise ConfigError("eval_every must be >= 0 (0 = off) and eval_utterances >= 1")
        if self.best_metric != "loss" and not self.eval_every:
            raise ConfigError(f"best_metric {self.best_metric} is measured by the evaluation: "
                             "set eval_every (--eval-every N) too")
        if self.best_metric == "cer" and str(self.eval_asr).lower() in ("none", "off", ""):
            raise ConfigError("best_metric cer needs a recogniser: set eval_asr (--eval-asr whisper-base)")

    @classmethod
    def from_dict(cls, d: dict | None = None) -> "TrainSettings":
        d = dict(d or {})
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return super().from_dict(d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d
