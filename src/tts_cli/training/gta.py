"""Ground-truth-aligned (GTA) mels: what FastPitch makes of each training utterance when it is
told the real durations, pitch and energy. A vocoder trained on them learns to undo FastPitch's
smoothing (`tts train --model hifigan --gta FASTPITCH.pt`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from tts_cli.checkpoints.format import CheckpointHeader, require_kind
from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint
from tts_cli.config import resolve_device
from tts_cli.errors import CheckpointError, WorkspaceError
from tts_cli.training.data import TTSDataset, collate
from tts_cli.workspace import Workspace, atomic_save_npy, atomic_write_json


def write_gta_mels(work: str | Path, fastpitch_ckpt: str | Path, device: str | None = None, batch_size: int = 16,
                   force: bool = False, progress: bool = True, console=None) -> dict:
    """Teacher-forced FastPitch mels for every utterance -> WORK/gta/<id>.npy ([n_mels, n_frames]).

    Skips files already written from the same checkpoint (WORK/gta/source.json records which)."""
    ws = work if isinstance(work, Workspace) else Workspace(work)
    try:
        ckpt = require_kind(load_checkpoint(fastpitch_ckpt), "fastpitch", f"--gta {fastpitch_ckpt}")
    except CheckpointError as e:
        raise WorkspaceError(str(e)) from None
    dev = torch.device(resolve_device(device))
    model = build_fastpitch(ckpt).eval().to(dev)
    alignment = model.config.alignment
    if alignment == "external" and not all(ws.duration_path(r["id"]).exists() for r in ws.load_manifest()):
        if model.attention is None:
            raise WorkspaceError(f"{ws.root}: no durations and the checkpoint has no aligner; run `tts align` first")
        alignment = "learned"
    gta_dir = ws.dir("gta")
    header = CheckpointHeader.of(ckpt)
    source = {"checkpoint": str(Path(fastpitch_ckpt).resolve()), "step": header.step,
              "mtime": Path(fastpitch_ckpt).stat().st_mtime}
    record = gta_dir / "source.json"
    same = record.exists() and json.loads(record.read_text(encoding="utf-8")) == source
    rows = ws.load_manifest()
    todo = [r for r in rows if force or not same or not (gta_dir / f"{r['id']}.npy").exists()]
    ds = TTSDataset(ws, None, symbols=header.symbols, speakers=header.speakers or None,
                    pitch_stats=header.pitch_stats or None, use_durations=alignment == "external",
                    attn_prior=alignment == "learned", rows=todo)
    gta_dir.mkdir(parents=True, exist_ok=True)
    if not same:
        record.unlink(missing_ok=True)  # half-written sets from another checkpoint are redone
    order = sorted(range(len(ds)), key=lambda i: int(ds.rows[i]["n_frames"]))
    with Progress(console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("gta mels", total=len(order))
        with torch.no_grad():
            for b in range(0, len(order), batch_size):
                batch = collate([ds[i] for i in order[b:b + batch_size]])
                batch = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in batch.items()}
                out = model(batch, alignment=alignment)
                for r, uid in enumerate(batch["ids"]):
                    T = int(batch["mel_lens"][r])
                    mel = out["mel_out"][r, :T].float().T.cpu().numpy().astype(np.float32)
                    atomic_save_npy(gta_dir / f"{uid}.npy", mel)
                bar.advance(task, len(batch["ids"]))
    atomic_write_json(record, source)
    return {"written": len(todo), "kept": len(rows) - len(todo), "dir": str(gta_dir)}
