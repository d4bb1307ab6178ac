"""`tts train`: FastPitch on a workspace (durations from `tts align`, pitch from `tts extract-pitch`).

Config = a preset name (`tiny`, `base`), a recipe (src/tts_cli/resources/recipes/NAME.yaml or a path) or a dict, with
sections `model:` (FastPitchConfig fields or `preset:`) and `train:` (TrainSettings + loss weights
and KL schedule). The resolved config is saved as RUN/config.yaml; `--resume` reads it back.

`init_from` (fine-tuning) loads weights only, remapping symbols by name and resizing speakers
(`tts_cli.checkpoints.init_from`), then trains with a fresh optimizer from step 0. It is a
checkpoint path, or `bundled` / `bundled:<name>` for a bundled voice (`tts_cli.voices`); a recipe
may give it as `train: {init_from: ...}` (the command line's --init-from wins). When the recipe's
`model:` section names no architecture setting (only `preset` and training choices such as
`alignment` or dropouts), the architecture is the init checkpoint's, so a recipe fits any base.
`resume` restores everything from RUN/checkpoints/last.pt and continues to `steps`.
`eval_every` N adds a quick objective evaluation of the validation split every N steps (MCD,
duration MAE, CER with `eval_asr`), logged as {"kind": "eval"} rows of RUN/metrics.jsonl;
`best_metric` (loss | mcd | cer | dur_mae) says what best.pt minimises. These may change on
`--resume`: evaluating never changes the training itself.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from tts_cli.training.run import TrainConfigError, load_train_config
from tts_cli.workspace import Workspace, WorkspaceError, read_jsonl

log = logging.getLogger("tts_cli.train")


# ----------------------------------------------------------------------------- config

def resolve_config(config: str | Path | dict | None) -> dict:
    """{model: {...}, train: {...}, ...} from a preset name, a recipe or a dict."""
    from tts_cli.models.fastpitch import PRESETS
    from tts_cli.models.hifigan import PRESETS as VOCODER_PRESETS

    if isinstance(config, str) and config.lower() in VOCODER_PRESETS:
        raise TrainConfigError(f"--config {config} is a HiFi-GAN preset: add --model hifigan")
    cfg = load_train_config(config, PRESETS, default="base")
    if str(cfg["model"].get("preset", "")).lower() in VOCODER_PRESETS:
        raise TrainConfigError(f"--config {config}: a HiFi-GAN recipe (model preset {cfg['model']['preset']!r}): "
                               "add --model hifigan")
    return cfg


def _checkpoint_meta(ws: Workspace, model_cfg: dict, symbols: list[str], speakers: dict[str, int],
                     pitch_stats: dict, work_cfg: dict) -> dict:
    """The self-describing part of every checkpoint: enough to synthesise without the workspace."""
    import json

    sym_file = json.loads(ws.symbols.read_text(encoding="utf-8"))
    text = {**(work_cfg.get("text") or {}), **{k: v for k, v in sym_file.items() if k != "symbols"}}
    espeak = (work_cfg.get("workspace") or {}).get("espeak") or {}
    if text.get("text_type", "phonemes") == "phonemes":
        text.setdefault("phonemiser", "espeak-ng")
    if espeak.get("version"):
        text["espeak_ng"] = str(espeak["version"])
    if espeak.get("phonemizer"):
        text["phonemizer_version"] = str(espeak["phonemizer"])
    return {
        "kind": "fastpitch",
        "config": model_cfg,
        "symbols": list(symbols),
        "text": text,
        "audio": dict(work_cfg.get("audio") or {}),
        "pitch_stats": pitch_stats,
        "speakers": dict(speakers),
    }


def _is_training_choice(key: str) -> bool:
    """Model settings that do not change the network's shape (a recipe may set them and still
    take the architecture from the checkpoint it fine-tunes)."""
    return key in ("preset", "alignment", "aligner", "aligner_temperature", "max_duration") or \
        key.endswith(("_dropout", "_dropatt", "_dropemb"))


def inherit_architecture(model_section: dict, src_config: dict | None) -> tuple[dict, bool]:
    """(model section, inherited?): the init checkpoint's architecture plus the section's training
    choices, when the section sets no architecture itself; else the section unchanged."""
    from dataclasses import fields

    from tts_cli.models.fastpitch import FastPitchConfig

    if not src_config or not all(_is_training_choice(k) for k in model_section):
        return model_section, False
    known = {f.name for f in fields(FastPitchConfig)}
    arch = {k: v for k, v in src_config.items() if k in known and k not in ("alignment", "n_symbols", "n_speakers")}
    merged = {**arch, **{k: v for k, v in model_section.items() if k != "preset"}}
    if merged.get("alignment") == "learned" and "aligner" not in model_section:
        merged["aligner"] = True  # a voice exported without its aligner: learned alignment trains a fresh one
    return merged, True


def _init_checkpoint(init_from, recipe_init, console, is_main: bool) -> tuple[Path | None, dict | None]:
    """(path, loaded checkpoint) for fine-tuning: --init-from, else the recipe's train.init_from;
    `bundled` / `bundled:<name>` name a bundled voice."""
    from tts_cli import checkpoints
    from tts_cli.voices import VoiceError, resolve_init_from

    spec = init_from if init_from not in (None, "") else recipe_init
    try:
        path = resolve_init_from(spec)
    except VoiceError as e:
        raise TrainConfigError(str(e)) from None
    if path is None:
        return None, None
    try:
        ckpt = checkpoints.require_kind(checkpoints.load_checkpoint(path), "fastpitch", f"--init-from {path}",
                                        "vocoders: tts train --model hifigan")
    except checkpoints.CheckpointError as e:
        raise TrainConfigError(str(e)) from None
    if is_main and str(spec) != str(path):
        console.print(f"[bold]init from[/] {spec} = {path}", highlight=False)
    return path, ckpt


def _freeze(model, names: Sequence[str]) -> list[str]:
    """Freeze parameters under each named part (a module path like `encoder` or `decoder.layers.0`)."""
    frozen = []
    params = dict(model.named_parameters())
    for name in names:
        hit = [n for n in params if n == name or n.startswith(name + ".")]
        if not hit:
            parts = sorted({n.split(".")[0] for n in params})
            raise TrainConfigError(f"--freeze {name!r}: no such part (top-level parts: {', '.join(parts)})")
        for n in hit:
            params[n].requires_grad_(False)
        frozen.append(f"{name} ({sum(params[n].numel() for n in hit):,} params)")
    return frozen


# ----------------------------------------------------------------------------- the stage

def train(
    work: str | Path,
    out: str | Path,
    config: str | Path | dict | None = None,
    steps: int | None = None,
    init_from: str | Path | None = None,  # a checkpoint, or `bundled` / `bundled:<name>`
    resume: bool = False,
    device: str | None = None,
    amp: Any = None,
    alignment: str | None = None,
    batch_frames: int | None = None,
    max_frames: int | None = None,
    freeze: Sequence[str] = (),
    lr: float | None = None,
    compile: bool | None = None,
    num_workers: int | None = None,
    seed: int | None = None,
    eval_every: int | None = None,
    eval_asr: str | None = None,
    eval_utterances: int | None = None,
    best_metric: str | None = None,
    progress: bool = True,
    console=None,
    _hooks: dict | None = None,
) -> dict:
    """Train FastPitch on WORK into the run folder OUT; returns a summary dict."""
    import torch
    from rich.console import Console

    from tts_cli.config import audio_config, deep_merge
    from tts_cli.models.fastpitch import FastPitch, FastPitchConfig
    from tts_cli.training.data import (
        BucketBatchSampler, TTSDataset, collate, ignore_signals, load_pitch_stats, speaker_map,
    )
    from tts_cli.training.fastpitch_task import FastPitchTask, FastPitchTaskSettings
    from tts_cli.training.loop import resolve_amp, seed_everything
    from tts_cli.training.run import distributed_run, fit, open_run, run_lock, train_settings, write_run_config

    console = console or Console(stderr=True)
    with distributed_run(device) as (dist_info, dev), run_lock(Path(out), dist_info.is_main):
        ws = Workspace(work)
        run = Path(out)
        cfg, resume_ckpt = open_run(run, "fastpitch", config, resolve_config, resume, init_from, dist_info.is_main)
        if resume_ckpt is not None:
            ignored = [n for n, v in (("lr", lr), ("batch_frames", batch_frames), ("max_frames", max_frames),
                                      ("freeze", tuple(freeze)), ("alignment", alignment), ("config", config))
                       if v not in (None, ())]
            if ignored and dist_info.is_main:
                log.warning("--resume continues the saved run; ignoring %s (start a new --out to change them)",
                            ", ".join(ignored))
            lr = batch_frames = max_frames = alignment = None
            freeze = tuple(cfg.get("train", {}).get("freeze", ()))

        recipe_init = cfg["train"].get("init_from")
        init_path, init_ckpt = (None, None) if resume_ckpt is not None else \
            _init_checkpoint(init_from, recipe_init, console, dist_info.is_main)

        # ---- workspace facts
        rows = ws.load_manifest()
        symbols = ws.load_symbols()
        speakers = speaker_map(rows)
        pitch_stats = load_pitch_stats(ws.pitch_stats)
        work_cfg = ws.load_config() if ws.config.exists() else {}

        # ---- settings
        train_dict = dict(cfg["train"])
        train_dict.pop("freeze", None)
        train_dict.pop("init_from", None)
        task_settings = FastPitchTaskSettings.pop_from(train_dict)
        if steps is None and "steps" not in train_dict and train_dict.get("steps_per_minute"):
            minutes = sum(float(r.get("duration_s", 0)) for r in rows if r.get("split") == "train") / 60
            train_dict["steps"] = max(1, round(float(train_dict["steps_per_minute"]) * minutes))
            if dist_info.is_main:
                log.info("steps = %d (%.4g steps per minute x %.1f min of training audio)",
                         train_dict["steps"], train_dict["steps_per_minute"], minutes)
        eval_asr, best_metric = _resolve_auto_eval(train_dict, eval_asr, best_metric)
        settings = train_settings(train_dict, steps=steps, lr=lr, batch_frames=batch_frames, max_frames=max_frames,
                                  compile=compile, num_workers=num_workers, seed=seed, amp=amp,
                                  eval_every=eval_every, eval_asr=eval_asr, eval_utterances=eval_utterances,
                                  best_metric=best_metric)

        model_section = dict(cfg["model"])
        if alignment:
            model_section["alignment"] = alignment
        if init_ckpt is not None:
            model_section, inherited = inherit_architecture(model_section, init_ckpt.get("config"))
            if inherited and dist_info.is_main:
                c = init_ckpt["config"]
                log.info("model architecture from the init checkpoint (d_model %s, %s+%s layers); the recipe "
                         "sets no architecture, so its preset is not used", c.get("d_model"),
                         c.get("encoder_layers"), c.get("decoder_layers"))
        model_section.update(n_symbols=len(symbols), n_speakers=max(1, len(speakers)))
        if resume_ckpt is not None:
            model_cfg = FastPitchConfig.from_dict(resume_ckpt["config"])
        else:
            try:
                model_cfg = FastPitchConfig.from_dict(model_section)
            except (TypeError, ValueError) as e:
                raise TrainConfigError(str(e)) from None
        align_mode = model_cfg.alignment

        # ---- model (+ fine-tuning init, freezing, pitch statistics of this workspace)
        seed_everything(settings.seed)
        model = FastPitch(model_cfg)
        load_report = None
        if init_ckpt is not None:
            from tts_cli import checkpoints

            load_report = checkpoints.init_from(model, init_ckpt, symbols, speakers)
            load_report.source = load_report.source or str(init_path)
            if dist_info.is_main:
                load_report.print(console)
        corpus = pitch_stats["corpus"]
        model.pitch_mean.fill_(float(corpus["mean"]))
        model.pitch_std.fill_(float(corpus["std"]))
        frozen = _freeze(model, freeze) if freeze else []

        meta = _checkpoint_meta(ws, model_cfg.to_dict(), symbols, speakers, pitch_stats, work_cfg)
        audio_cfg = audio_config({"audio": meta["audio"]})
        task = FastPitchTask(model, align_mode, task_settings, meta, audio_cfg, val_samples=settings.val_samples)

        # ---- data
        learned = align_mode == "learned"
        train_rows = [r for r in rows if r.get("split") == "train"]
        if not learned and task_settings.skip_flagged:
            train_rows = _without_flagged(ws, train_rows, dist_info.is_main)
        train_ds = TTSDataset(ws, "train", symbols=symbols, speakers=speakers, pitch_stats=pitch_stats,
                              use_durations=not learned, attn_prior=learned, rows=train_rows)
        if len(train_ds) == 0:
            raise WorkspaceError(f"{ws.root}: the train split is empty")
        sampler = BucketBatchSampler(
            train_ds.frame_lengths, settings.batch_frames, max_frames=settings.max_frames, seed=settings.seed,
            num_replicas=dist_info.world_size, rank=dist_info.rank, ids=train_ds.ids,
            max_batch_size=settings.max_batch_size, warn=dist_info.is_main,
        )
        loader = torch.utils.data.DataLoader(
            train_ds, batch_sampler=sampler, collate_fn=collate, num_workers=settings.num_workers,
            pin_memory=dev.type == "cuda", persistent_workers=settings.num_workers > 0,
            worker_init_fn=ignore_signals if settings.num_workers > 0 else None,
            generator=torch.Generator(),  # keep the global RNG (dropout) untouched for exact resume
        )
        val_batches = []
        if dist_info.is_main:
            val_rows = [r for r in rows if r.get("split") == "val"]
            if val_rows:
                val_ds = TTSDataset(ws, "val", symbols=symbols, speakers=speakers, pitch_stats=pitch_stats,
                                    use_durations=not learned, attn_prior=learned)
                vs = BucketBatchSampler(val_ds.frame_lengths, settings.batch_frames, max_frames=settings.max_frames,
                                        shuffle=False, ids=val_ds.ids, warn=False)
                val_batches = [collate([val_ds[i] for i in b]) for b in vs]
            else:
                log.warning("%s: no validation split; best.pt will not be written", ws.root)
            if settings.eval_every and val_rows:
                from tts_cli.evaluation.asr import ASRUnavailable

                try:
                    task.enable_evaluation(ws.root, val_rows, symbols, speakers,
                                           language=str(meta["text"].get("language") or "es"),
                                           asr=settings.eval_asr, limit=settings.eval_utterances,
                                           vocoder=settings.eval_vocoder, audio=audio_cfg)
                except (ASRUnavailable, ValueError) as e:  # VocoderError is a ValueError
                    raise TrainConfigError(f"eval_asr {settings.eval_asr} / eval_vocoder {settings.eval_vocoder}: "
                                           f"{e}") from None

        # ---- run folder
        resolved = deep_merge(cfg, {"model": model_cfg.to_dict(),
                                    "train": {**settings.to_dict(), **task_settings.to_dict(),
                                              "freeze": list(freeze),
                                              **({"init_from": str(init_path)} if init_path else {})}})
        if dist_info.is_main:
            write_run_config(run, resolved)
            n_params = sum(p.numel() for p in model.parameters())
            n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
            console.print(
                f"[bold]train[/] {ws.root} -> {run}: {len(train_ds)} train / {len(val_batches) and sum(len(b['ids']) for b in val_batches)} val "
                f"utterances, {len(sampler)} batches/epoch/rank, {n_params:,} params ({n_train:,} trained), "
                f"alignment {align_mode}, device {dev}, amp {resolve_amp(settings.amp, dev)}, "
                f"world {dist_info.world_size}" + (f", frozen: {', '.join(frozen)}" if frozen else "")
                + (f", resuming at step {resume_ckpt['step']}" if resume_ckpt else "")
            )

        summary = fit(task, settings, run, loader, sampler, val_batches, dev, dist_info, resume_ckpt, progress,
                      _hooks, console, "fastpitch", load_report=_report_rows(load_report))
        if dist_info.is_main and val_batches and summary.get("stopped") == "finished":
            summary["held_out"] = held_out_check(ws, summary, meta, settings.eval_asr, console,
                                                 vocoder=task.eval_vocoder)
        return summary


# intelligibility a user can rely on: Whisper base reads clean real speech at ~1-4 % CER
INTELLIGIBLE_CER = 0.10


def _resolve_auto_eval(train_dict: dict, eval_asr: str | None, best_metric: str | None) -> tuple:
    """`eval_asr: auto` -> whisper-base where the [eval] extra is installed, else none;
    `best_metric: auto` -> cer with a recogniser, else mcd (both track the free-running voice,
    unlike the teacher-forced validation loss)."""
    from tts_cli.evaluation.asr import resolve_asr_name

    asr = eval_asr if eval_asr is not None else train_dict.get("eval_asr")
    if asr is not None:
        eval_asr = resolve_asr_name(asr)
        train_dict.pop("eval_asr", None)
    best = best_metric if best_metric is not None else train_dict.get("best_metric")
    if best == "auto":
        best_metric = "cer" if eval_asr not in (None, "none") else "mcd"
        train_dict.pop("best_metric", None)
    return eval_asr, best_metric


def held_out_check(ws: Workspace, summary: dict, meta: dict, asr: str, console, vocoder=None) -> dict | None:
    """The user's answer to "did it work?": the best checkpoint speaks every validation
    utterance of their own data (never trained on), scored by CER with a recogniser, else by MCD.
    A clear warning when the voice is not intelligible. `vocoder`: the evaluation's (None = Griffin-Lim)."""
    from tts_cli import checkpoints
    from tts_cli.evaluation.asr import ASRUnavailable, load_asr
    from tts_cli.evaluation.quick import evaluate_checkpoint_quick

    path = summary.get("best_checkpoint") or summary.get("last_checkpoint")
    rows = ws.load_manifest("val")
    if not path or not rows:
        return None
    language = str(meta["text"].get("language") or "es")
    try:  # the run's recogniser, else whichever is installed
        recognizer = load_asr(asr if asr not in (None, "none") else "auto", language=language, threads=2)
    except ASRUnavailable:
        recognizer = None
    model = checkpoints.build_fastpitch(checkpoints.load_checkpoint(path))
    result = evaluate_checkpoint_quick(model, ws.root, rows, symbols=meta["symbols"], speakers=meta["speakers"],
                                       asr=recognizer, language=language, limit=len(rows), vocoder=vocoder)
    result["checkpoint"] = str(path)
    n, cer, mcd = result["n"], result.get("cer"), result.get("mcd")
    where = f"{Path(path).name} on {n} held-out utterances of your data (the validation split)"
    if cer is not None:
        heard = "Griffin-Lim" if vocoder is None else " ".join(filter(None, (vocoder.label, "HiFi-GAN")))
        console.print(f"[bold]held-out check[/] {where}: CER {100 * cer:.1f} % (Whisper base, {heard})"
                      + (f", MCD {mcd:.2f} dB" if mcd is not None else ""), highlight=False)
        if cer > INTELLIGIBLE_CER:
            console.print(f"[bold yellow]warning:[/] the voice is not intelligible yet (CER {100 * cer:.0f} % > "
                          f"{100 * INTELLIGIBLE_CER:.0f} %): listen to {Path(path).parent.parent}/samples, check "
                          "WORK/align_report.jsonl, or train longer / on more data", highlight=False)
    elif mcd is not None:
        console.print(f"[bold]held-out check[/] {where}: MCD {mcd:.2f} dB; for an intelligibility score (CER) "
                      "install the [eval] extra (pip install 'tts-cli[eval]')", highlight=False)
    return result


def _without_flagged(ws: Workspace, rows: list[dict], verbose: bool) -> list[dict]:
    """`rows` less the utterances align_report.jsonl flags (each named with its reason), unless that
    would leave none: then all are kept, with a warning."""
    flagged = {r["id"]: "; ".join(r.get("reasons") or ["flagged"]) for r in read_jsonl(ws.align_report)
               if r.get("id")}
    left_out = [r for r in rows if r["id"] in flagged]
    if not left_out:
        return rows
    kept = [r for r in rows if r["id"] not in flagged]
    if not kept:
        log.warning("%s flags every training utterance; training on them all (check the alignment plots)",
                    ws.align_report)
        return rows
    if verbose:
        log.warning("left out %d of %d training utterances that `tts align` flagged (%s; train.skip_flagged: "
                    "false keeps them):", len(left_out), len(rows), ws.align_report)
        for r in left_out[:10]:
            log.warning("  %s: %s", r["id"], flagged[r["id"]])
        if len(left_out) > 10:
            log.warning("  ... and %d more", len(left_out) - 10)
    return kept


def _report_rows(report) -> list | None:
    if report is None:
        return None
    return [{"name": e.name, "action": e.action, "shape": list(e.shape), "detail": e.detail} for e in report.entries]


__all__ = ["train", "resolve_config", "TrainConfigError", "inherit_architecture"]
