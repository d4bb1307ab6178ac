"""The training loop shared by every model we train (FastPitch, HiFi-GAN).

Model-specific parts live in a small *task* object (see `Task`); this module owns what every run
needs and what users of peer toolkits lose most often:
- `steps` = total optimizer steps; `resume` restores model, optimizer, scheduler, GradScaler,
  step, epoch, RNG states (python, numpy, torch, cuda) and the sampler position, so a resumed run
  sees the same batches and the same dropout masks as an uninterrupted one;
- checkpoints written atomically: RUN/checkpoints/step_N.pt (last K kept), last.pt (newest),
  best.pt (lowest validation loss, or lowest `best_metric` of the quick evaluation, see below);
- `eval_every` N: every N steps (and at the last step) the task's `evaluate` (FastPitch: MCD,
  duration MAE, CER with an ASR, `tts_cli.evaluation.quick.evaluate_checkpoint_quick`) runs on
  rank 0 and writes a {"kind": "eval"} row; it never changes the RNG streams, so a run with
  evaluation trains exactly as one without;
- Ctrl-C / SIGTERM: finish the current step, save, exit cleanly;
- a non-finite loss or gradient skips the step with a warning; K in a row stop the run with a
  message naming the utterances of the offending batch;
- AMP on CUDA (bf16, or fp16 + GradScaler), TF32, optional torch.compile;
- DDP from torchrun's env vars (rank 0 logs, validates and writes checkpoints);
- a rich progress bar, RUN/metrics.jsonl always, TensorBoard when installed.
"""
from __future__ import annotations

import json
import logging
import math
import numbers
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch

from tts_cli.training.ema import WeightAverage
from tts_cli.training.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)

BEST_METRICS = ("loss", "mcd", "cer", "dur_mae")  # best.pt keeps the lowest of one of these


class TrainingError(RuntimeError):
    """A run that cannot go on (e.g. K non-finite losses in a row); str() says why and what to do."""


# ----------------------------------------------------------------------------- settings

@dataclass
class TrainSettings:
    """The `train:` section of a recipe. Defaults = NVIDIA's FastPitch recipe where it has one."""

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
    eval_every: int = 0  # quick objective evaluation every N steps (and at the last step); 0 = off
    eval_asr: str = "none"  # recogniser for the evaluation's CER: none | whisper-base
    eval_utterances: int = 4  # validation utterances evaluated each time
    # what the evaluation's CER listens through: griffin-lim (cheap, a higher CER floor) |
    # universal (the default vocoder of `tts synthesize`: what the user will hear) | a HiFi-GAN file
    eval_vocoder: str = "griffin-lim"
    best_metric: str = "loss"  # what best.pt minimises: loss (validation) | mcd | cer | dur_mae (evaluation)
    # exponential moving average of the weights (reference --ema-decay; 0 = off). When on, validation,
    # evaluation and the checkpoints' "model" use the averaged weights; the raw ones resume training.
    ema_decay: float = 0.0

    def __post_init__(self):
        from tts_cli.config import check_choice, check_number

        check_number("steps", self.steps, low=1, integer=True)
        check_number("lr", self.lr, low=0, low_open=True)
        for name in ("batch_frames", "grad_accumulation", "keep_last", "log_every", "max_nonfinite"):
            check_number(name, getattr(self, name), low=1, integer=True)
        for name in ("warmup", "num_workers", "val_samples", "val_every", "checkpoint_every"):  # 0 = none / off
            check_number(name, getattr(self, name), low=0, integer=True)
        for name in ("max_frames", "max_batch_size"):
            if getattr(self, name) is not None:
                check_number(name, getattr(self, name), low=1, integer=True)
        if self.steps_per_minute is not None:
            check_number("steps_per_minute", self.steps_per_minute, low=0, low_open=True)
        check_number("ema_decay", self.ema_decay, low=0, high=0.99999)  # 1 would never move
        check_choice("optimizer", str(self.optimizer).lower(), ("lamb", "adamw", "adam"))
        check_choice("schedule", str(self.schedule).lower(), ("noam", "constant"))
        check_choice("amp", self.amp, AMP_SETTINGS)
        if self.best_metric not in BEST_METRICS:
            raise ValueError(f"best_metric {self.best_metric!r}: use one of {', '.join(BEST_METRICS)} "
                             "(all lower-is-better)")
        if int(self.eval_every) < 0 or int(self.eval_utterances) < 1:
            raise ValueError("eval_every must be >= 0 (0 = off) and eval_utterances >= 1")
        if self.best_metric != "loss" and not self.eval_every:
            raise ValueError(f"best_metric {self.best_metric} is measured by the evaluation: "
                             "set eval_every (--eval-every N) too")
        if self.best_metric == "cer" and str(self.eval_asr).lower() in ("none", "off", ""):
            raise ValueError("best_metric cer needs a recogniser: set eval_asr (--eval-asr whisper-base)")

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainSettings":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown train setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


# ----------------------------------------------------------------------------- task protocol

class Task(Protocol):
    """What the loop needs from a model family.

    model: the nn.Module trained (the loop moves it, wraps it for DDP/compile).
    find_unused_parameters: passed to DDP.
    """

    model: torch.nn.Module
    find_unused_parameters: bool

    def to_device(self, batch: dict, device: torch.device) -> dict: ...

    def loss(self, model: torch.nn.Module, batch: dict, step: int, epoch: int) -> tuple[torch.Tensor, dict]:
        """Forward + loss: (total loss, {term name: scalar tensor})."""

    def frames(self, batch: dict) -> int:
        """Mel frames in the batch (for frames/s)."""

    def utterance_ids(self, batch: dict) -> list[str]: ...

    def validate(self, model: torch.nn.Module, batches: list[dict], step: int, samples_dir: Path | None) -> dict:
        """Mean validation terms incl. "loss"; writes PNG/WAV samples into samples_dir when given."""

    def checkpoint_meta(self) -> dict:
        """The self-describing part of a checkpoint (kind, config, symbols, text, audio, ...)."""

    # Optional: evaluate(model, step) -> {"mcd", "dur_mae", "cer", ...} (None where not measured),
    # or None when there is nothing to evaluate; called on rank 0 with the bare model in eval mode
    # at `eval_every` steps. A task without it ignores `eval_every` (one warning).

    # Optional: build_optimizer(model, settings, batches_per_epoch) -> (optimizer, scheduler)
    # replaces the optimizer/schedule built from `settings` (HiFi-GAN: AdamW + per-epoch decay).


# ----------------------------------------------------------------------------- distributed

@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | None = None) -> tuple[DistInfo, torch.device]:
    """Read torchrun's env vars; init the process group (nccl on CUDA, gloo on CPU)."""
    from tts_cli.config import check_device

    check_device(device)  # ValueError: --device cuda on a CPU-only torch
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda") or device == "auto")
    if world <= 1:
        dev = torch.device(device if device not in (None, "auto") else ("cuda" if want_cuda else "cpu"))
        return DistInfo(), dev
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if want_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank), dev


def cleanup_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- RNG state

def rng_state() -> dict:
    """All RNG states as plain data / tensors (loadable with weights_only=True)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- precision

AMP_OFF = (None, False, "none", "off", "fp32", "tf32", "no")
AMP_AUTO = (True, "auto", "on", "yes")
AMP_SETTINGS = ("auto", "bf16", "fp16", "none") + AMP_OFF[1:] + AMP_AUTO  # what a recipe or --amp-dtype may say


def resolve_amp(amp: Any, device: torch.device) -> str:
    """'none' | 'bf16' | 'fp16'. AMP only on CUDA; 'auto' = bf16 where supported."""
    if device.type != "cuda" or amp in AMP_OFF:
        return "none"
    if amp in AMP_AUTO:
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp in ("bf16", "fp16"):
        return amp
    raise ValueError(f"unknown amp setting {amp!r} (auto | bf16 | fp16 | none)")


def enable_tf32() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


# ----------------------------------------------------------------------------- metrics sinks

class MetricsLog:
    """RUN/metrics.jsonl (one JSON object per logged step) + TensorBoard when installed.

    JSONL is appended line by line (a log, not an artifact); on resume the lines past the resumed
    step are dropped so the file always describes the run that the checkpoints continue.
    """

    def __init__(self, run_dir: Path, resume_step: int | None):
        self.path = run_dir / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            from tts_cli.workspace import atomic_write_jsonl, read_jsonl

            try:
                rows = read_jsonl(self.path)
            except json.JSONDecodeError:  # a torn last line from a kill: keep the readable ones
                rows = []
                for line in self.path.read_text(encoding="utf-8").splitlines():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        break
            atomic_write_jsonl(self.path, [r for r in rows if int(r.get("step", 0)) <= resume_step])
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self.file = self.path.open("a", encoding="utf-8")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        except Exception:  # tensorboard not installed: JSONL only
            self.tb = None

    def write(self, row: dict) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            prefix = {"val": "val/", "eval": "eval/"}.get(row.get("kind"), "train/")
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(prefix + k, v, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


# ----------------------------------------------------------------------------- checkpoints

def _write_checkpoint(path: Path, payload: dict) -> None:
    """Through `tts_cli.checkpoints.save_checkpoint` (atomic, self-describing, weights_only-safe)."""
    from tts_cli.checkpoints import save_checkpoint

    p = dict(payload)
    p.pop("format_version", None)
    save_checkpoint(path, p.pop("model"), p.pop("config"), p.pop("symbols", None), p.pop("step"), **p)


def load_training_checkpoint(path: Path) -> dict:
    """A checkpoint written by this loop (weights_only, format-checked by tts_cli.checkpoints)."""
    from tts_cli.checkpoints import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise TrainingError(str(e)) from None
    for key in ("optimizer", "scheduler", "sampler"):
        if key not in ckpt:
            raise TrainingError(f"{path}: not a resumable training checkpoint (no {key!r}); "
                                "use --init-from to fine-tune from it")
    return ckpt


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)


# ----------------------------------------------------------------------------- stop requests

class StopFlag:
    """Ctrl-C / SIGTERM set a flag; the loop saves and exits after the current step.
    A second Ctrl-C restores the default handler so a stuck run can still be killed."""

    def __init__(self):
        self.requested = False
        self._old: dict = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.requested = True
        log.warning("received %s: saving a checkpoint after this step", signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


# ----------------------------------------------------------------------------- the trainer

@dataclass
class RunSummary:
    step: int
    epoch: int
    stopped: str  # "finished" | "interrupted" | "already done"
    last_checkpoint: str | None
    best_checkpoint: str | None
    best_val_loss: float | None
    best_metric: str = "loss"
    best_metric_value: float | None = None  # the lowest validation loss / evaluation value so far
    last_losses: dict = field(default_factory=dict)
    frames_per_s: float | None = None
    skipped_steps: int = 0


class Trainer:
    def __init__(
        self,
        task: Task,
        settings: TrainSettings,
        run_dir: str | os.PathLike,
        train_loader: torch.utils.data.DataLoader,
        sampler,  # BucketBatchSampler-like: set_epoch, set_start, __len__
        val_batches: list[dict] | None = None,
        device: torch.device | str = "cpu",
        dist_info: DistInfo | None = None,
        resume_from: dict | None = None,
        show_progress: bool = True,
        hooks: dict[str, Callable] | None = None,
    ):
        self.task, self.s = task, settings
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.loader, self.sampler = train_loader, sampler
        self.val_batches = val_batches or []
        self.device = torch.device(device)
        self.dist = dist_info or DistInfo()
        self.show_progress = show_progress and self.dist.is_main
        self.hooks = hooks or {}  # test seams, e.g. "after_loss": f(step, loss) -> loss

        if len(sampler) == 0:
            raise TrainingError("the training split yields no batch (check batch_frames / max_frames)")
        self.amp = resolve_amp(settings.amp, self.device)
        if self.device.type == "cuda":
            enable_tf32()
        self.model = task.model.to(self.device)
        if hasattr(task, "build_optimizer"):  # a task with its own optimizer/schedule (HiFi-GAN)
            self.optimizer, self.scheduler = task.build_optimizer(self.model, settings, len(sampler))
        else:
            self.optimizer = build_optimizer(
                self.model.parameters(), settings.optimizer, lr=settings.lr, betas=settings.betas, eps=settings.eps,
                weight_decay=settings.weight_decay, max_grad_norm=settings.max_grad_norm,
            )
            self.scheduler = build_scheduler(self.optimizer, settings.schedule, settings.warmup)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.best_val: float | None = None
        self.best_eval: float | None = None  # lowest `best_metric` of the evaluation (not for loss)
        self.resumed_step: int | None = None
        self.evaluate_fn = getattr(task, "evaluate", None)
        self.eval_every = int(settings.eval_every) if self.evaluate_fn is not None else 0
        self.best_metric = settings.best_metric if self.eval_every else "loss"
        if settings.eval_every and self.evaluate_fn is None and self.dist.is_main:
            log.warning("eval_every %d: this model (%s) has no quick evaluation; ignored%s", settings.eval_every,
                        type(task).__name__,
                        f", best.pt follows the validation loss, not {settings.best_metric}"
                        if settings.best_metric != "loss" else "")
        self.ema: WeightAverage | None = None
        if resume_from is not None:
            self._restore(resume_from)
        else:
            seed_everything(settings.seed + self.dist.rank)
        if settings.ema_decay and self.ema is None:
            self.ema = WeightAverage(self.model, settings.ema_decay)

        self.train_model: torch.nn.Module = self.model
        self.ddp = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.train_model = self.ddp = DDP(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=getattr(task, "find_unused_parameters", True),
            )
        if settings.compile:
            self.train_model = torch.compile(self.train_model, dynamic=True)

    # ------------------------------------------------------------------ state
    def _restore(self, ckpt: dict) -> None:
        # with EMA, "model" holds the averaged weights and "training_weights" the ones training goes on from
        self.model.load_state_dict(ckpt.get("training_weights") or ckpt["model"])
        if self.s.ema_decay:
            averaged = ckpt["model"] if "training_weights" in ckpt else None
            self.ema = WeightAverage(self.model, self.s.ema_decay, averaged)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        sampler_pos = ckpt.get("sampler") or {}
        self.epoch = int(sampler_pos.get("epoch", ckpt.get("epoch", 0)))
        self.batch_in_epoch = int(sampler_pos.get("batch", 0))
        self.best_val = ckpt.get("best_val_loss")
        saved_metric = ckpt.get("best_metric", "loss")
        if self.best_metric != "loss":
            if saved_metric == self.best_metric:
                self.best_eval = ckpt.get("best_metric_value")
            elif self.dist.is_main:
                log.warning("the run kept best.pt by %s; it now follows %s: the next evaluation replaces best.pt",
                            saved_metric, self.best_metric)
        saved_world = int(sampler_pos.get("world_size", 1))
        if saved_world != self.dist.world_size and self.dist.is_main:
            log.warning("resuming a %d-process run with %d processes: the data order restarts at epoch %d "
                        "(the rest of the run is not bit-identical to an uninterrupted one)",
                        saved_world, self.dist.world_size, self.epoch + 1)
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.resumed_step = self.step
        rng = ckpt.get("rng") or {}
        per_rank = rng.get("ranks")
        if per_rank and self.dist.rank < len(per_rank):
            set_rng_state(per_rank[self.dist.rank])
        elif rng:
            set_rng_state(rng)
        # the resumed run may ask for a different lr/steps; keep the schedule's own state
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", self.s.lr)

    def _payload(self, rng_states: list[dict]) -> dict:
        payload = dict(self.task.checkpoint_meta())
        own = unwrap(self.model).state_dict()
        if self.ema is not None:
            payload.update({"training_weights": own, "ema_decay": self.s.ema_decay})
        payload.update({
            "model": self.ema.averaged if self.ema is not None else own,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "step": self.step,
            "epoch": self.epoch,
            "sampler": {"epoch": self.epoch, "batch": self.batch_in_epoch, "seed": self.s.seed,
                        "world_size": self.dist.world_size},
            "rng": {**rng_states[0], "ranks": rng_states} if rng_states else {},
            "best_val_loss": self.best_val,
            "best_metric": self.best_metric,
            "best_metric_value": self.best_value,
            "train": self.s.to_dict(),
        })
        return payload

    @property
    def best_value(self) -> float | None:
        """The value best.pt was chosen by (lowest so far)."""
        return self.best_val if self.best_metric == "loss" else self.best_eval

    def _gather_rng(self) -> list[dict]:
        """Every rank's RNG state (rank 0 writes them all, so each rank resumes its own)."""
        mine = rng_state()
        if not self.dist.enabled:
            return [mine]
        import torch.distributed as dist

        states: list = [None] * self.dist.world_size
        dist.all_gather_object(states, mine)
        return states

    def save_checkpoint(self, best: bool = False) -> Path | None:
        rng_states = self._gather_rng()  # collective: every rank calls save_checkpoint
        if not self.dist.is_main:
            return None
        payload = self._payload(rng_states)
        path = self.ckpt_dir / f"step_{self.step}.pt"
        _write_checkpoint(path, payload)
        _write_checkpoint(self.ckpt_dir / "last.pt", payload)
        if best:
            _write_checkpoint(self.ckpt_dir / "best.pt", payload)
        self._prune()
        return path

    def _prune(self) -> None:
        ckpts = sorted(self.ckpt_dir.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
        for old in ckpts[: max(0, len(ckpts) - max(1, self.s.keep_last))]:
            old.unlink(missing_ok=True)

    # ------------------------------------------------------------------ data stream
    def _stream(self) -> Iterator[tuple[int, int, dict]]:
        """(epoch, batches consumed in that epoch after this one, batch), forever, from the resume point."""
        epoch, start = self.epoch, self.batch_in_epoch
        while True:
            self.sampler.set_epoch(epoch)
            self.sampler.set_start(start)
            for k, batch in enumerate(self.loader, start=start + 1):
                yield epoch, k, batch
            epoch, start = epoch + 1, 0

    # ------------------------------------------------------------------ collectives
    def _all_any(self, *flags: bool) -> list[bool]:
        """OR of each flag over all ranks (so every rank skips/stops together)."""
        if not self.dist.enabled:
            return list(flags)
        import torch.distributed as dist

        t = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [bool(x) for x in t.tolist()]

    # ------------------------------------------------------------------ main loop
    def fit(self) -> RunSummary:
        s = self.s
        self.run_dir.mkdir(parents=True, exist_ok=True)
        metrics = MetricsLog(self.run_dir, self.resumed_step) if self.dist.is_main else None
        if self.step >= s.steps:
            if metrics:
                metrics.close()
            return RunSummary(self.step, self.epoch, "already done", None, None, self.best_val,
                              self.best_metric, self.best_value)
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)
        stream = self._stream()
        nonfinite_run, skipped, last_terms = 0, 0, {}
        frames_acc, t0, fps = 0, time.perf_counter(), None
        stopped = "finished"
        last_path: Path | None = None
        progress = _Progress(self.show_progress, total=s.steps, start=self.step)
        self.train_model.train()
        with StopFlag() as stop, progress:
            while self.step < s.steps:
                # ---- forward/backward over grad_accumulation batches (no host sync in here)
                self.optimizer.zero_grad(set_to_none=True)
                losses, terms_list, ids = [], [], []
                for micro in range(s.grad_accumulation):
                    epoch, consumed, batch = next(stream)
                    self.epoch, self.batch_in_epoch = epoch, consumed
                    frames_acc += self.task.frames(batch)  # on the CPU batch: no device sync
                    ids += self.task.utterance_ids(batch)
                    batch = self.task.to_device(batch, self.device)
                    sync = micro == s.grad_accumulation - 1 or not self.dist.enabled
                    ctx = self.ddp.no_sync() if not sync else _nullcontext()  # accumulate locally
                    with ctx:
                        with torch.autocast(self.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                            loss, terms = self.task.loss(self.train_model, batch, self.step + 1, epoch)
                        loss = loss.float()
                        if "after_loss" in self.hooks:
                            loss = self.hooks["after_loss"](self.step + 1, loss)
                        # a non-finite loss still goes through backward: every DDP rank must join
                        # the gradient all-reduce; the step is skipped below on all ranks together
                        self.scaler.scale(loss / s.grad_accumulation).backward()
                    losses.append(loss.detach())
                    terms_list.append(terms)
                # ---- one host sync: gradient norm, loss and its terms
                self.scaler.unscale_(self.optimizer)
                params = [p for p in self.model.parameters() if p.grad is not None]
                norm_t = (torch.nn.utils.clip_grad_norm_(params, s.grad_clip) if params
                          else torch.zeros((), device=self.device))
                keys = list(terms_list[0])
                term_t = torch.stack([torch.stack([t[k].float() for t in terms_list]).mean() for k in keys])
                vals = torch.cat([norm_t.float().reshape(1), torch.stack(losses).mean().reshape(1), term_t]).tolist()
                grad_norm, loss_value = vals[0], vals[1]
                terms_acc = dict(zip(keys, vals[2:]))
                # fp16: the GradScaler skips steps with inf/NaN gradients by itself (and lowers its scale)
                local_bad = not math.isfinite(loss_value) or (not math.isfinite(grad_norm) and not self.scaler.is_enabled())
                any_bad, want_stop = self._all_any(local_bad, stop.requested)
                if any_bad:
                    self.optimizer.zero_grad(set_to_none=True)
                    if self.scaler.is_enabled():
                        self.scaler.update()  # closes this step's unscale_; lowers the scale on overflow
                    nonfinite_run += 1
                    skipped += 1
                    where = ", ".join(ids) if local_bad else "(on another rank)"
                    log.warning("non-finite loss/gradient at step %d (skipped, %d in a row); batch: %s",
                                self.step + 1, nonfinite_run, where)
                    if nonfinite_run >= s.max_nonfinite:
                        if metrics:
                            metrics.close()
                        last_ckpt = self.ckpt_dir / "last.pt"
                        raise TrainingError(
                            f"{nonfinite_run} non-finite losses in a row at step {self.step + 1}; last batch's "
                            f"utterances: {where}. Check these files, lower the lr, or try --amp-dtype bf16 / --no-amp."
                            + (f" The last good checkpoint is {last_ckpt} (--resume continues from it)."
                               if last_ckpt.exists() else "")
                        )
                    if want_stop:
                        stopped = "interrupted"
                        break
                    continue
                nonfinite_run = 0
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                if self.ema is not None:
                    self.ema.update(self.model, self.step)
                last_terms = terms_acc
                progress.advance(self.step)
                # ---- logging
                if self.step % s.log_every == 0 or self.step == s.steps:
                    dt = time.perf_counter() - t0
                    fps = frames_acc * self.dist.world_size / dt if dt > 0 else None
                    frames_acc, t0 = 0, time.perf_counter()
                    row = {"kind": "train", "step": self.step, "epoch": self.epoch, **terms_acc,
                           "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm,
                           "frames_per_s": fps, "skipped": skipped}
                    if self.amp == "fp16":
                        row["loss_scale"] = float(self.scaler.get_scale())
                    if metrics:
                        metrics.write(row)
                    progress.update(self.step, terms_acc, row["lr"], fps)
                # ---- validation, then quick evaluation (rank 0), then checkpoints; best.pt is
                # decided at the same step as the measurement it follows, so it holds those weights
                is_best = False
                if self.val_batches and s.val_every and (self.step % s.val_every == 0 or self.step == s.steps):
                    is_best = self._validate(metrics)
                if self.eval_every and (self.step % self.eval_every == 0 or self.step == s.steps):
                    better = self._evaluate(metrics)
                    is_best = better if self.best_metric != "loss" else is_best
                if (s.checkpoint_every and self.step % s.checkpoint_every == 0) or self.step == s.steps or want_stop or is_best:
                    last_path = self.save_checkpoint(best=is_best) or last_path
                if want_stop:
                    stopped = "interrupted"
                    break
            if stopped == "interrupted" and last_path is None:
                last_path = self.save_checkpoint()
        if metrics:
            metrics.close()
        best = self.ckpt_dir / "best.pt"
        return RunSummary(
            step=self.step, epoch=self.epoch, stopped=stopped,
            last_checkpoint=str(self.ckpt_dir / "last.pt") if self.dist.is_main else None,
            best_checkpoint=str(best) if best.exists() else None, best_val_loss=self.best_val,
            best_metric=self.best_metric, best_metric_value=self.best_value,
            last_losses=last_terms, frames_per_s=fps, skipped_steps=skipped,
        )

    def _averaged(self, model: torch.nn.Module):
        """What is measured is what the checkpoint holds: the averaged weights when EMA is on."""
        return self.ema.applied(model) if self.ema is not None else _nullcontext()

    def _validate(self, metrics: MetricsLog | None) -> bool:
        """Validation loss on rank 0 (other ranks wait at the next collective). True = new best."""
        is_best = False
        if self.dist.is_main:
            model = unwrap(self.model)
            model.eval()
            samples = self.run_dir / "samples" / f"step_{self.step}"
            batches = [self.task.to_device(b, self.device) for b in self.val_batches]
            with torch.no_grad(), self._averaged(model):
                result = self.task.validate(model, batches, self.step, samples)
            model.train()
            val_loss = float(result.get("loss", float("nan")))
            if math.isfinite(val_loss) and (self.best_val is None or val_loss < self.best_val):
                self.best_val = val_loss
                is_best = self.best_metric == "loss"
            if metrics:
                metrics.write({"kind": "val", "step": self.step, "epoch": self.epoch, **result})
            log.info("step %d validation: %s", self.step, ", ".join(f"{k} {v:.4g}" for k, v in result.items()))
        (is_best,) = self._all_any(is_best)
        return is_best

    def _evaluate(self, metrics: MetricsLog | None) -> bool:
        """The task's quick evaluation on rank 0 (other ranks wait at the next collective).
        True = a new lowest `best_metric`. The RNG states are put back afterwards, whatever the
        recogniser or vocoder draws, so evaluating never changes the training run."""
        is_best = False
        if self.dist.is_main:
            model = unwrap(self.model)
            saved_rng = rng_state()
            model.eval()
            try:
                with torch.no_grad(), self._averaged(model):
                    result = self.evaluate_fn(model, self.step)
            finally:
                set_rng_state(saved_rng)
                model.train()
            if result is None:  # nothing to evaluate (e.g. no validation split): say so once
                log.warning("eval_every: nothing to evaluate (no validation utterances); evaluation is off")
                self.eval_every = 0
            else:
                # plain floats for JSON (numpy scalars too); the utterance count stays an int
                row = {k: (int(v) if k == "n" else float(v)) if isinstance(v, numbers.Real) else v
                       for k, v in result.items()}
                if metrics:
                    metrics.write({"kind": "eval", "step": self.step, "epoch": self.epoch, **row})
                log.info("step %d evaluation: %s", self.step,
                         ", ".join(f"{k} {v:.4g}" for k, v in row.items() if isinstance(v, float)) or "no numbers")
                if self.best_metric != "loss":
                    value = row.get(self.best_metric)
                    if value is None or not math.isfinite(value):
                        log.warning("step %d: the evaluation gave no %s; best.pt unchanged", self.step,
                                    self.best_metric)
                    elif self.best_eval is None or value < self.best_eval:
                        self.best_eval, is_best = value, True
        if self.dist.enabled:  # every rank must agree, also when rank 0 switched evaluation off
            import torch.distributed as dist

            t = torch.tensor([float(is_best), float(self.eval_every)], device=self.device)
            dist.broadcast(t, src=0)
            is_best, self.eval_every = bool(t[0]), int(t[1])
        return is_best


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Progress:
    """A rich progress bar: step, each loss term, lr, frames/s (no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, start: int):
        self.enabled, self.total, self.start = enabled, total, start
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self.bar.__enter__()
            self.task_id = self.bar.add_task("train", total=self.total, completed=self.start, info="")
        return self

    def advance(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task_id, completed=step)

    def update(self, step: int, terms: dict, lr: float, fps: float | None) -> None:
        if self.bar is None:
            return
        info = " ".join(f"{k} {v:.3f}" for k, v in terms.items())
        info += f" lr {lr:.2e}" + (f" {fps / 1000:.1f}k fr/s" if fps else "")
        self.bar.update(self.task_id, completed=step, info=info)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False


__all__ = [
    "TrainSettings", "Task", "Trainer", "TrainingError", "RunSummary", "DistInfo", "setup_distributed",
    "cleanup_distributed", "load_training_checkpoint", "rng_state", "set_rng_state", "seed_everything",
    "resolve_amp", "unwrap",
]
