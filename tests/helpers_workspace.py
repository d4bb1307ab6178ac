"""Fabricate tiny workspaces that satisfy the workspace contract, for tests of later stages.

`make_workspace(root)` writes manifest.jsonl, symbols.json, config.yaml, mels/, durations/,
pitch/, energy/ and pitch_stats.json, without audio processing, in milliseconds. The mels are a
learnable function of the symbols (each symbol owns a spectral shape), so a model can overfit.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

DEFAULT_SYMBOLS = ["_", " ", ",", ".", "a", "e", "i", "o", "u", "b", "d", "k", "l", "m", "n", "p", "s", "t"]


def make_workspace(
    root: str | Path,
    n_utts: int = 8,
    n_val: int = 2,
    speakers: Sequence[str] = ("default",),
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    min_symbols: int = 4,
    max_symbols: int = 12,
    frames_per_symbol: tuple[int, int] = (1, 5),
    n_mels: int = 80,
    seed: int = 0,
    lengths: Sequence[int] | None = None,
    durations: bool = True,
    extra_symbols_json: dict | None = None,
    language: str = "es",
) -> Path:
    """A workspace at `root`; `lengths` (symbols per utterance) overrides the random lengths;
    `language` is the text language its config.yaml and symbols.json name."""
    from tts_cli.workspace import atomic_save_npy, atomic_write_json, atomic_write_jsonl, atomic_write_text

    root = Path(root)
    rng = np.random.default_rng(seed)
    symbols = list(symbols)
    shapes = rng.normal(-4.0, 1.5, size=(len(symbols), n_mels)).astype(np.float32)
    base_f0 = {spk: 110.0 + 60.0 * i for i, spk in enumerate(speakers)}
    rows, voiced_by_speaker = [], {spk: [] for spk in speakers}
    for u in range(n_utts):
        uid = f"utt{u:03d}"
        spk = speakers[u % len(speakers)]
        n = int(lengths[u]) if lengths is not None else int(rng.integers(min_symbols, max_symbols + 1))
        ids = rng.integers(1, len(symbols), size=n)
        dur = rng.integers(frames_per_symbol[0], frames_per_symbol[1] + 1, size=n).astype(np.int32)
        T = int(dur.sum())
        frame_sym = np.repeat(ids, dur)
        mel = shapes[frame_sym].T + 0.05 * rng.standard_normal((n_mels, T)).astype(np.float32)
        f0 = np.where(frame_sym % 3 == 0, 0.0, base_f0[spk] + 5.0 * (frame_sym % 7)).astype(np.float32)
        energy = np.linalg.norm(mel, axis=0).astype(np.float32)
        atomic_save_npy(root / "mels" / f"{uid}.npy", mel.astype(np.float32))
        if durations:
            atomic_save_npy(root / "durations" / f"{uid}.npy", dur)
        atomic_save_npy(root / "pitch" / f"{uid}.npy", f0)
        atomic_save_npy(root / "energy" / f"{uid}.npy", energy)
        voiced_by_speaker[spk].append(f0[f0 > 0])
        sym_list = [symbols[i] for i in ids]
        rows.append({
            "id": uid, "speaker": spk, "text": "".join(sym_list), "normalized": "".join(sym_list),
            "phonemes": "".join(sym_list), "symbols": sym_list, "audio": f"wavs/{uid}.wav",
            "n_frames": T, "duration_s": T * 256 / 22050, "trim_start_s": 0.0,
            "split": "val" if u >= n_utts - n_val else "train",
        })
    atomic_write_jsonl(root / "manifest.jsonl", rows)
    atomic_write_json(root / "symbols.json", {"symbols": symbols, "pad": "_", "language": language,
                                              "text_type": "phonemes", **(extra_symbols_json or {})})
    atomic_write_text(root / "config.yaml", (
        "audio:\n  sample_rate: 22050\n  n_fft: 1024\n  hop_length: 256\n  win_length: 1024\n  n_mels: %d\n"
        "  fmin: 0.0\n  fmax: 8000.0\n  log_clamp: 1.0e-05\n"
        "text:\n  language: %s\n  text_type: phonemes\n  normalize: true\n  keep_stress: true\n" % (n_mels, language)
    ))
    all_voiced = np.concatenate([np.concatenate(v) for v in voiced_by_speaker.values() if v])
    stats = {
        "speakers": {spk: {"mean": float(np.concatenate(v).mean()), "std": float(np.concatenate(v).std() or 1.0),
                           "n_voiced_frames": int(sum(len(x) for x in v))}
                     for spk, v in voiced_by_speaker.items() if v},
        "corpus": {"mean": float(all_voiced.mean()), "std": float(all_voiced.std())},
    }
    atomic_write_json(root / "pitch_stats.json", stats)
    return root


def read_metrics(run_dir: str | Path, kind: str = "train") -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    return [r for r in (json.loads(x) for x in path.read_text().splitlines() if x.strip()) if r.get("kind") == kind]
