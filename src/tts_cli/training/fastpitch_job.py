"""FastPitch as a training job: its recipe, its model (fresh, fine-tuned or resumed), its data.

Config = a preset name (`tiny`, `base`), a recipe (src/tts_cli/resources/recipes/NAME.yaml or a
path) or a dict, with sections `model:` (FastPitchConfig fields or `preset:`) and `train:`
(TrainSettings + loss weights and KL schedule).

`init_from` (fine-tuning) loads weights only, remapping symbols by name and resizing speakers
(`tts_cli.training.init_from`), then trains with a fresh optimizer from step 0. It is a checkpoint
path, or `bundled` / `bundled:<name>` for a bundled voice (`tts_cli.inference.voices`); a recipe
may give it as `train: {init_from: ...}` (the command line's --init-from wins). When the recipe's
`model:` section names no architecture setting (only `preset` and training choices such as
`alignment` or dropouts), the architecture is the init checkpoint's, so a recipe fits any base.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from tts_cli.checkpoints.format import CheckpointHeader, require_kind
from tts_cli.checkpoints.load import load_checkpoint
from tts_cli.config import audio_config, deep_merge
from tts_cli.errors import (
    ASRUnavailable,
    CheckpointError,
    TrainConfigError,
    VocoderError,
    VoiceError,
    WorkspaceError,
)
from tts_cli.evaluation.asr import resolve_asr_name
from tts_cli.evaluation.held_out import held_out_check
from tts_cli.inference.voices import resolve_init_from, same_language
from tts_cli.models.fastpitch import PRESETS, FastPitch, FastPitchConfig
from tts_cli.models.hifigan import PRESETS as VOCODER_PRESETS
from tts_cli.training.data import (BucketBatchSampler, ConcatTTSDataset, TTSDataset, collate, ignore_signals,
                                   load_pitch_stats, speaker_map)
from tts_cli.training.fastpitch_task import FastPitchTask, FastPitchTaskSettings
from tts_cli.training.init_from import init_from as init_weights_from
from tts_cli.training.replay import load_replay, make_replay, plan_replay
from tts_cli.training.run import from_recipe, load_train_config, train_settings
from tts_cli.training.runtime import resolve_amp, seed_everything
from tts_cli.training.skeleton import RunContext, TrainingPlan
from tts_cli.training.timing_check import TIMING_GAP_LIMIT, timing_gap
from tts_cli.workspace import Workspace, read_jsonl

log = logging.getLogger("tts_cli.train")


def resolve_config(config: str | Path | dict | None) -> dict:
    """{model: {...}, train: {...}, ...} from a preset name, a recipe or a dict."""
    if isinstance(config, str) and config.lower() in VOCODER_PRESETS:
        raise TrainConfigError(f"--config {config} is a HiFi-GAN preset: add --model hifigan")
    cfg = load_train_config(config, PRESETS, default="base")
    if str(cfg["model"].get("preset", "")).lower() in VOCODER_PRESETS:
        raise TrainConfigError(f"--config {config}: a HiFi-GAN recipe (model preset {cfg['model']['preset']!r}): "
                               "add --model hifigan")
    return cfg


@dataclass
class FastPitchOptions:
    """Command-line values over the recipe (None / () = not given)."""

    steps: int | None = None
    init_from: str | Path | None = None
    amp: Any = None
    alignment: str | None = None
    batch_frames: int | None = None
    max_frames: int | None = None
    freeze: Sequence[str] = ()
    lr: float | None = None
    compile: bool | None = None
    num_workers: int | None = None
    seed: int | None = None
    eval_every: int | None = None
    eval_asr: str | None = None
    eval_utterances: int | None = None
    best_metric: str | None = None
    config: Any = None  # only to name it when --resume ignores it


@dataclass
class _Facts:
    """What the workspace says: utterances, symbols, speakers, pitch statistics, its settings."""

    rows: list
    symbols: list
    speakers: dict
    pitch_stats: dict
    work_cfg: dict
    replay: Workspace | None = None  # the base voice's replay set (train.replay), trained beside `rows`
    replay_rows: list = field(default_factory=list)

    @classmethod
    def read(cls, ws: Workspace) -> "_Facts":
        rows = ws.load_manifest()
        return cls(rows, ws.load_symbols(), speaker_map(rows), load_pitch_stats(ws.pitch_stats),
                   ws.load_config(missing_ok=True))

    def with_replay(self, ws: Workspace) -> "_Facts":
        """The workspace's facts plus a replay set: its symbols and speakers after the workspace's
        own (speaker 0 stays the new voice, what `tts synthesize` speaks by default)."""
        rows = ws.load_manifest()
        if not rows:
            return self
        known = set(self.symbols)
        symbols = self.symbols + [s for s in dict.fromkeys(ws.load_symbols()) if s not in known]
        speakers = dict(self.speakers)
        for name in dict.fromkeys(str(r["speaker"]) for r in rows):
            speakers.setdefault(name, len(speakers))
        stats = load_pitch_stats(ws.pitch_stats)
        pitch_stats = {**self.pitch_stats, "speakers": {**stats["speakers"], **self.pitch_stats["speakers"]}}
        return replace(self, symbols=symbols, speakers=speakers, pitch_stats=pitch_stats, replay=ws, replay_rows=rows)

    def with_base_symbols(self, base_symbols: Sequence[str] | None) -> "_Facts":
        """The init voice's symbols the workspace lacks, after the workspace's own: their rows are
        copied and never trained, so the fine-tuned voice still says sounds its recordings never had
        (es_base's dʒ for a 12-minute speaker without it) instead of dropping them."""
        known = set(self.symbols)
        extra = [s for s in dict.fromkeys(base_symbols or []) if s not in known]
        return replace(self, symbols=self.symbols + extra) if extra else self


class FastPitchJob:
    kind = "fastpitch"

    def __init__(self, options: FastPitchOptions):
        self.o = options

    def resolve_config(self, config) -> dict:
        return resolve_config(config)

    def prepare(self, ctx: RunContext) -> TrainingPlan:
        o = self._options(ctx)
        init_path, init_ckpt = (None, None) if ctx.resume_ckpt is not None else \
            _init_checkpoint(o.init_from, ctx.cfg["train"].get("init_from"), ctx.console, ctx.dist.is_main,
                             language=ctx.ws.language())
        facts = self._with_replay(ctx, _Facts.read(ctx.ws), init_ckpt)
        started_from = init_ckpt if init_ckpt is not None else ctx.resume_ckpt  # --resume: the run's own table
        if started_from is not None:
            facts = facts.with_base_symbols(CheckpointHeader.of(started_from).symbols)
        settings, task_settings = self._settings(ctx, facts, o, init_ckpt)
        model_cfg = self._model_config(ctx, facts, o, init_ckpt)
        # model (+ fine-tuning init, freezing, pitch statistics of this workspace)
        seed_everything(settings.seed)
        model = FastPitch(model_cfg)
        load_report = None
        if init_ckpt is not None:
            load_report = init_weights_from(model, init_ckpt, facts.symbols, facts.speakers)
            load_report.source = load_report.source or str(init_path)
            if ctx.dist.is_main:
                load_report.print(ctx.console)
        corpus = facts.pitch_stats["corpus"]
        model.pitch_mean.fill_(float(corpus["mean"]))
        model.pitch_std.fill_(float(corpus["std"]))
        frozen = _freeze(model, o.freeze) if o.freeze else []

        meta = _checkpoint_meta(ctx.ws, model_cfg.to_dict(), facts)
        audio_cfg = audio_config({"audio": meta["audio"]})
        task = FastPitchTask(model, model_cfg.alignment, task_settings, meta, audio_cfg,
                             val_samples=settings.val_samples)
        loader, sampler, n_train = self._train_data(ctx, facts, settings, task_settings, model_cfg.alignment)
        val_batches = self._val_data(ctx, facts, settings, model_cfg.alignment, task, meta, audio_cfg)
        resolved = deep_merge(ctx.cfg, {"model": model_cfg.to_dict(),
                                        "train": {**settings.to_dict(), **task_settings.to_dict(),
                                                  "freeze": list(o.freeze),
                                                  **({"init_from": str(init_path)} if init_path else {})}})
        n_params = sum(p.numel() for p in model.parameters())
        n_train_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_val = len(val_batches) and sum(len(b["ids"]) for b in val_batches)
        banner = (
            f"[bold]train[/] {ctx.ws.root} -> {ctx.run}: {n_train - len(facts.replay_rows)} train"
            + (f" (+ {len(facts.replay_rows)} replay)" if facts.replay_rows else "") + f" / {n_val} val "
            f"utterances, {len(sampler)} batches/epoch/rank, {n_params:,} params ({n_train_params:,} trained), "
            f"alignment {model_cfg.alignment}, device {ctx.device}, amp {resolve_amp(settings.amp, ctx.device)}, "
            f"world {ctx.dist.world_size}" + (f", frozen: {', '.join(frozen)}" if frozen else "")
            + (f", resuming at step {ctx.resume_ckpt['step']}" if ctx.resume_ckpt else ""))
        return TrainingPlan(task, settings, loader, sampler, val_batches, resolved, banner, meta=meta,
                            summary_extra={"load_report": _report_rows(load_report)})

    def finish(self, ctx: RunContext, plan: TrainingPlan, summary: dict) -> dict:
        """The user's answer to "did it work?": the best checkpoint on their held-out clips."""
        if ctx.dist.is_main and plan.val_batches and summary.get("stopped") == "finished":
            summary["held_out"] = held_out_check(ctx.ws, summary, plan.meta, plan.settings.eval_asr, ctx.console,
                                                 vocoder=plan.task.eval_vocoder)
        return summary

    # ------------------------------------------------------------------ preparation steps
    def _options(self, ctx: RunContext) -> FastPitchOptions:
        """--resume continues the saved run: the options that would change it are dropped, loudly."""
        o = self.o
        if ctx.resume_ckpt is None:
            return o
        ignored = [n for n, v in (("lr", o.lr), ("batch_frames", o.batch_frames), ("max_frames", o.max_frames),
                                  ("freeze", tuple(o.freeze)), ("alignment", o.alignment), ("config", o.config))
                   if v not in (None, ())]
        if ignored and ctx.dist.is_main:
            log.warning("--resume continues the saved run; ignoring %s (start a new --out to change them)",
                        ", ".join(ignored))
        return replace(o, lr=None, batch_frames=None, max_frames=None, alignment=None,
                       freeze=tuple(ctx.cfg.get("train", {}).get("freeze", ())))

    def _settings(self, ctx: RunContext, facts: _Facts, o: FastPitchOptions, init_ckpt=None):
        """(TrainSettings, FastPitchTaskSettings) from the recipe's `train:` section and the options."""
        train_dict = dict(ctx.cfg["train"])
        train_dict.pop("freeze", None)
        train_dict.pop("init_from", None)
        train_dict.pop("replay", None)
        task_settings = FastPitchTaskSettings.pop_from(train_dict)
        rate_key, why = (None, "") if o.steps is not None or "steps" in train_dict else \
            _steps_rate(train_dict, init_ckpt, ctx.ws, facts.rows)
        if rate_key:
            minutes = _train_minutes(facts.rows)
            train_dict["steps"] = max(1, round(float(train_dict[rate_key]) * minutes))
            if ctx.dist.is_main:
                log.info("steps = %d (%.4g steps per minute x %.1f min of training audio%s)",
                         train_dict["steps"], train_dict[rate_key], minutes, why)
        eval_asr, best_metric = _resolve_auto_eval(train_dict, o.eval_asr, o.best_metric)
        settings = train_settings(train_dict, steps=o.steps, lr=o.lr, batch_frames=o.batch_frames,
                                  max_frames=o.max_frames, compile=o.compile, num_workers=o.num_workers, seed=o.seed,
                                  amp=o.amp, eval_every=o.eval_every, eval_asr=eval_asr,
                                  eval_utterances=o.eval_utterances, best_metric=best_metric)
        return settings, task_settings

    def _with_replay(self, ctx: RunContext, facts: _Facts, init_ckpt) -> _Facts:
        """Facts plus the base voice's replay set when the recipe asks for one (`train: replay:`):
        made from the init checkpoint into RUN/replay/, or the one the run made (--resume)."""
        if init_ckpt is None:
            if ctx.resume_ckpt is None:
                if ctx.cfg["train"].get("replay") and ctx.dist.is_main:
                    log.warning("train.replay ignored: it replays the voice a run starts from (--init-from)")
                return facts
            ws = load_replay(ctx.run)
            return facts.with_replay(ws) if ws is not None else facts
        header = CheckpointHeader.of(init_ckpt)
        plan = plan_replay(ctx.cfg["train"].get("replay"), header.language)
        if plan is None:
            return facts
        user_minutes = _train_minutes(facts.rows)
        ws = make_replay(ctx.run, plan, init_ckpt, set(facts.speakers), user_minutes) if ctx.dist.is_main else None
        if ctx.dist.enabled:  # the other ranks read what the main one made
            torch.distributed.barrier()
        ws = load_replay(ctx.run)
        if ws is None:
            return facts
        out = facts.with_replay(ws)
        if ctx.dist.is_main:
            minutes = _train_minutes(out.replay_rows)
            log.info("replay: %d utterances (%.1f min) of the base voice (%s) train beside %.1f min of yours "
                     "(%s)", len(out.replay_rows), minutes, ", ".join(dict.fromkeys(r["speaker"] for r in out.replay_rows)),
                     user_minutes, ws.root)
        return out

    def _model_config(self, ctx: RunContext, facts: _Facts, o: FastPitchOptions, init_ckpt) -> FastPitchConfig:
        model_section = dict(ctx.cfg["model"])
        if o.alignment:
            model_section["alignment"] = o.alignment
        if init_ckpt is not None:
            model_section, inherited = inherit_architecture(model_section, init_ckpt.get("config"))
            if inherited and ctx.dist.is_main:
                c = init_ckpt["config"]
                log.info("model architecture from the init checkpoint (d_model %s, %s+%s layers); the recipe "
                         "sets no architecture, so its preset is not used", c.get("d_model"),
                         c.get("encoder_layers"), c.get("decoder_layers"))
        model_section.update(n_symbols=len(facts.symbols), n_speakers=max(1, len(facts.speakers)))
        if ctx.resume_ckpt is not None:
            return FastPitchConfig.from_dict(ctx.resume_ckpt["config"])
        return from_recipe(FastPitchConfig, model_section)

    def _train_data(self, ctx: RunContext, facts: _Facts, settings, task_settings, align_mode: str):
        """(loader, sampler, utterances) of the train split; flagged alignments left out."""
        learned = align_mode == "learned"
        train_rows = [r for r in facts.rows if r.get("split") == "train"]
        if not learned and task_settings.skip_flagged:
            train_rows = _without_flagged(ctx.ws, train_rows, ctx.dist.is_main)
        train_ds = TTSDataset(ctx.ws, "train", symbols=facts.symbols, speakers=facts.speakers,
                              pitch_stats=facts.pitch_stats, use_durations=not learned, attn_prior=learned,
                              rows=train_rows)
        if len(train_ds) == 0:
            raise WorkspaceError(f"{ctx.ws.root}: the train split is empty")
        if facts.replay is not None:
            train_ds = ConcatTTSDataset([train_ds, TTSDataset(
                facts.replay, "train", symbols=facts.symbols, speakers=facts.speakers, pitch_stats=facts.pitch_stats,
                use_durations=not learned, attn_prior=learned, rows=facts.replay_rows)])
        dist = ctx.dist
        sampler = BucketBatchSampler(
            train_ds.frame_lengths, settings.batch_frames, max_frames=settings.max_frames, seed=settings.seed,
            num_replicas=dist.world_size, rank=dist.rank, ids=train_ds.ids,
            max_batch_size=settings.max_batch_size, warn=dist.is_main,
        )
        loader = torch.utils.data.DataLoader(
            train_ds, batch_sampler=sampler, collate_fn=collate, num_workers=settings.num_workers,
            pin_memory=ctx.device.type == "cuda", persistent_workers=settings.num_workers > 0,
            worker_init_fn=ignore_signals if settings.num_workers > 0 else None,
            generator=torch.Generator(),  # keep the global RNG (dropout) untouched for exact resume
        )
        return loader, sampler, len(train_ds)

    def _val_data(self, ctx: RunContext, facts: _Facts, settings, align_mode: str, task, meta: dict,
                  audio_cfg) -> list:
        """Validation batches (main process only), and the quick evaluation switched on."""
        if not ctx.dist.is_main:
            return []
        learned = align_mode == "learned"
        val_rows = [r for r in facts.rows if r.get("split") == "val"]
        val_batches = []
        if val_rows:
            val_ds = TTSDataset(ctx.ws, "val", symbols=facts.symbols, speakers=facts.speakers,
                                pitch_stats=facts.pitch_stats, use_durations=not learned, attn_prior=learned)
            vs = BucketBatchSampler(val_ds.frame_lengths, settings.batch_frames, max_frames=settings.max_frames,
                                    shuffle=False, ids=val_ds.ids, warn=False)
            val_batches = [collate([val_ds[i] for i in b]) for b in vs]
        else:
            log.warning("%s: no validation split; best.pt will not be written", ctx.ws.root)
        if settings.eval_every and val_rows:
            try:
                task.enable_evaluation(ctx.ws.root, val_rows, facts.symbols, facts.speakers,
                                       language=str(meta["text"].get("language") or "es"),
                                       asr=settings.eval_asr, limit=settings.eval_utterances,
                                       vocoder=settings.eval_vocoder, audio=audio_cfg)
            except (ASRUnavailable, VocoderError) as e:
                raise TrainConfigError(f"eval_asr {settings.eval_asr} / eval_vocoder {settings.eval_vocoder}: "
                                       f"{e}") from None
        return val_batches


# ----------------------------------------------------------------------------- helpers

def _checkpoint_meta(ws: Workspace, model_cfg: dict, facts: _Facts) -> dict:
    """The self-describing part of every checkpoint: enough to synthesise without the workspace."""
    sym_file = json.loads(ws.symbols.read_text(encoding="utf-8"))
    work_cfg = facts.work_cfg
    text = {**(work_cfg.get("text") or {}), **{k: v for k, v in sym_file.items() if k != "symbols"}}
    espeak = (work_cfg.get("workspace") or {}).get("espeak") or {}
    if text.get("text_type", "phonemes") == "phonemes":
        text.setdefault("phonemiser", "espeak-ng")
    if espeak.get("version"):
        text["espeak_ng"] = str(espeak["version"])
    if espeak.get("phonemizer"):
        text["phonemizer_version"] = str(espeak["phonemizer"])
    header = CheckpointHeader("fastpitch", model_cfg, symbols=list(facts.symbols), text=text,
                              audio=dict(work_cfg.get("audio") or {}), pitch_stats=facts.pitch_stats,
                              speakers=dict(facts.speakers))
    meta = header.to_dict()
    meta.pop("step")  # the loop writes the step it saved at
    return meta


def _is_training_choice(key: str) -> bool:
    """Model settings that do not change the network's shape (a recipe may set them and still
    take the architecture from the checkpoint it fine-tunes)."""
    return key in ("preset", "alignment", "aligner", "aligner_temperature", "max_duration") or \
        key.endswith(("_dropout", "_dropatt", "_dropemb"))


def inherit_architecture(model_section: dict, src_config: dict | None) -> tuple[dict, bool]:
    """(model section, inherited?): the init checkpoint's architecture plus the section's training
    choices, when the section sets no architecture itself; else the section unchanged."""
    if not src_config or not all(_is_training_choice(k) for k in model_section):
        return model_section, False
    known = {f.name for f in fields(FastPitchConfig)}
    arch = {k: v for k, v in src_config.items() if k in known and k not in ("alignment", "n_symbols", "n_speakers")}
    merged = {**arch, **{k: v for k, v in model_section.items() if k != "preset"}}
    if merged.get("alignment") == "learned" and "aligner" not in model_section:
        merged["aligner"] = True  # a voice exported without its aligner: learned alignment trains a fresh one
    return merged, True


def _init_checkpoint(init_from, recipe_init, console, is_main: bool,
                     language: str | None = None) -> tuple[Path | None, dict | None]:
    """(path, loaded checkpoint) for fine-tuning: --init-from, else the recipe's train.init_from;
    `bundled` / `bundled:<name>` name a bundled voice (`bundled`: the one of the workspace's language
    when one is bundled, else the default voice)."""
    spec = init_from if init_from not in (None, "") else recipe_init
    try:
        path = resolve_init_from(spec, language=language)
    except VoiceError as e:
        raise TrainConfigError(str(e)) from None
    if path is None:
        return None, None
    try:
        ckpt = require_kind(load_checkpoint(path), "fastpitch", f"--init-from {path}",
                            "vocoders: tts train --model hifigan")
    except CheckpointError as e:
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


def _resolve_auto_eval(train_dict: dict, eval_asr: str | None, best_metric: str | None) -> tuple:
    """`eval_asr: auto` -> whisper-base where the [eval] extra is installed, else none;
    `best_metric: auto` -> cer_chars with a recogniser (the CER over all characters of the scored
    clips: per clip, one misheard one-word prompt weighs as much as a sentence), else mcd (both track
    the free-running voice, unlike the teacher-forced validation loss)."""
    asr = eval_asr if eval_asr is not None else train_dict.get("eval_asr")
    if asr is not None:
        eval_asr = resolve_asr_name(asr)
        train_dict.pop("eval_asr", None)
    best = best_metric if best_metric is not None else train_dict.get("best_metric")
    if best == "auto":
        best_metric = "cer_chars" if eval_asr not in (None, "none") else "mcd"
        train_dict.pop("best_metric", None)
    return eval_asr, best_metric


def _steps_rate(train: dict, init_ckpt, ws: Workspace, rows: list[dict]) -> tuple[str | None, str]:
    """(the recipe key that sets steps per minute, why it was chosen). A base voice that already
    speaks the workspace's language, and times its symbols as WORK's durations do, needs far fewer
    steps to learn a new speaker than one of another language (`steps_per_minute_in_language`);
    the checkpoint must name its language."""
    rate = "steps_per_minute" if train.get("steps_per_minute") else None
    language = ws.language()
    if init_ckpt is not None and train.get("steps_per_minute_in_language"):
        base = CheckpointHeader.of(init_ckpt).text.get("language")  # not .language: that defaults to es
        if base and language and same_language(base, language):
            gap = timing_gap(init_ckpt, ws, rows)
            if gap is None or gap <= TIMING_GAP_LIMIT:
                return "steps_per_minute_in_language", f"; the init voice speaks {base}"
            return rate, (f"; the init voice speaks {base} but puts {gap:.0%} of its frames on symbols your "
                          f"durations give none (stress marks, word spaces): it relearns its timing as from "
                          f"another language")
    return rate, ""


def _train_minutes(rows: list[dict]) -> float:
    """Minutes of audio in the train split of `rows` (what steps_per_minute and replay.ratio count)."""
    return sum(float(r.get("duration_s", 0)) for r in rows if r.get("split") == "train") / 60


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
