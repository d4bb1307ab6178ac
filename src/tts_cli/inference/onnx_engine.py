"""`tts synthesize --engine onnx`: an exported voice (`tts export --format onnx`) run by onnxruntime.

The text front end, sentence chunking, speaker and pitch controls, pauses and output writing are
the torch Synthesizer's own (`tts_cli.inference.synthesizer.Synthesizer(..., engine="onnx")`): this module
only stands in for its two networks, with the same call shapes:

- `OnnxFastPitch.infer(symbols [B, N], lens [B], ...)` -> the dict FastPitch.infer returns,
  running fastpitch.onnx one row at a time (the graph has batch size 1; rows are padded back);
- `OnnxHiFiGAN(mel [B, n_mels, T]) -> wav [B, T * hop]`, a `tts_cli.inference.vocoders.Vocoder`.

Torch tensors stay the glue between the pieces (torch is a core dependency); the compute runs in
onnxruntime with as many intra-op threads as torch was given.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tts_cli.checkpoints.format import CheckpointHeader
from tts_cli.errors import OnnxError
from tts_cli.inference.vocoders import Vocoder
from tts_cli.onnx_export import FASTPITCH_FILE, HIFIGAN_FILE, METADATA_KEY


def _session(path: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        raise OnnxError("--engine onnx needs onnxruntime: pip install -e '.[onnx]'") from None
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise OnnxError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]})") from None


def onnx_files(model: str | os.PathLike) -> tuple[Path, Path]:
    """(fastpitch.onnx, hifigan.onnx) of an export folder, or of a fastpitch.onnx given directly."""
    p = Path(model)
    folder = p if p.is_dir() else p.parent
    fp = p if p.is_file() else folder / FASTPITCH_FILE
    if not fp.is_file():
        raise OnnxError(f"{p}: no {FASTPITCH_FILE}; make one with `tts export --format onnx --out {p}`")
    return fp, folder / HIFIGAN_FILE


class OnnxFastPitch:
    """fastpitch.onnx behind FastPitch.infer's interface (the parts the Synthesizer uses)."""

    def __init__(self, path: Path, meta: dict, session=None):
        self.session = session or _session(path)
        self.config = SimpleNamespace(n_speakers=int(meta.get("n_speakers", 1)),
                                      n_mel_channels=int(meta.get("n_mels", 80)))
        self.speaker_emb = True if self.config.n_speakers > 1 else None
        self.pitch_mean = float(meta.get("pitch_mean", 0.0))
        self.pitch_std = float(meta.get("pitch_std", 0.0))

    def infer(self, symbols, symbol_lens=None, speakers=None, pace: float = 1.0, pitch_transform=None,
              energy_scale: float = 1.0, durations=None, **_):
        import torch

        if durations is not None:
            raise OnnxError("the ONNX engine predicts durations inside its graph: fixed durations need --engine torch")
        sym = symbols.cpu().numpy().astype(np.int64)
        lens = symbol_lens.cpu().numpy() if symbol_lens is not None else (sym != 0).sum(1)
        mul = float(getattr(pitch_transform, "mul", 1.0))
        add = float(getattr(pitch_transform, "add", 0.0))
        if pitch_transform is not None and not hasattr(pitch_transform, "mul"):
            raise OnnxError("the ONNX engine takes pitch controls as tts_cli.inference.controls.PitchControl")
        spk = int(speakers) if speakers is not None else 0
        f32 = lambda v: np.array([v], np.float32)  # noqa: E731
        rows = []
        for r in range(sym.shape[0]):
            mel, dur, pitch = self.session.run(None, {
                "symbols": sym[r:r + 1, :int(lens[r])], "speaker": np.array([spk], np.int64), "pace": f32(pace),
                "pitch_mul": f32(mul), "pitch_add": f32(add), "energy_scale": f32(energy_scale)})
            rows.append((mel[0], dur[0], pitch[0]))
        B, N, T = len(rows), sym.shape[1], max(m.shape[1] for m, _, _ in rows)
        mels = torch.zeros(B, self.config.n_mel_channels, T)
        durs = torch.zeros(B, N, dtype=torch.long)
        pitch = torch.zeros(B, N)
        mel_lens = torch.zeros(B, dtype=torch.long)
        for r, (m, d, p) in enumerate(rows):
            n = len(d)
            durs[r, :n], pitch[r, :n] = torch.from_numpy(d), torch.from_numpy(p)
            mel_lens[r] = int(d.sum())  # the graph keeps one frame for an empty row; the lengths say 0
            mels[r, :, :m.shape[1]] = torch.from_numpy(m)
        return {"mel": mels, "mel_lens": mel_lens, "durations": durs, "pitch": pitch, "energy": None}


class OnnxHiFiGAN(Vocoder):
    """hifigan.onnx as a vocoder: each mel whole, one row at a time."""

    name = "hifigan-onnx"

    def __init__(self, path: Path, audio: dict):
        super().__init__(audio, "cpu")
        self.path = path
        self.session = _session(path)

    def __call__(self, mel):
        import torch

        mel = torch.as_tensor(mel).float().cpu()
        single = mel.dim() == 2
        x = (mel[None] if single else mel).numpy()
        wav = np.concatenate([self.session.run(None, {"mel": x[r:r + 1]})[0] for r in range(x.shape[0])])
        out = torch.from_numpy(wav)
        return out[0] if single else out

    def describe(self) -> str:
        return f"hifigan onnx ({self.path.name}, onnxruntime {self.session.get_session_options().intra_op_num_threads} thread(s))"


def load_onnx(model: str | os.PathLike) -> tuple[dict, OnnxFastPitch, OnnxHiFiGAN | None]:
    """(checkpoint-like metadata dict, acoustic model, vocoder or None when hifigan.onnx is absent)."""
    fp_path, voc_path = onnx_files(model)
    session = _session(fp_path)
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise OnnxError(f"{fp_path}: not a tts-cli export (no `{METADATA_KEY}` metadata); re-export it with "
                        "`tts export --format onnx`")
    meta = json.loads(raw)
    header = CheckpointHeader("fastpitch", {}, step=int(meta.get("step") or 0), symbols=list(meta["symbols"]),
                              text=meta.get("text") or {}, audio=meta.get("audio") or {},
                              pitch_stats=meta.get("pitch_stats") or {}, speakers=meta.get("speakers") or {})
    ckpt = {**header.to_dict(), "onnx": meta}
    vocoder = OnnxHiFiGAN(voc_path, {**ckpt["audio"]}) if voc_path.is_file() else None
    return ckpt, OnnxFastPitch(fp_path, meta, session), vocoder
