"""The training loop shared by every model we train (FastPitch, HiFi-GAN).

Model-specific parts live in a small *task* object (`tts_cli.training.task.Task`); this module owns what every run
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

import logging
import math
import numbers
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch

from tts_cli.errors import TrainingError
from tts_cli.training.ema import WeightAverage
from tts_cli.training.monitor import MetricsLog, StopFlag, TrainProgress
from tts_cli.training.optim import build_optimizer, build_scheduler
from tts_cli.training.run import write_training_checkpoint
from tts_cli.training.runtime import (
    DistInfo,
    enable_tf32,
    resolve_amp,
    rng_state,
    seed_everything,
    set_rng_state,
    unwrap,
)
from tts_cli.training.settings import TrainSettings
from tts_cli.training.task import Task

log = logging.getLogger(__name__)


    # Optional: evaluate(model, step) -> {"mcd", "dur_mae", "cer", ...} (None where not measured),
    # or None when there is nothing to evaluate; called on rank 0 with the bare model in eval mode
    # at `eval_every` steps. A task without it ignores `eval_every` (one warning).

    # Optional: build_optimizer(model, settings, batches_per_epoch) -> (optimizer, scheduler)
    # replaces the optimizer/schedule built from `settings` (HiFi-GAN: AdamW + per-epoch decay).


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


@dataclass
class _FitState:
    """What one `fit` call carries from step to step."""

    stream: Iterator[tuple[int, int, dict]]
    t0: float  # start of the current logging window
    frames_acc: int = 0  # frames trained on in that window
    fps: float | None = None
    nonfinite_run: int = 0  # skipped steps in a row
    skipped: int = 0
    last_terms: dict = field(default_factory=dict)
    stopped: str = "finished"
    last_path: Path | None = None


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
        write_training_checkpoint(path, payload)
        write_training_checkpoint(self.ckpt_dir / "last.pt", payload)
        if best:
            write_training_checkpoint(self.ckpt_dir / "best.pt", payload)
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
        run = _FitState(stream=self._stream(), t0=time.perf_counter())
        progress = TrainProgress(self.show_progress, total=s.steps, start=self.step)
        self.train_model.train()
        with StopFlag() as stop, progress:
            while self.step < s.steps:
                grad_norm, terms, ids, local_bad = self._forward_backward(run)
                any_bad, want_stop = self._all_any(local_bad, stop.requested)
                if any_bad:
                    self._skip_step(run, ids if local_bad else None, metrics)
                else:
                    self._optimizer_step(run, terms)
                    progress.advance(self.step)
                    self._log_step(run, terms, grad_norm, metrics, progress)
                    self._measure_and_save(run, metrics, want_stop)
                if want_stop:
                    run.stopped = "interrupted"
                    break
            if run.stopped == "interrupted" and run.last_path is None:
                run.last_path = self.save_checkpoint()
        if metrics:
            metrics.close()
        best = self.ckpt_dir / "best.pt"
        return RunSummary(
            step=self.step, epoch=self.epoch, stopped=run.stopped,
            last_checkpoint=str(self.ckpt_dir / "last.pt") if self.dist.is_main else None,
            best_checkpoint=str(best) if best.exists() else None, best_val_loss=self.best_val,
            best_metric=self.best_metric, best_metric_value=self.best_value,
            last_losses=run.last_terms, frames_per_s=run.fps, skipped_steps=run.skipped,
        )

    def _forward_backward(self, run: "_FitState") -> tuple[float, dict, list[str], bool]:
        """Forward/backward over grad_accumulation batches (no host sync in there), then one host
        sync for the gradient norm, the loss and its terms: (grad_norm, terms, ids, non-finite?)."""
        s = self.s
        autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)
        self.optimizer.zero_grad(set_to_none=True)
        losses, terms_list, ids = [], [], []
        for micro in range(s.grad_accumulation):
            epoch, consumed, batch = next(run.stream)
            self.epoch, self.batch_in_epoch = epoch, consumed
            run.frames_acc += self.task.frames(batch)  # on the CPU batch: no device sync
            ids += self.task.utterance_ids(batch)
            batch = self.task.to_device(batch, self.device)
            sync = micro == s.grad_accumulation - 1 or not self.dist.enabled
            with self.ddp.no_sync() if not sync else nullcontext():  # accumulate locally
                with torch.autocast(self.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                    loss, terms = self.task.loss(self.train_model, batch, self.step + 1, epoch)
                loss = loss.float()
                if "after_loss" in self.hooks:
                    loss = self.hooks["after_loss"](self.step + 1, loss)
                # a non-finite loss still goes through backward: every DDP rank must join
                # the gradient all-reduce; the step is skipped afterwards on all ranks together
                self.scaler.scale(loss / s.grad_accumulation).backward()
            losses.append(loss.detach())
            terms_list.append(terms)
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm_t = (torch.nn.utils.clip_grad_norm_(params, s.grad_clip) if params
                  else torch.zeros((), device=self.device))
        keys = list(terms_list[0])
        term_t = torch.stack([torch.stack([t[k].float() for t in terms_list]).mean() for k in keys])
        vals = torch.cat([norm_t.float().reshape(1), torch.stack(losses).mean().reshape(1), term_t]).tolist()
        grad_norm, loss_value = vals[0], vals[1]
        # fp16: the GradScaler skips steps with inf/NaN gradients by itself (and lowers its scale)
        local_bad = not math.isfinite(loss_value) or (not math.isfinite(grad_norm) and not self.scaler.is_enabled())
        return grad_norm, dict(zip(keys, vals[2:])), ids, local_bad

    def _skip_step(self, run: "_FitState", ids: list[str] | None, metrics: MetricsLog | None) -> None:
        """A non-finite loss or gradient on some rank: skip the step everywhere; K in a row stop the
        run naming the utterances (`ids` None: the bad batch was another rank's)."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():
            self.scaler.update()  # closes this step's unscale_; lowers the scale on overflow
        run.nonfinite_run += 1
        run.skipped += 1
        where = ", ".join(ids) if ids is not None else "(on another rank)"
        log.warning("non-finite loss/gradient at step %d (skipped, %d in a row); batch: %s",
                    self.step + 1, run.nonfinite_run, where)
        if run.nonfinite_run >= self.s.max_nonfinite:
            if metrics:
                metrics.close()
            last_ckpt = self.ckpt_dir / "last.pt"
            raise TrainingError(
                f"{run.nonfinite_run} non-finite losses in a row at step {self.step + 1}; last batch's "
                f"utterances: {where}. Check these files, lower the lr, or try --amp-dtype bf16 / --no-amp."
                + (f" The last good checkpoint is {last_ckpt} (--resume continues from it)."
                   if last_ckpt.exists() else "")
            )

    def _optimizer_step(self, run: "_FitState", terms: dict) -> None:
        run.nonfinite_run = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        run.last_terms = terms

    def _log_step(self, run: "_FitState", terms: dict, grad_norm: float, metrics: MetricsLog | None,
                  progress: TrainProgress) -> None:
        if not (self.step % self.s.log_every == 0 or self.step == self.s.steps):
            return
        dt = time.perf_counter() - run.t0
        run.fps = run.frames_acc * self.dist.world_size / dt if dt > 0 else None
        run.frames_acc, run.t0 = 0, time.perf_counter()
        row = {"kind": "train", "step": self.step, "epoch": self.epoch, **terms,
               "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm,
               "frames_per_s": run.fps, "skipped": run.skipped}
        if self.amp == "fp16":
            row["loss_scale"] = float(self.scaler.get_scale())
        if metrics:
            metrics.write(row)
        progress.update(self.step, terms, row["lr"], run.fps)

    def _measure_and_save(self, run: "_FitState", metrics: MetricsLog | None, want_stop: bool) -> None:
        """Validation, then the quick evaluation (rank 0), then checkpoints: best.pt is decided at
        the step of the measurement it follows, so it holds those very weights."""
        s = self.s
        is_best = False
        if self.val_batches and s.val_every and (self.step % s.val_every == 0 or self.step == s.steps):
            is_best = self._validate(metrics)
        if self.eval_every and (self.step % self.eval_every == 0 or self.step == s.steps):
            better = self._evaluate(metrics)
            is_best = better if self.best_metric != "loss" else is_best
        if (s.checkpoint_every and self.step % s.checkpoint_every == 0) or self.step == s.steps or want_stop or is_best:
            run.last_path = self.save_checkpoint(best=is_best) or run.last_path

    def _averaged(self, model: torch.nn.Module):
        """What is measured is what the checkpoint holds: the averaged weights when EMA is on."""
        return self.ema.applied(model) if self.ema is not None else nullcontext()

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
