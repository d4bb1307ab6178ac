"""`tts align`: learn symbol durations with the FastPitch 1.1 aligner + monotonic alignment search.

Reads WORK/manifest.jsonl, symbols.json and wavs/ (the aligner's query features: log-mels on
WORK/mels' frames with a shorter window; WORK/mels themselves when wavs are missing or
`query_win_length` is 0); trains `Aligner` with the forward-sum loss
(+ the binarisation loss after a warm-up), then runs MAS per utterance and writes
durations/<id>.npy (int32, one per symbol, summing to n_frames), alignments/<id>.png for a
few utterances, align_report.jsonl (suspicious utterances) and aligner.pt.

Resumable and deterministic: the batch order is a pure function of (seed, step), and
aligner.pt holds model, optimizer, step and RNG state, so "train to K, get killed, resume to
N" writes the same files as "train to N".

The parts: settings in align_settings, input data in align_data, aligner training and
checkpoints in align_training, duration extraction and quality flags in align_durations.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tts_cli.config import check_device, dump_yaml
from tts_cli.errors import WorkspaceError
from tts_cli.workspace import Workspace, atomic_write_jsonl, atomic_write_text, read_jsonl

from .align_data import clear_mel_cache, load_items, load_mel, query_features
from .align_durations import extract_durations
from .align_settings import learned_settings, workspace_config
from .align_training import aligner_from_checkpoint, is_auto, resolve_init_from, train_aligner


def align(work: str | Path, steps: int | None = None, batch_size: int | None = None, device: str = "cpu",
          from_checkpoint: str | Path | None = None, force: bool = False, seed: int = 1234,
          config: str | Path | dict | None = None, console=None, only: set | None = None,
          init_from: str | Path | None = None) -> dict:
    """Train the aligner on WORK (or take it from a checkpoint) and write durations, plots and a report.

    config: a recipe name/path (its `align:` section is used) or a dict of settings sections.
    force: retrain from scratch and rewrite every duration. Without it, training resumes from
    aligner.pt and existing durations are kept (unless this call trained further: then they are stale).
    init_from: start the aligner from this one (aligner.pt or FastPitch with its aligner), then train.
    only: write durations for these ids alone (training still uses every utterance), e.g. those
    `tts align --from-teacher` could not align; other durations files are left as they are.
    Returns a summary dict.
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    ws = Workspace(work)
    clear_mel_cache()  # mels may have been rewritten since an earlier call in this process
    rows = ws.load_manifest()
    symbols = ws.load_symbols()
    cfg_all = workspace_config(ws, config)
    cfg = learned_settings(cfg_all, steps, batch_size, init_from)  # checked before aligner.pt or durations are replaced
    check_device(device)
    if from_checkpoint is None and not is_auto(cfg.init_from):
        resolve_init_from(cfg.init_from, ws.language())  # a missing file or voice fails here, before --force removes anything

    items, skipped = load_items(ws, rows, symbols, console, cfg.zero_width_stress)
    if not items:
        raise WorkspaceError(f"{ws.root}: no usable utterances to align")
    n_mel = int(cfg_all.get("audio", {}).get("n_mels") or load_mel(ws, items[0]).shape[0])

    t_start = time.perf_counter()
    model, info, items, features = _aligner(ws, items, skipped, symbols, n_mel, cfg, cfg_all,
                                            from_checkpoint=from_checkpoint, seed=seed, device=device, force=force,
                                            console=console)
    rewrite_all = force or info.get("trained_steps", 0) > 0

    wanted = [u for u in items if only is None or u.id in only]
    todo = [u for u in wanted if rewrite_all or not ws.duration_path(u.id).exists()]
    kept = len(wanted) - len(todo)
    if kept:
        console.print(f"keeping {kept} existing duration files (use --force to rewrite them)")
    plot_ids = set(sorted(u.id for u in items)[: cfg.plots])
    t_extract = time.perf_counter()
    stats = extract_durations(ws, model, todo, n_mel, cfg, device, plot_ids, console, features) if todo else []
    extract_seconds = time.perf_counter() - t_extract
    flagged, old = _write_report(ws, stats, skipped)

    summary = {
        "utterances": len(rows), "aligned": len(items), "extracted": len(stats), "kept": kept,
        "skipped": len(skipped), "flagged": len(flagged) + len(old), "steps": cfg.steps,
        "trained_steps": info.get("trained_steps", 0), "final_loss": info.get("final_loss"),
        "mean_confidence": float(np.mean([s["confidence"] for s in stats])) if stats else None,
        "extract_seconds": extract_seconds, "seconds": time.perf_counter() - t_start, "source": info["source"],
    }
    _print_summary(console, ws, summary)
    return summary


def _aligner(ws: Workspace, items: list, skipped: list[dict], symbols: list[str], n_mel: int, cfg, cfg_all: dict, *,
             from_checkpoint, seed: int, device: str, force: bool, console) -> tuple:
    """(model, info, usable items, query features): the aligner taken from `from_checkpoint` or
    trained on WORK, and WORK/align_config.yaml saying which. Utterances whose query features
    cannot be computed move to `skipped`."""
    if from_checkpoint is not None:
        model, dims = aligner_from_checkpoint(from_checkpoint, symbols, n_mel, cfg.temperature)
        for k, v in dims.items():
            if k != "audio":
                setattr(cfg, k, v)
        model = model.to(device)
        info = {"source": str(from_checkpoint), "trained_steps": 0}
    features, bad = query_features(ws, items, cfg_all, cfg.query_win_length, console)
    cfg.query_win_length = features.win_length if features is not None else 0  # what is really used
    if bad:
        skipped += bad
        items = [u for u in items if u.id not in {b["id"] for b in bad}]
        if not items:
            raise WorkspaceError(f"{ws.root}: no usable utterances to align")
    if from_checkpoint is None:
        model, info = train_aligner(ws, items, symbols, n_mel, cfg, seed, device, console, features, fresh=force)
        info["source"] = str(ws.aligner_ckpt)
    atomic_write_text(ws.root / "align_config.yaml",
                      dump_yaml({"align": asdict(cfg), "seed": seed, "source": info["source"],
                                 **({"init_from": info["init_from"]} if info.get("init_from") else {})}))
    return model, info, items, features


def _write_report(ws: Workspace, stats: list[dict], skipped: list[dict]) -> tuple[list[dict], list[dict]]:
    """WORK/align_report.jsonl: flagged and skipped utterances; rows of kept utterances survive from
    the previous report. Returns (flagged now, rows kept from before)."""
    done = {s["id"] for s in stats}
    old = [r for r in read_jsonl(ws.align_report) if r.get("id") not in done and r.get("id") not in {s["id"] for s in skipped}]
    flagged = [s for s in stats if s["reasons"]]
    atomic_write_jsonl(ws.align_report, sorted(old + flagged + skipped, key=lambda r: r["id"]))
    return flagged, old


def _print_summary(console, ws: Workspace, s: dict) -> None:
    print_summary_table(console, f"tts align: {ws.root}", s, [
        ("utterances in manifest", "utterances"), ("durations written", "extracted"), ("durations kept", "kept"),
        ("skipped (bad input)", "skipped"), ("flagged (align_report.jsonl)", "flagged"),
        ("training steps run", "trained_steps"), ("forward-sum loss", "final_loss"),
        ("mean attention confidence", "mean_confidence"), ("time (s)", "seconds")])


def print_summary_table(console, title: str, s: dict, items: list[tuple[str, str]]) -> None:
    """The end-of-stage table: one row per (label, key of `s`); floats with 3 decimals, None as '-'."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("item")
    table.add_column("value", justify="right")
    for label, key in items:
        v = s.get(key)
        table.add_row(label, "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
    console.print(table)
