"""Training the learned aligner of `tts align` (forward-sum loss, optional binarisation loss) as a
job of the one training skeleton (run folder WORK/align_run, resumable; WORK/aligner.pt written at
the end), or started from another aligner (`init_from`); and reading an aligner out of an
aligner.pt or a FastPitch checkpoint with its joint aligner."""
from __future__ import annotations

import functools
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from tts_cli.checkpoints.aligner import ALIGNER_FORMAT, read_aligner_file, read_aligner_source, save_aligner_checkpoint
from tts_cli.config import audio_dict, audio_differences
from tts_cli.errors import AlignmentError, TTSError, VoiceError
from tts_cli.inference.voices import default_voice
from tts_cli.inference.voices import resolve_init_from as voice_file
from tts_cli.models.alignment import Aligner, BinarizationLoss, ForwardSumLoss, binarize
from tts_cli.training.init_from import LoadReport, _remap_symbols
from tts_cli.training.runtime import seed_everything
from tts_cli.training.settings import TrainSettings
from tts_cli.training.skeleton import RunContext, TrainingPlan, run_training
from tts_cli.workspace import Workspace

from .align_data import QueryFeatures, Utterance, batch_for_step, collate
from .align_settings import AlignConfig

# --------------------------------------------------------------------------- checkpoints

def _build_model(n_symbols: int, n_mel: int, cfg: AlignConfig):
    return Aligner(n_symbols, n_mel, cfg.n_text_channels, cfg.n_att_channels, cfg.temperature)


def aligner_from_checkpoint(path: str | Path, symbols: list[str], n_mel: int, temperature: float = 0.0005,
                            new_symbols: bool = False):
    """An `Aligner` with the weights of a trained FastPitch checkpoint (`attention.*` +
    `encoder.word_emb.weight`) or of a standalone aligner.pt, its embedding rows re-ordered to
    `symbols` when the checkpoint carries its own symbol table. new_symbols=True (a start for
    further training): symbols the checkpoint lacks start at the nearest ones it knows; False:
    they are an error (an aligner used as it is cannot place a sound it never saw)."""
    import torch

    path = Path(path)
    if not path.exists():
        raise AlignmentError(f"{path}: checkpoint not found")
    ckpt = read_aligner_source(path)
    sd = ckpt["model"]
    att = {k[len("attention."):]: v for k, v in sd.items() if k.startswith("attention.")}
    emb = sd.get("encoder.word_emb.weight", sd.get("embedding.weight"))
    if not att or emb is None:
        raise AlignmentError(f"{path}: no aligner weights (expected `attention.*` and `encoder.word_emb.weight` "
                             "or `embedding.weight`); was this FastPitch trained with the joint aligner?")
    n_text = att["key_proj.0.conv.weight"].shape[1]
    n_att = att["key_proj.2.conv.weight"].shape[0]
    ck_mel = att["query_proj.0.conv.weight"].shape[1]
    if ck_mel != n_mel:
        raise AlignmentError(f"{path}: aligner expects {ck_mel} mel channels, the workspace has {n_mel}")
    ck_symbols = ckpt.get("symbols")
    if ck_symbols is not None:
        where = {s: i for i, s in enumerate(ck_symbols)}
        missing = [s for s in symbols[1:] if s not in where]
        if missing and not new_symbols:
            raise AlignmentError(f"{path}: symbols of this workspace unknown to the checkpoint: {' '.join(missing[:20])}")
        if missing:
            emb = _remap_symbols(emb, torch.empty(len(symbols), emb.shape[1]), list(ck_symbols), list(symbols), 0,
                                 LoadReport(str(path)))
        else:
            emb = emb[[where.get(s, 0) for s in symbols]]
    elif emb.shape[0] != len(symbols):
        raise AlignmentError(f"{path}: checkpoint has {emb.shape[0]} symbols and no symbol table; "
                             f"the workspace has {len(symbols)}")
    cfg_temp = (ckpt.get("config") or {}).get("temperature", temperature) if isinstance(ckpt.get("config"), dict) else temperature
    model = Aligner(len(symbols), n_mel, n_text, n_att, float(cfg_temp))
    model.embedding.weight.data.copy_(emb)
    model.attention.load_state_dict(att, strict=False)
    missing = [k for k in model.attention.state_dict() if k not in att and not k.startswith("attn_proj")]
    if missing:
        raise AlignmentError(f"{path}: aligner weights incomplete, missing attention.{missing[0]}")
    # a standalone aligner.pt says which query features it learned on; FastPitch's aligner used its mels
    ck_cfg = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    query_win = int(ck_cfg.get("query_win_length") or 0) if ckpt.get("format") == ALIGNER_FORMAT else 0
    return model, {"n_text_channels": n_text, "n_att_channels": n_att, "temperature": float(cfg_temp),
                   "query_win_length": query_win, "audio": dict(ckpt.get("audio") or {})}


# --------------------------------------------------------------------------- training

RUN_DIR = "align_run"  # WORK/align_run: the aligner's run folder (checkpoints/last.pt resumes it)


def train_aligner(ws: Workspace, items: list[Utterance], symbols: list[str], n_mel: int, cfg: AlignConfig, seed: int,
                  device: str, console, features: QueryFeatures | None = None, fresh: bool = False) -> tuple[Any, dict]:
    """Train (or resume, or skip when the run is complete) through the one training skeleton;
    WORK/aligner.pt is written from the result. Returns (model, info). fresh: start anew whatever
    the run holds (aligner.pt is replaced only when the new run finishes, so a start that fails keeps it)."""
    run = ws.root / RUN_DIR
    if fresh:
        if run.exists():
            shutil.rmtree(run / "checkpoints", ignore_errors=True)
    elif not (run / "checkpoints" / "last.pt").exists():
        done = _finished_aligner(ws, cfg, symbols, n_mel, device)
        if done is not None:  # a complete aligner.pt without its run folder (copied, or an older tts-cli)
            return done
    job = AlignerJob(items, symbols, n_mel, cfg, seed, features, _audio_settings(ws))
    t0 = time.perf_counter()
    summary = run_training(job, ws.root, run, resume=(run / "checkpoints" / "last.pt").exists(), device=device,
                           console=console, option="WORK")
    if summary["stopped"] == "interrupted":  # saved in WORK/align_run: `tts align` resumes it
        raise KeyboardInterrupt
    info = {"start_step": job.start_step, "steps": cfg.steps, "nan_steps": int(summary.get("skipped_steps") or 0),
            "trained_steps": int(summary["step"]) - job.start_step, "final_loss": job.final_loss,
            "train_seconds": time.perf_counter() - t0}
    if job.started_from is not None:
        info["init_from"] = str(job.started_from)
    return job.model, info


def _finished_aligner(ws: Workspace, cfg: AlignConfig, symbols: list[str], n_mel: int, device: str):
    """(model, info) from WORK/aligner.pt when it already holds `cfg.steps` steps of training on
    these symbols and mels, else None."""
    done = read_aligner_file(ws.aligner_ckpt)
    if done is None or int(done.get("step", 0)) < cfg.steps:
        return None
    _check_resumable(ws.aligner_ckpt, done, cfg, symbols, n_mel)
    model = _build_model(len(symbols), n_mel, cfg)
    model.load_state_dict(done["model"])
    step = int(done["step"])
    return model.to(device), {"start_step": step, "steps": cfg.steps, "nan_steps": 0, "trained_steps": 0,
                              "final_loss": done.get("loss")}


class StepBatches:
    """Batch sampler whose batch k is `batch_for_step(seed, k)`: the data order is a function of
    the step, so a resumed run sees the batches an uninterrupted one would."""

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, steps: int):
        self.lengths, self.batch_size, self.seed, self.steps = lengths, batch_size, seed, steps
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_start(self, start: int) -> None:
        self.start = start

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for k in range(self.start, self.steps):
            yield [int(i) for i in batch_for_step(len(self.lengths), self.lengths, self.batch_size, self.seed,
                                                  self.epoch * self.steps + k)]


class AlignerTask:
    """What the shared Trainer calls each step: the forward-sum loss (+ the binarisation loss once
    `bin_start` is reached), Adam with a constant rate, and the aligner's checkpoint header."""

    find_unused_parameters = False

    def __init__(self, model, cfg: AlignConfig, meta: dict):
        self.model, self.cfg, self.meta = model, cfg, meta
        self.ctc, self.bin = ForwardSumLoss(cfg.blank_logprob), BinarizationLoss()

    def to_device(self, batch: dict, device) -> dict:
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}

    def loss(self, model, batch: dict, step: int, epoch: int):
        import torch

        soft, logprob = model(batch["text"], batch["tlen"], batch["mel"], batch["prior"])
        loss_ctc = self.ctc(logprob, batch["tlen"], batch["mlen"], batch["silent"])
        w = _bin_weight(self.cfg, step - 1)  # `step` counts from 1
        loss_bin = (self.bin(binarize(logprob, batch["tlen"], batch["mlen"], batch["silent"]), soft) if w > 0
                    else torch.zeros((), device=logprob.device))
        return loss_ctc + w * loss_bin, {"fwd_sum": loss_ctc.detach(), "bin": loss_bin.detach()}

    def frames(self, batch: dict) -> int:
        return int(batch["mlen"].sum())

    def utterance_ids(self, batch: dict) -> list[str]:
        return batch["ids"]

    def validate(self, model, batches: list, step: int, samples_dir) -> dict:
        return {}

    def checkpoint_meta(self) -> dict:
        return dict(self.meta)

    def build_optimizer(self, model, settings, batches_per_epoch: int):
        import torch

        opt = torch.optim.Adam(model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


class AlignerJob:
    """The aligner as a job of the training skeleton; its run folder is WORK/align_run."""

    kind = "aligner"

    def __init__(self, items, symbols, n_mel: int, cfg: AlignConfig, seed: int, features, audio: dict):
        self.items, self.symbols, self.n_mel, self.cfg, self.seed = items, list(symbols), n_mel, cfg, seed
        self.features, self.audio = features, audio
        self.model, self.start_step, self.started_from, self.final_loss = None, 0, None, None

    def resolve_config(self, config) -> dict:
        return {"align": asdict(self.cfg), "seed": self.seed}  # the settings of now, also on resume

    def prepare(self, ctx: RunContext) -> TrainingPlan:
        cfg = self.cfg
        if ctx.resume_ckpt is not None:
            _check_resumable(ctx.run / "checkpoints" / "last.pt", ctx.resume_ckpt, cfg, self.symbols, self.n_mel)
            self.start_step = int(ctx.resume_ckpt["step"])
            if self.start_step < cfg.steps:
                ctx.console.print(f"resuming aligner training from {ctx.run} at step {self.start_step}")
        seed_everything(self.seed)
        model = _build_model(len(self.symbols), self.n_mel, cfg)
        if ctx.resume_ckpt is None:
            start, self.started_from = _init_model(ctx.ws, cfg, self.symbols, self.n_mel, ctx.console)
            model = start if start is not None else model
        self.model = model
        meta = {"kind": "aligner", "config": asdict(cfg), "symbols": self.symbols, "audio": dict(self.audio),
                "n_mel_channels": int(self.n_mel), "seed": int(self.seed)}
        settings = TrainSettings(steps=cfg.steps, lr=cfg.lr, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
                                 checkpoint_every=cfg.save_every, keep_last=1, val_every=0, log_every=10, amp="none",
                                 num_workers=0, seed=self.seed, max_nonfinite=max(1, cfg.steps))
        sampler = StepBatches(np.array([u.n_frames for u in self.items]), cfg.batch_size, self.seed, cfg.steps)
        loader = torch_loader(self.items, sampler, functools.partial(
            _collate_batch, ctx.ws, n_mel=self.n_mel, cfg=cfg, features=self.features))
        banner = (f"[bold]aligner[/] {len(self.items)} utterances, {sum(p.numel() for p in model.parameters()):,} "
                  f"params, {cfg.steps} steps of {cfg.batch_size}, device {ctx.device}")
        return TrainingPlan(AlignerTask(model, cfg, meta), settings, loader, sampler, [], self.resolve_config(None),
                            banner, meta=meta, show_summary=False)

    def finish(self, ctx: RunContext, plan: TrainingPlan, summary: dict) -> dict:
        """WORK/aligner.pt from the run: what voices ship and what `align init_from` reads."""
        if summary["stopped"] == "interrupted":
            return summary
        self.final_loss = (summary.get("losses") or {}).get("fwd_sum")
        if self.final_loss is None:  # nothing left to train: the loss the finished run recorded
            self.final_loss = (read_aligner_file(ctx.ws.aligner_ckpt) or {}).get("loss")
        save_aligner_checkpoint(ctx.ws.aligner_ckpt, self.model, int(summary["step"]), self.cfg, self.symbols,
                                self.n_mel, self.seed, self.final_loss, self.audio)
        return summary


def torch_loader(items, sampler, collate_fn):
    import torch

    return torch.utils.data.DataLoader(items, batch_sampler=sampler, collate_fn=collate_fn, num_workers=0,
                                       generator=torch.Generator())


def _collate_batch(ws: Workspace, batch: list[Utterance], *, n_mel: int, cfg: AlignConfig, features) -> dict:
    text, tlen, mel, mlen, prior, silent = collate(ws, batch, n_mel, cfg.prior_scaling, cfg.skip_silent, features)
    return {"text": text, "tlen": tlen, "mel": mel, "mlen": mlen, "prior": prior, "silent": silent,
            "ids": [u.id for u in batch]}


def _check_resumable(path: Path, ckpt: dict, cfg: AlignConfig, symbols: list[str], n_mel: int) -> None:
    """AlignmentError when the run was trained on other symbols, mels, model size or query
    features: resuming would mix two models."""
    if ckpt.get("symbols") != list(symbols) or int(ckpt.get("n_mel_channels", -1)) != n_mel:
        raise AlignmentError(f"{path}: trained on another symbol table or mel size; use --force to retrain")
    shape_keys = ("n_text_channels", "n_att_channels")
    if any(ckpt["config"].get(k) != getattr(cfg, k) for k in shape_keys):
        raise AlignmentError(f"{path}: model size differs from the settings; use --force to retrain")
    if int(ckpt["config"].get("query_win_length") or 0) != int(cfg.query_win_length or 0):
        raise AlignmentError(f"{path}: trained on other query features (query_win_length "
                             f"{ckpt['config'].get('query_win_length') or 0}, now {cfg.query_win_length}); "
                             "use --force to retrain")


def _audio_settings(ws: Workspace) -> dict:
    """The workspace's mel settings (what an aligner.pt records it learned on)."""
    return audio_dict(ws.load_config(missing_ok=True).get("audio") or {})


def _init_model(ws: Workspace, cfg: AlignConfig, symbols: list[str], n_mel: int, console):
    """(model, source) of the aligner `init_from` names, for further training on this workspace, or
    (None, None): from scratch. It must be of the configured size and have learned on the same mel
    settings and query features; "auto" passes over one that does not fit (said so), else an error."""
    auto = is_auto(cfg.init_from)
    try:
        source = resolve_init_from(cfg.init_from, ws.language())
        if source is None:
            return None, None
        model, dims = aligner_from_checkpoint(source, symbols, n_mel, cfg.temperature, new_symbols=True)
        for key in ("n_text_channels", "n_att_channels"):
            if int(dims[key]) != int(getattr(cfg, key)):
                raise AlignmentError(f"align init_from {source}: {key} is {dims[key]} there, {getattr(cfg, key)} here")
        if int(dims["query_win_length"] or 0) != int(cfg.query_win_length or 0):
            raise AlignmentError(f"align init_from {source}: learned on query features with query_win_length "
                                 f"{dims['query_win_length']}, this workspace uses {cfg.query_win_length}")
        differ = audio_differences(dims["audio"], _audio_settings(ws), "there", "here")
        if differ:
            raise AlignmentError(f"align init_from {source}: learned on other mels ({'; '.join(differ)})")
    except (TTSError, ValueError, FileNotFoundError) as e:  # a broken voice or file: auto starts from scratch
        if not auto:
            raise
        console.print(f"aligner starts from scratch: the bundled one does not fit ({e})", highlight=False)
        return None, None
    console.print(f"aligner starts from {source}", highlight=False)
    return model, source


def is_auto(spec: str) -> bool:
    return str(spec or "").strip().lower() == "auto"


def resolve_init_from(spec: str, language: str | None = None) -> Path | None:
    """`init_from` -> the aligner file to start from, or None (from scratch): "none" (or "");
    "auto" (the aligner of the bundled voice of `language` if one is bundled, else of the default
    voice; None when there is none); "bundled" / "bundled:NAME"; a path to an aligner.pt or a
    FastPitch checkpoint with its joint aligner (it must exist)."""
    spec = str(spec or "").strip()
    if spec.lower() in ("", "none", "scratch"):
        return None
    try:
        if is_auto(spec):
            voice = default_voice(language)
            return voice.aligner_path if voice is not None else None
        path = voice_file(spec, part="aligner", language=language)
    except VoiceError as e:
        raise AlignmentError(str(e)) from None
    path = Path(path).expanduser()
    if not path.exists():
        raise AlignmentError(f"align init_from: {path} not found")
    return path


def _bin_weight(cfg: AlignConfig, step: int) -> float:
    if step < cfg.bin_start or cfg.bin_weight <= 0:
        return 0.0
    return cfg.bin_weight * min(1.0, (step - cfg.bin_start + 1) / max(1, cfg.bin_warmup))
