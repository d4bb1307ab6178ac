"""Text -> speech with a trained FastPitch checkpoint and a vocoder (`tts synthesize`).

The text goes through the front end the checkpoint was trained with (its `text` section:
language, text type, normalisation, stress marks), never a re-guessed one. Long text is cut into
sentences, and sentences longer than `max_chunk_chars` at clause punctuation (, ; : —), then at
spaces; the chunks run through FastPitch as one padded batch and are joined with short pauses
(`SENTENCE_PAUSE_S` after a sentence, `CLAUSE_PAUSE_S` inside one). `[[ ... ]]` inserts phonemes
(IPA) verbatim. Symbols the model does not know are dropped with one warning listing them.

Controls (all optional, combinable):
- speed: > 1 faster (2.0 = half the duration); durations are divided by it (NVIDIA's `pace`).
- pitch_shift: semitones; multiplies the predicted F0 of every symbol by 2 ** (st / 12).
- pitch_scale: scales the predicted contour around the speaker's mean F0 (0 = flat at the mean,
  1 = unchanged, 2 = twice the excursions); applied before the shift.
  Both act on FastPitch's per-symbol normalised pitch z = (f0 - mean) / std with the speaker's
  statistics stored in the checkpoint: f0' = (mean + scale * (f0 - mean)) * 2 ** (st / 12).
- energy_scale: multiplies the predicted per-symbol energy (FastPitch's log(1 + energy)).
- speaker: a name from the checkpoint's speaker map, or an id.
- contrast (Synthesizer): spreads the mel around its per-bin mean before the vocoder
  (`mel_contrast`; 1 = off; default UNMATCHED_CONTRAST with the unmatched universal HiFi-GAN).

RTF (real-time factor) = compute time / audio duration (0.1 = ten times faster than real time);
compute time covers the front end, FastPitch and the vocoder, not loading the models.
"""
from __future__ import annotations

import logging
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tts_cli.checkpoints.format import CheckpointHeader, require_kind
from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint
from tts_cli.config import DEFAULT_AUDIO, check_audio_match
from tts_cli.errors import CheckpointError, OnnxError, SynthesisError
from tts_cli.inference.controls import UNMATCHED_CONTRAST, PitchControl, check_controls, mel_contrast
from tts_cli.inference.cpu import resolve_device, tune_malloc_for_inference
from tts_cli.inference.resolve import find_vocoder_beside
from tts_cli.inference.vocoders import PRECISIONS, Vocoder, load_default_vocoder, load_vocoder
from tts_cli.prosody import denormalize_pitch
from tts_cli.text import espeak_info, texts_to_symbols
from tts_cli.text.chunking import MAX_CHUNK_CHARS, Chunk, pause_samples, split_text
from tts_cli.text.frontend import SILENT_SYMBOLS, espeak_version_warning
from tts_cli.text.symbols import SymbolTable, canonical_text_type

log = logging.getLogger(__name__)

FADE_S = 0.005  # fade at chunk edges: no click where chunks meet the pauses


class SynthesisWarning(UserWarning):
    """Something the user should know (dropped symbols, espeak-ng version drift)."""


# ----------------------------------------------------------------------------- text splitting


# ----------------------------------------------------------------------------- mel contrast


# ----------------------------------------------------------------------------- CPU threads


# ----------------------------------------------------------------------------- results

@dataclass
class Result:
    wav: np.ndarray  # float32 [N] in [-1, 1]
    sample_rate: int
    mel: np.ndarray  # float32 [n_mels, T] (pauses included as silence frames)
    durations: np.ndarray  # int32 frames per symbol (after speed), chunks concatenated
    symbols: list[str]  # the model symbols spoken, one per duration
    seconds: float  # audio duration
    rtf: float  # compute time / audio duration
    compute_s: float = 0.0
    pitch_hz: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # per symbol, after controls
    chunks: list[str] = field(default_factory=list)
    speaker: str | None = None
    id: str | None = None
    frame_s: float = 0.0  # seconds per mel frame (hop / sample rate)


# ----------------------------------------------------------------------------- the synthesizer

ENGINES = ("torch", "onnx")  # onnx: an export of `tts export --format onnx` (tts_cli.inference.onnx_engine)


class Synthesizer:
    """FastPitch checkpoint (+ vocoder) -> `synthesize(text) -> Result`.

    model: a checkpoint path or an already loaded checkpoint dict (ours or NVIDIA's FastPitch).
    vocoder: None (a bundled voice's own vocoder, else one beside the model file, else the default:
    the universal HiFi-GAN V1), `griffin-lim`, `universal`, a HiFi-GAN checkpoint path, or a ready
    `tts_cli.inference.vocoders.Vocoder`.
    """

    def __init__(self, model: str | os.PathLike | dict, vocoder: Any = None, device: str | None = "cpu",
                 precision: str = "auto", max_chunk_chars: int = MAX_CHUNK_CHARS, batch_size: int = 16,
                 contrast: float | None = None, engine: str = "torch"):
        import torch

        if precision not in PRECISIONS:
            raise SynthesisError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        if int(batch_size) < 1:
            raise SynthesisError(f"--batch-size {batch_size}: must be >= 1")
        if engine not in ENGINES:
            raise SynthesisError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
        self.engine = engine
        self.model_path = None if isinstance(model, dict) else Path(model)
        onnx_vocoder = None
        if engine == "onnx":
            ckpt, onnx_vocoder, contrast = self._load_onnx(model, device, contrast)
        else:
            ckpt = self._load_torch(model, device)
        self.ckpt = ckpt
        self.header = CheckpointHeader.of(ckpt)
        self._read_front_end(self.header)
        self.audio = {**DEFAULT_AUDIO, **self.header.audio}
        self.speakers = dict(self.header.speakers)
        self.pitch_stats = self.header.pitch_stats
        self.max_chunk_chars, self.batch_size = max_chunk_chars, batch_size
        self._espeak_checked = False
        self.vocoder = self._open_vocoder(vocoder, onnx_vocoder, precision)
        self.sample_rate = int(self.audio["sample_rate"])
        self.hop = int(self.audio["hop_length"])
        # None: what suits the vocoder (UNMATCHED_CONTRAST for the universal V1, else 1 = off)
        if contrast is None:
            contrast = UNMATCHED_CONTRAST if getattr(self.vocoder, "label", None) == "universal" else 1.0
        if not 0.5 <= float(contrast) <= 2.0:
            raise SynthesisError(f"mel contrast {contrast}: use 1 (off) or a factor between 0.5 and 2")
        self.mel_contrast = float(contrast)
        self._torch = torch
        if torch.device(self.device).type == "cpu":
            tune_malloc_for_inference()  # FastPitch's decoder activations page-fault too

    def _load_onnx(self, model, device, contrast) -> tuple[dict, Any, float | None]:
        """`tts export --format onnx` files run by onnxruntime (tts_cli.inference.onnx_engine)."""
        from tts_cli.inference.onnx_engine import load_onnx

        if device not in (None, "auto", "cpu"):
            raise SynthesisError("--engine onnx runs on the CPU: drop --device or use --engine torch")
        self.device = "cpu"
        try:
            ckpt, self.model, onnx_vocoder = load_onnx(model)
        except OnnxError as e:
            raise SynthesisError(str(e)) from None
        if contrast is None:  # the contrast the torch path used when the voice was exported
            contrast = float(ckpt["onnx"].get("mel_contrast", 1.0))
        return ckpt, onnx_vocoder, contrast

    def _load_torch(self, model, device) -> dict:
        self.device = resolve_device(device)
        try:
            ckpt = model if isinstance(model, dict) else load_checkpoint(model)
            require_kind(ckpt, "fastpitch", self.model_path or "model", "pass it as --vocoder")
        except CheckpointError as e:
            raise SynthesisError(str(e)) from None
        self.model = build_fastpitch(ckpt, aligner=False).eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        return ckpt

    def _read_front_end(self, header: CheckpointHeader) -> None:
        """The text front end the checkpoint was trained with, never a re-guessed one."""
        if not header.symbols:
            raise SynthesisError(f"{self.model_path or 'model'}: the checkpoint has no symbol table")
        self.table = SymbolTable(header.symbols)
        text = header.text
        self.text_settings = text
        self.language = header.language
        self.text_type = canonical_text_type(str(text.get("text_type") or "text"))
        self.normalize = bool(text.get("normalize", True))
        self.keep_stress = bool(text.get("keep_stress", True))

    def _open_vocoder(self, vocoder: Any, onnx_vocoder: Any, precision: str):
        if isinstance(vocoder, Vocoder):
            check_audio_match(self.audio, vocoder.audio)
            return vocoder
        if vocoder is None and onnx_vocoder is not None:
            return onnx_vocoder
        spec = vocoder if vocoder is not None else find_vocoder_beside(self.model_path)
        if spec is None:  # no HiFi-GAN of its own: the universal V1
            return load_default_vocoder(self.audio, device=self.device, precision=precision)
        return load_vocoder(spec, self.audio, device=self.device, precision=precision)

    # ------------------------------------------------------------------ info
    def speaker_names(self) -> list[str]:
        return self.header.speaker_names()

    def resolve_speaker(self, speaker: str | int | None) -> tuple[int, str | None]:
        """(id, name) for a speaker name or id; None = the first speaker."""
        n = int(self.model.config.n_speakers)
        by_id = {v: k for k, v in self.speakers.items()}
        if speaker is None or speaker == "":
            return 0, by_id.get(0)
        s = str(speaker)
        if s in self.speakers:
            return self.speakers[s], s
        if re.fullmatch(r"\d+", s) and int(s) < n:
            return int(s), by_id.get(int(s))
        known = ", ".join(f"{name} ({i})" for i, name in sorted(by_id.items())) or "0"
        raise SynthesisError(f"unknown speaker {speaker!r}; this voice has: {known}")

    def _speaker_pitch(self, name: str | None) -> tuple[float, float]:
        stats = (self.pitch_stats.get("speakers") or {}).get(name) or self.pitch_stats.get("corpus") or {}
        mean, std = float(stats.get("mean", 0.0)), float(stats.get("std", 0.0))
        if std <= 1e-3:
            mean, std = float(self.model.pitch_mean), float(self.model.pitch_std)
        return mean, (std if std > 1e-3 else 1.0)

    # ------------------------------------------------------------------ front end
    def _input_type(self, text_type: str | None) -> str:
        want = canonical_text_type(text_type) if text_type else self.text_type
        model_chars = self.text_type == "characters"
        if model_chars and want == "phonemes":
            raise SynthesisError("this voice reads characters, not phonemes: drop --text-type phonemes")
        if model_chars and want == "text":
            want = "characters"
        if not model_chars and want == "characters":
            raise SynthesisError("this voice reads phonemes: use --text-type text (espeak-ng) or phonemes (IPA)")
        return want

    def _check_espeak(self) -> None:
        if self._espeak_checked:
            return
        self._espeak_checked = True

        try:
            current = espeak_info().get("version")
        except Exception:  # noqa: BLE001 - the phonemiser itself will report a missing espeak
            return
        msg = espeak_version_warning(self.ckpt, current)
        if msg:
            warnings.warn(msg, SynthesisWarning, stacklevel=3)

    def _chunk_symbols(self, chunks: list[Chunk], input_type: str, dropped: dict[str, int]) -> list[list[str]]:
        """Model symbols per chunk; text pieces of all chunks go through the front end in one call.
        Characters the front end took out as unspeakable are counted into `dropped`."""
        texts = [c for ch in chunks for k, c in ch.segments if k == "text"]
        phon = [c for ch in chunks for k, c in ch.segments if k == "phonemes"]
        if texts and input_type == "text":
            self._check_espeak()
        text_res = iter(texts_to_symbols(texts, self.language, input_type, self.normalize, self.keep_stress)
                        if texts else [])
        phon_res = iter(texts_to_symbols(phon, self.language, "phonemes", False, self.keep_stress) if phon else [])
        out = []
        for ch in chunks:
            syms: list[str] = []
            for kind, _ in ch.segments:
                res = next(text_res if kind == "text" else phon_res)
                for c in res.dropped:
                    dropped[c] = dropped.get(c, 0) + 1
                piece = res.symbols
                if piece and syms and syms[-1] != " " and piece[0] != " ":
                    syms.append(" ")  # a word boundary between a text piece and a phoneme block
                syms += piece
            out.append(syms)
        return out

    # ------------------------------------------------------------------ synthesis
    def synthesize(self, text: str, speaker: str | int | None = None, speed: float = 1.0, pitch_shift: float = 0.0,
                   pitch_scale: float = 1.0, energy_scale: float = 1.0, text_type: str | None = None,
                   frames_per_symbol: float | None = None) -> Result:
        """Speak `text`; see the module docstring for the controls. `frames_per_symbol` replaces
        the predicted durations (benchmarks, tests)."""
        return self.synthesize_many([text], speaker=speaker, speed=speed, pitch_shift=pitch_shift,
                                    pitch_scale=pitch_scale, energy_scale=energy_scale, text_type=text_type,
                                    frames_per_symbol=frames_per_symbol)[0]

    def synthesize_many(self, texts: Sequence[str], ids: Sequence[str] | None = None, speaker: str | int | None = None,
                        speed: float = 1.0, pitch_shift: float = 0.0, pitch_scale: float = 1.0,
                        energy_scale: float = 1.0, text_type: str | None = None,
                        frames_per_symbol: float | None = None) -> list[Result]:
        """Several utterances; FastPitch runs on batches of chunks, the vocoder on batches of
        similar length. One warning lists the unknown symbols of all texts."""
        check_controls(speed=speed, pitch_shift=pitch_shift, pitch_scale=pitch_scale, energy_scale=energy_scale)
        t_start = time.perf_counter()
        input_type = self._input_type(text_type)
        spk_id, spk_name = self.resolve_speaker(speaker)
        mean, std = self._speaker_pitch(spk_name)
        plan, encoded, keep = self._encode_all(texts, ids, input_type)

        # pitch controls act on the normalised per-symbol pitch
        ratio = 2.0 ** (float(pitch_shift) / 12.0)
        transform = None
        if ratio != 1.0 or pitch_scale != 1.0:
            transform = PitchControl(mul=float(pitch_scale) * ratio, add=mean * (ratio - 1.0) / std)
        with self._torch.inference_mode():
            mels, info = self._run_fastpitch(encoded, keep, spk_id, (mean, std), dict(
                pace=float(speed), pitch_transform=transform, energy_scale=float(energy_scale)), frames_per_symbol)
            wavs = self._vocode({i: self._contrast(m) for i, m in mels.items()})
        results = []
        for u in range(len(texts)):
            chunks = [i for i in keep if plan[i][0] == u]
            results.append(self._assemble(texts[u], ids[u] if ids else None, [(plan[i][1], i) for i in chunks],
                                          encoded, wavs, mels, info, speed, spk_name))
        # compute time is shared by the batch: split it by audio length
        total = time.perf_counter() - t_start
        total_audio = sum(r.seconds for r in results) or 1.0
        for r in results:
            r.compute_s = total * r.seconds / total_audio
            r.rtf = r.compute_s / r.seconds if r.seconds > 0 else float("inf")
        return results

    def _encode_all(self, texts: Sequence[str], ids: Sequence[str] | None, input_type: str):
        """The front end for every chunk of every text: (plan [(utterance, Chunk)], symbol ids per
        chunk, chunks with something to say). Warns once about characters and symbols left out."""
        plan: list[tuple[int, Chunk]] = []
        for u, text in enumerate(texts):
            plan += [(u, c) for c in split_text(text, self.max_chunk_chars)]
        dropped: dict[str, int] = {}
        sym_lists = self._chunk_symbols([c for _, c in plan], input_type, dropped) if plan else []
        if dropped:
            listed = ", ".join(f"{c!r} ×{n}" if n > 1 else repr(c) for c, n in dropped.items())
            warnings.warn(f"left out {sum(dropped.values())} character(s) that a voice in language {self.language} "
                          f"cannot speak (another script, emoji or symbols): {listed}", SynthesisWarning, stacklevel=4)
        unknown: dict[str, int] = {}
        encoded: list[list[int]] = []
        for syms in sym_lists:
            ids_, unk = self.table.encode_with_unknown(syms)
            for s in unk:
                unknown[s] = unknown.get(s, 0) + 1
            encoded.append(ids_)
        if unknown:
            listed = ", ".join(f"{s!r} ×{n}" if n > 1 else repr(s) for s, n in sorted(unknown.items()))
            warnings.warn(f"dropped {sum(unknown.values())} symbol(s) the voice does not know: {listed}",
                          SynthesisWarning, stacklevel=4)
        keep = [i for i, e in enumerate(encoded) if any(self.table.symbols[j] not in SILENT_SYMBOLS for j in e)]
        spoken = {u for u, _ in (plan[i] for i in keep)}
        empty = [u for u in range(len(texts)) if u not in spoken]
        if empty:
            which = ", ".join(repr((ids[u] if ids else texts[u])[:40]) for u in empty[:5])
            why = (f"its characters are not language {self.language} (another script, emoji or symbols)" if dropped
                   else "no symbol of the text is known to this voice")
            raise SynthesisError(f"nothing to say in {which}: {why}")
        return plan, encoded, keep

    def _run_fastpitch(self, encoded: list[list[int]], keep: list[int], spk_id: int, pitch_stats: tuple,
                       controls: dict, frames_per_symbol: float | None) -> tuple[dict, dict]:
        """FastPitch in batches of chunks sorted by length (little padding): ({chunk: mel},
        {chunk: (durations, pitch in Hz)})."""
        torch = self._torch
        order = sorted(keep, key=lambda i: len(encoded[i]))
        mels: dict[int, Any] = {}
        info: dict[int, tuple] = {}
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            n = max(len(encoded[i]) for i in idx)
            sym = torch.zeros(len(idx), n, dtype=torch.long)
            for r, i in enumerate(idx):
                sym[r, :len(encoded[i])] = torch.tensor(encoded[i])
            lens = torch.tensor([len(encoded[i]) for i in idx])
            durs = None
            if frames_per_symbol is not None:
                durs = torch.zeros(len(idx), n)
                for r, i in enumerate(idx):
                    edges = np.round(np.arange(len(encoded[i]) + 1) * float(frames_per_symbol))
                    durs[r, :len(encoded[i])] = torch.from_numpy(np.diff(edges))
                durs = durs.to(self.device)
            out = self.model.infer(sym.to(self.device), lens.to(self.device),
                                   speakers=spk_id if self.model.speaker_emb is not None else None,
                                   durations=durs, **controls)
            for r, i in enumerate(idx):
                T = int(out["mel_lens"][r])
                N = len(encoded[i])
                mels[i] = out["mel"][r, :, :T].float()
                info[i] = (out["durations"][r, :N].cpu().numpy().astype(np.int32),
                           denormalize_pitch(out["pitch"][r, :N].float().cpu().numpy(), *pitch_stats)
                           .astype(np.float32))
        return mels, info

    def _assemble(self, text: str, uid: str | None, chunks: list[tuple[Chunk, int]], encoded, wavs, mels, info,
                  speed: float, spk_name: str | None) -> Result:
        """One utterance: its chunks joined by their pauses."""
        floor = float(np.log(float(self.audio.get("log_clamp", 1e-5))))
        parts, mel_parts, durs, syms, pitch, chunk_texts = [], [], [], [], [], []
        for chunk, i in chunks:
            pause = pause_samples(chunk, speed, self.sample_rate)
            parts += [wavs[i], np.zeros(pause, np.float32)]
            mel_parts += [mels[i].cpu().numpy(), np.full((mels[i].shape[0], int(round(pause / self.hop))), floor,
                                                        np.float32)]
            durs.append(info[i][0])
            pitch.append(info[i][1])
            syms += self.table.decode(encoded[i])
            chunk_texts.append(chunk.text)
        if parts:  # no trailing pause after the last chunk
            parts, mel_parts = parts[:-1], mel_parts[:-1]
        wav = np.concatenate(parts).astype(np.float32)
        if not any(len(p) for p in parts[::2]):
            raise SynthesisError(
                f"the model predicted no speech frames for {text!r}: it is probably undertrained "
                f"(checkpoint step {self.ckpt.get('step')}); train it longer or pick a later checkpoint")
        peak = float(np.abs(wav).max()) if wav.size else 0.0
        if peak > 1.0:
            wav *= 0.95 / peak
        return Result(
            wav=wav, sample_rate=self.sample_rate, mel=np.concatenate(mel_parts, axis=1),
            durations=np.concatenate(durs), symbols=syms, seconds=len(wav) / self.sample_rate, rtf=0.0,
            pitch_hz=np.concatenate(pitch), chunks=chunk_texts, speaker=spk_name, id=uid,
            frame_s=self.hop / self.sample_rate)

    def _contrast(self, mel):
        """`mel_contrast` on one chunk's mel (see `mel_contrast`); the Result keeps FastPitch's mel."""
        if self.mel_contrast == 1.0 or mel.shape[-1] == 0:
            return mel
        floor = float(np.log(float(self.audio.get("log_clamp", 1e-5))))
        return mel_contrast(mel, self.mel_contrast, floor)

    def _vocode(self, mels: dict[int, Any], batch_frames: int = 4000) -> dict[int, np.ndarray]:
        """Vocoder over chunks grouped by similar length (padding with silence frames); a CPU
        HiFi-GAN gets all chunks at once (`HiFiGANVocoder.vocode_many`: fixed-size windows)."""
        torch = self._torch
        if torch.device(self.device).type == "cpu":
            batch_frames = 0  # one chunk at a time: no padding work, activations that stay small
        floor = float(np.log(float(self.audio.get("log_clamp", 1e-5))))
        out = {i: np.zeros(0, np.float32) for i in mels if mels[i].shape[1] == 0}  # no frames: nothing to vocode
        order = sorted((i for i in mels if i not in out), key=lambda i: mels[i].shape[1], reverse=True)
        groups: list[list[int]] = []
        for i in order:
            T = mels[i].shape[1]
            g = groups[-1] if groups else None
            if g and mels[g[0]].shape[1] * (len(g) + 1) <= batch_frames and T >= 0.8 * mels[g[0]].shape[1]:
                g.append(i)
            else:
                groups.append([i])
        fade = max(1, int(FADE_S * self.sample_rate))
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)

        def faded(w: np.ndarray) -> np.ndarray:
            if len(w) > 2 * fade:
                w[:fade] *= ramp
                w[-fade:] *= ramp[::-1]
            return w

        if getattr(self.vocoder, "window", 0) and order:  # CPU HiFi-GAN: all chunks in fixed-size windows
            wavs = self.vocoder.vocode_many([mels[i] for i in order])
            for i, w in zip(order, wavs):
                out[i] = faded(w.float().cpu().numpy().copy())
            return out
        for g in groups:
            T = mels[g[0]].shape[1]
            batch = torch.full((len(g), mels[g[0]].shape[0], T), floor, device=mels[g[0]].device)
            for r, i in enumerate(g):
                batch[r, :, :mels[i].shape[1]] = mels[i]
            wav = self.vocoder(batch).float().cpu().numpy()
            for r, i in enumerate(g):
                out[i] = faded(wav[r, :mels[i].shape[1] * self.hop].copy())
        return out
