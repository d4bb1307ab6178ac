"""From a trained aligner to WORK/durations: monotonic alignment search per utterance, word
spaces kept to quiet frames and edge silences, the quality flags of align_report.jsonl and the
alignment images."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tts_cli.models.alignment import mas_batch
from tts_cli.workspace import Workspace, atomic_save_npy, atomic_write_bytes

from .align_data import QueryFeatures, Utterance, collate, is_silent_symbol, is_stress_mark
from .align_settings import AlignConfig


def extract_durations(ws: Workspace, model, items: list[Utterance], n_mel: int, cfg: AlignConfig, device: str, plot_ids: set,
             console, features: QueryFeatures | None = None) -> list[dict]:
    """MAS durations for `items`; writes durations (and plots); returns per-utterance stats."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    model.eval()
    order = sorted(items, key=lambda u: u.n_frames)
    stats = []
    with torch.no_grad(), Progress(TextColumn("durations"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                   console=console) as progress:
        task = progress.add_task("extract", total=len(order))
        for start in range(0, len(order), cfg.extract_batch_size):
            batch = order[start: start + cfg.extract_batch_size]
            text, tlen, mel, mlen, prior, silent = (x.to(device) for x in collate(ws, batch, n_mel, cfg.prior_scaling,
                                                                                   cfg.skip_silent, features))
            soft, logprob = model(text, tlen, mel, prior)
            logprob = logprob.squeeze(1)
            if cfg.space_quiet_db > 0:
                logprob = _spaces_only_on_quiet_frames(logprob, batch, mel, cfg.space_quiet_db)
            hard = mas_batch(logprob, tlen, mlen, silent)
            soft = soft.squeeze(1).cpu().numpy()
            for b, u in enumerate(batch):
                h = hard[b, : u.n_frames, : len(u.ids)]
                s = soft[b, : u.n_frames, : len(u.ids)]
                dur = h.sum(0).round().astype(np.int32)
                if cfg.edge_silence_db > 0:
                    dur = edge_silence(dur, u.symbols, mel[b, :, : u.n_frames].cpu().numpy(), cfg.edge_silence_db)
                assert int(dur.sum()) == u.n_frames, (u.id, int(dur.sum()), u.n_frames)
                atomic_save_npy(ws.duration_path(u.id), u.full_durations(dur))
                stats.append(_utterance_stats(u, dur, h, s, cfg))
                if u.id in plot_ids:
                    plot_alignment(ws.dir("alignments") / f"{u.id}.png", u, s, dur)
            progress.update(task, advance=len(batch))
    return stats


def quiet_frames(mel: np.ndarray, top_db: float) -> np.ndarray:
    """bool per frame of the log-mel `mel` [n_mel, n_frames]: quieter than the loudest frame by more
    than `top_db` dB (as silence trimming measures)."""
    power = np.logaddexp.reduce(2.0 * mel.astype(np.float64), axis=0)  # log of summed power per frame
    return power <= power.max() - top_db / 10.0 * np.log(10.0)


def _spaces_only_on_quiet_frames(logprob, batch: list[Utterance], mel, top_db: float):
    """logprob [B, T_mel, T_text] with each word space's score on loud frames pushed out of reach."""
    import torch

    logprob = logprob.clone()
    for b, u in enumerate(batch):
        spaces = [j for j, s in enumerate(u.symbols) if s.isspace()]
        if not spaces:
            continue
        loud = ~quiet_frames(mel[b, :, : u.n_frames].cpu().numpy(), top_db)
        rows = torch.from_numpy(np.flatnonzero(loud)).to(logprob.device)
        logprob[b, rows[:, None], torch.tensor(spaces, device=logprob.device)] = -1e4
    return logprob


def edge_silence(dur: np.ndarray, symbols: list[str], mel: np.ndarray, top_db: float) -> np.ndarray:
    """Durations where a leading (trailing) word space holds exactly the lead-in (trail-out) silence.

    Silence = the frames before the first (after the last) frame whose power is within `top_db`
    of the loudest frame, measured on the log-mel `mel` [n_mel, n_frames]. Frames move between the
    edge space and its nearest symbol with frames (which keeps at least one); the sum is unchanged.
    """
    dur = dur.copy()
    loud = np.flatnonzero(~quiet_frames(mel, top_db))
    if len(dur) < 2 or len(loud) == 0:
        return dur
    for edge, quiet, inward in ((0, int(loud[0]), range(1, len(dur))),
                                (len(dur) - 1, mel.shape[1] - 1 - int(loud[-1]), range(len(dur) - 2, -1, -1))):
        if not symbols[edge].isspace():
            continue
        neighbour = next((j for j in inward if dur[j] > 0), inward[0])
        move = min(quiet - int(dur[edge]), int(dur[neighbour]) - 1)  # < 0: the space gives frames back
        dur[edge] += move
        dur[neighbour] -= move
    return dur


def silent_symbols_as_aligner(dur: np.ndarray, symbols: list[str], mel: np.ndarray | None,
                              zero_width_stress: bool, space_quiet_db: float) -> np.ndarray:
    """Durations from another source (a teacher's timing) in the learned aligner's convention, so a
    voice trained on them fine-tunes on `tts align` durations without relearning its timing:
    a stress mark's frames go to the sounding symbol after it (`zero_width_stress`); a word space
    keeps only the frames from its first to its last quiet one (`space_quiet_db`, as the aligner
    constrains it): loud frames before go to the sounding symbol before it, loud frames after to
    the one after it (all to one side at an utterance edge). The sum is unchanged.
    """
    dur = np.asarray(dur).astype(np.int64).copy()
    quiet = quiet_frames(mel, space_quiet_db) if (mel is not None and space_quiet_db > 0) else None
    sounding = [j for j, sym in enumerate(symbols) if not is_silent_symbol(sym)]
    if not sounding:
        return dur.astype(np.int32)

    def neighbour(j: int, step: int) -> int | None:
        side = [k for k in sounding if (k - j) * step > 0]
        return (side[0] if step > 0 else side[-1]) if side else None

    for j, sym in enumerate(symbols):
        d = int(dur[j])
        if d == 0 or not is_silent_symbol(sym):
            continue
        before, after = neighbour(j, -1), neighbour(j, +1)
        if zero_width_stress and is_stress_mark(sym):
            lead, trail = 0, d
        elif quiet is not None and sym.isspace():
            start = int(dur[:j].sum())
            hits = np.flatnonzero(quiet[start: start + d])
            lead, trail = (int(hits[0]), d - 1 - int(hits[-1])) if len(hits) else (d // 2, d - d // 2)
        else:
            continue
        if before is None:
            lead, trail = 0, lead + trail
        if after is None:
            lead, trail = lead + trail, 0
        dur[before if before is not None else j] += lead
        dur[after if after is not None else j] += trail
        dur[j] -= lead + trail
    return dur.astype(np.int32)


def _utterance_stats(u: Utterance, dur: np.ndarray, hard: np.ndarray, soft: np.ndarray, cfg: AlignConfig) -> dict:
    confidence = float((soft * hard).sum() / max(1, u.n_frames))
    longest = int(dur.max())
    sounding = ~u.silent if cfg.skip_silent else np.ones(len(dur), bool)
    zero_share = float((dur[sounding] == 0).mean()) if sounding.any() else 0.0
    reasons = []
    if longest > cfg.max_run_frames:
        reasons.append(f"symbol {u.symbols[int(dur.argmax())]!r} (#{int(dur.argmax())}) lasts {longest} frames "
                       f"> {cfg.max_run_frames}")
    if zero_share > cfg.max_zero_share:
        reasons.append(f"{zero_share:.0%} of sounding symbols get no frame (n_frames={u.n_frames}, symbols={len(u.ids)})")
    if confidence < cfg.min_confidence:
        reasons.append(f"low attention confidence {confidence:.2f} < {cfg.min_confidence}")
    return {"id": u.id, "confidence": round(confidence, 4), "max_run_frames": longest,
            "zero_share": round(zero_share, 4), "reasons": reasons}


def plot_alignment(path: Path, u: Utterance, soft: np.ndarray, dur: np.ndarray) -> None:
    """Soft attention (symbols x frames) with the hard path drawn over it. No pyplot: no global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_sym = len(u.ids)
    fig = Figure(figsize=(min(24, 3 + u.n_frames / 40), min(20, 2 + n_sym / 6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(soft.T, origin="lower", aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    ends = np.cumsum(dur)
    starts = ends - dur
    for j in range(n_sym):
        if dur[j] > 0:
            ax.plot([starts[j] - 0.5, ends[j] - 0.5], [j, j], color="red", linewidth=1.2)
    ax.set_yticks(range(n_sym))
    ax.set_yticklabels([s if s.strip() else "␣" for s in u.symbols], fontsize=6)
    ax.set_xlabel("mel frame")
    ax.set_title(u.id, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["edge_silence", "extract_durations", "plot_alignment", "quiet_frames", "silent_symbols_as_aligner"]
