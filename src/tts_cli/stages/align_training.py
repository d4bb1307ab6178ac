"""Training the learned aligner of `tts align` (forward-sum loss, optional binarisation loss),
resumable from WORK/aligner.pt, or started from another aligner (`init_from`); and reading an
aligner out of an aligner.pt or a FastPitch checkpoint with its joint aligner."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tts_cli.checkpoints.aligner import ALIGNER_FORMAT, read_aligner_source, save_aligner_checkpoint
from tts_cli.config import audio_dict, audio_differences
from tts_cli.errors import AlignmentError, VoiceError
from tts_cli.inference.voices import default_voice
from tts_cli.inference.voices import resolve_init_from as voice_file
from tts_cli.models.alignment import Aligner, BinarizationLoss, ForwardSumLoss, binarize
from tts_cli.training.init_from import LoadReport, _remap_symbols
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

def train_aligner(ws: Workspace, items: list[Utterance], symbols: list[str], n_mel: int, cfg: AlignConfig, seed: int,
           device: str, console, features: QueryFeatures | None = None, fresh: bool = False) -> tuple[Any, dict]:
    """Train (or resume, or skip when aligner.pt is complete); returns (model, info). fresh: start
    anew whatever aligner.pt holds (it is replaced at the first save, so a start that fails keeps it)."""
    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    torch.manual_seed(seed)
    model = _build_model(len(symbols), n_mel, cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, last_loss, started_from = 0, None, None
    if ws.aligner_ckpt.exists() and not fresh:
        step, last_loss = _resume(ws.aligner_ckpt, model, opt, cfg, symbols, n_mel)
        if step < cfg.steps:
            console.print(f"resuming aligner training from {ws.aligner_ckpt} at step {step}")
    else:
        start, started_from = _init_model(ws, cfg, symbols, n_mel, console)
        if start is not None:
            model = start.to(device)
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_step = step
    info = {"start_step": start_step, "steps": cfg.steps, "nan_steps": 0}
    if started_from is not None:
        info["init_from"] = str(started_from)
    if step >= cfg.steps:
        info.update(trained_steps=0, final_loss=last_loss)
        return model, info

    lengths = np.array([u.n_frames for u in items])
    audio = _audio_settings(ws)
    ctc_loss, bin_loss = ForwardSumLoss(cfg.blank_logprob), BinarizationLoss()
    model.train()
    ema = last_loss  # continue the smoothed loss across a resume
    t0 = time.perf_counter()
    columns = [TextColumn("aligner"), BarColumn(), MofNCompleteColumn(), TextColumn("fwd-sum {task.fields[loss]}"),
               TextColumn("bin {task.fields[bin]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=cfg.steps, completed=step, loss="-", bin="-")
        while step < cfg.steps:
            batch = [items[i] for i in batch_for_step(len(items), lengths, cfg.batch_size, seed, step)]
            text, tlen, mel, mlen, prior, silent = (x.to(device) for x in collate(ws, batch, n_mel, cfg.prior_scaling,
                                                                                   cfg.skip_silent, features))
            soft, logprob = model(text, tlen, mel, prior)
            loss_ctc = ctc_loss(logprob, tlen, mlen, silent)
            w = _bin_weight(cfg, step)
            loss_bin = (bin_loss(binarize(logprob, tlen, mlen, silent), soft) if w > 0
                        else torch.zeros((), device=device))
            loss = loss_ctc + w * loss_bin
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                value = float(loss_ctc.detach())
                ema = value if ema is None else 0.95 * ema + 0.05 * value
                last_loss = ema
            else:  # guard: a bad batch must not poison the weights
                info["nan_steps"] += 1
            step += 1
            progress.update(task, completed=step, loss=f"{ema:.3f}" if ema is not None else "nan",
                            bin=f"{float(loss_bin.detach()):.3f}" if w > 0 else "-")
            if step % cfg.save_every == 0 or step == cfg.steps:
                save_aligner_checkpoint(ws.aligner_ckpt, model, opt, step, cfg, symbols, n_mel, seed, last_loss, audio)
    info.update(trained_steps=step - start_step, final_loss=last_loss, train_seconds=time.perf_counter() - t0)
    return model, info


def _resume(path: Path, model, opt, cfg: AlignConfig, symbols: list[str], n_mel: int) -> tuple[int, float | None]:
    """Load aligner.pt into `model` / `opt` and the torch RNG; (step, loss). ValueError when it was
    trained on other symbols, mels, model size or query features: resuming would mix two models."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("format") != ALIGNER_FORMAT:
        raise AlignmentError(f"{path}: not an aligner checkpoint; remove it or use --force")
    if ckpt.get("symbols") != list(symbols) or int(ckpt.get("n_mel_channels", -1)) != n_mel:
        raise AlignmentError(f"{path}: trained on another symbol table or mel size; use --force to retrain")
    shape_keys = ("n_text_channels", "n_att_channels")
    if any(ckpt["config"].get(k) != getattr(cfg, k) for k in shape_keys):
        raise AlignmentError(f"{path}: model size differs from the settings; use --force to retrain")
    if int(ckpt["config"].get("query_win_length") or 0) != int(cfg.query_win_length or 0):
        raise AlignmentError(f"{path}: trained on other query features (query_win_length "
                             f"{ckpt['config'].get('query_win_length') or 0}, now {cfg.query_win_length}); "
                             "use --force to retrain")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    for group in opt.param_groups:  # settings may have changed between runs
        group["lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
    torch.set_rng_state(ckpt["rng"]["torch"])
    return int(ckpt["step"]), ckpt.get("loss")


def _audio_settings(ws: Workspace) -> dict:
    """The workspace's mel settings (what an aligner.pt records it learned on)."""
    return audio_dict((ws.load_config() if ws.config.exists() else {}).get("audio") or {})


def _init_model(ws: Workspace, cfg: AlignConfig, symbols: list[str], n_mel: int, console):
    """(model, source) of the aligner `init_from` names, for further training on this workspace, or
    (None, None): from scratch. It must be of the configured size and have learned on the same mel
    settings and query features; "auto" passes over one that does not fit (said so), else an error."""
    auto = is_auto(cfg.init_from)
    try:
        source = resolve_init_from(cfg.init_from)
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
    except (AlignmentError, ValueError, FileNotFoundError) as e:
        if not auto:
            raise
        console.print(f"aligner starts from scratch: the bundled one does not fit ({e})", highlight=False)
        return None, None
    console.print(f"aligner starts from {source}", highlight=False)
    return model, source


def is_auto(spec: str) -> bool:
    return str(spec or "").strip().lower() == "auto"


def resolve_init_from(spec: str) -> Path | None:
    """`init_from` -> the aligner file to start from, or None (from scratch): "none" (or "");
    "auto" (the default voice's aligner, None when there is none); "bundled" / "bundled:NAME";
    a path to an aligner.pt or a FastPitch checkpoint with its joint aligner (it must exist)."""
    spec = str(spec or "").strip()
    if spec.lower() in ("", "none", "scratch"):
        return None
    if is_auto(spec):
        voice = default_voice()
        return voice.aligner_path if voice is not None else None
    try:
        path = voice_file(spec, part="aligner")
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
