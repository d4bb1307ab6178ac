"""The one audio module every stage uses: load, trim, normalise, log-mel, save.

`mel_spectrogram` is pure torch (its mel filterbank is built here with numpy), so training and
synthesis on a GPU box without librosa compute exactly the features preprocessing wrote.
Heavy imports (soundfile, soxr, torch) happen inside functions: importing this module is cheap.
"""
from __future__ import annotations

import io
import os
import re
import struct
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tts_cli.errors import AudioError
from tts_cli.workspace import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tts_cli.config import AudioConfig

SILENCE_PEAK = 1e-4  # below this peak amplitude a recording is treated as silent


# ----------------------------------------------------------------------------- loading

def load_audio(path: str | os.PathLike, target_sr: int) -> np.ndarray:
    """Read any format soundfile knows as float32 mono in [-1, 1] at `target_sr`.

    Channels are averaged. Float files whose peak exceeds 1 are scaled down (not clipped).
    Raises AudioError for missing, unreadable, corrupt, truncated or empty files.
    """
    return load_audio_and_rate(path, target_sr)[0]


def load_audio_and_rate(path: str | os.PathLike, target_sr: int) -> tuple[np.ndarray, int]:
    """(audio as `load_audio` returns it, the file's own sample rate): resampling cannot fill the
    band above the source's Nyquist, so callers that care need the rate it had."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"missing file: {path}")
    if path.stat().st_size == 0:
        raise AudioError("empty audio (0-byte file)")
    _check_riff_complete(path)
    try:
        with sf.SoundFile(str(path)) as f:
            declared, sr, fmt = f.frames, f.samplerate, f.format
            data = f.read(dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, EOFError) as e:  # LibsndfileError is a RuntimeError
        # libsndfile says "Error opening '<path>': <why>"; the caller names the file, the reason is <why>
        reason = re.sub(r"^Error opening\s*'?'?\s*:?\s*", "", str(e).replace(str(path), "")).strip(" :'")
        if "lost sync" in reason or "malformed" in reason or "truncat" in reason.lower():
            raise AudioError(f"truncated/corrupt file: {reason}") from None
        raise AudioError(f"unreadable audio: {reason or type(e).__name__}") from None
    # libsndfile reports fewer frames than the header promised when the data ends early;
    # MP3 frame counts are estimates, so only a large shortfall counts there.
    tolerance = declared // 10 if fmt == "MP3" else 0
    if declared > 0 and len(data) < declared - tolerance:
        raise AudioError(f"truncated/corrupt file: {len(data)} of {declared} frames present")
    if data.shape[0] == 0:
        raise AudioError("empty audio (no samples)")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wav)):
        raise AudioError("truncated/corrupt file: NaN or infinite samples")
    peak = float(np.max(np.abs(wav)))
    if peak > 1.0:
        wav = wav / peak
    if sr != target_sr:
        wav = resample(wav, sr, target_sr)
    return np.ascontiguousarray(np.clip(wav, -1.0, 1.0), dtype=np.float32), int(sr)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """High-quality resampling (soxr, as librosa's default; scipy polyphase as fallback)."""
    if orig_sr == target_sr:
        return wav.astype(np.float32, copy=False)
    try:
        import soxr

        return soxr.resample(wav, orig_sr, target_sr, quality="HQ").astype(np.float32)
    except ImportError:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(int(orig_sr), int(target_sr))
        return resample_poly(wav, target_sr // g, orig_sr // g).astype(np.float32)


def _check_riff_complete(path: Path) -> None:
    """Detect a WAV whose `data` chunk is shorter than its header says.

    libsndfile silently reads what is there, so a half-copied file would otherwise pass as
    a shorter recording. Placeholder sizes written by streaming encoders (0, 0xFFFFFFFF)
    are accepted.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return
                present = size - (pos + 8)
                if present < chunk_size:
                    raise AudioError(
                        f"truncated/corrupt file: header promises {chunk_size} data bytes, {present} present"
                    )
                return
            pos += 8 + chunk_size + (chunk_size & 1)  # chunks are word-aligned
        raise AudioError("truncated/corrupt file: WAV without a complete 'data' chunk")


# ----------------------------------------------------------------------------- trimming

def trim_silence(
    wav: np.ndarray, sr: int, top_db: float = 40.0, margin_s: float = 0.05,
    frame_length: int = 1024, hop_length: int = 256,
) -> tuple[np.ndarray, int]:
    """Cut leading/trailing silence (frames quieter than `top_db` below the loudest frame).

    Energy-based like librosa.effects.trim, then `margin_s` of the cut audio is kept on each
    side. Returns (trimmed, start_sample): `start_sample` samples were removed at the start,
    so a time t in the trimmed audio is t + start_sample / sr in the source.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.size == 0:
        raise AudioError("empty audio")
    if float(np.max(np.abs(wav))) < SILENCE_PEAK:
        raise AudioError("all-silent audio")
    rms = _frame_rms(wav, frame_length, hop_length)
    ref = float(rms.max())
    if ref <= 0.0:
        raise AudioError("all-silent audio")
    loud = np.flatnonzero(20.0 * np.log10(np.maximum(rms, 1e-10) / ref) > -top_db)
    if loud.size == 0:
        raise AudioError("all-silent audio")
    start = int(loud[0]) * hop_length
    end = min(wav.size, (int(loud[-1]) + 1) * hop_length)
    margin = int(round(margin_s * sr))
    start, end = max(0, start - margin), min(wav.size, end + margin)
    return wav[start:end], start


def _frame_rms(wav: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """RMS of centred frames (frame t is centred on sample t * hop_length)."""
    padded = np.pad(wav, frame_length // 2)
    n_frames = 1 + (padded.size - frame_length) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length][:n_frames]
    return np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))


def peak_normalize(wav: np.ndarray, level: float = 0.95) -> np.ndarray:
    """Scale so the absolute peak equals `level` (silence is returned unchanged)."""
    wav = np.asarray(wav, dtype=np.float32)
    peak = float(np.max(np.abs(wav))) if wav.size else 0.0
    if peak < SILENCE_PEAK:
        return wav
    return (wav * (level / peak)).astype(np.float32)


# ----------------------------------------------------------------------------- mel features

def num_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT over `n_samples` samples."""
    return 1 + int(n_samples) // int(hop_length)


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    linear = freq / f_sp
    log = min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep
    return np.where(freq >= min_log_hz, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    linear = mel * f_sp
    log = min_log_hz * np.exp(logstep * (mel - min_log_mel))
    return np.where(mel >= min_log_mel, log, linear)


def _mel_edges_hz(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The n_mels + 2 edges of the triangular filters, evenly spaced on the Slaney mel scale."""
    return mel_to_hz(np.linspace(hz_to_mel(float(fmin)), hz_to_mel(float(fmax)), int(n_mels) + 2))


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """Triangular filters evenly spaced on the Slaney mel scale, each scaled to unit area
    ("slaney" norm: 2 / bandwidth in Hz). Shape [n_mels, 1 + n_fft // 2], float32."""
    fmax = sr / 2.0 if fmax is None else float(fmax)
    bin_hz = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    edges_hz = _mel_edges_hz(n_mels, fmin, fmax)
    lower, center, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bin_hz[None, :] - lower) / (center - lower)
    falling = (upper - bin_hz[None, :]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)
    return weights.astype(np.float32)


def mel_top_hz(cfg) -> float:
    """The upper edge of the mel range of audio settings `cfg`: fmax, or the Nyquist frequency."""
    return cfg.sample_rate / 2.0 if cfg.fmax is None else float(cfg.fmax)


def mel_bins_recorded(source_sr: int, cfg) -> int:
    """How many mel bins (from the bottom) a clip sampled at `source_sr` can fill: those whose lower
    edge lies below its Nyquist frequency. The rest stay at the log floor after resampling."""
    return int(np.sum(_mel_edges_hz(cfg.n_mels, cfg.fmin, mel_top_hz(cfg))[:-2] < source_sr / 2.0))


def limit_to_recorded_band(mel: np.ndarray, source_sr: int | None, cfg) -> np.ndarray:
    """`mel` [n_mels, T] with the bins a `source_sr` recording cannot fill set to the log floor, as
    in that recording's own mel: MCD against it then compares only what both hold."""
    k = mel_bins_recorded(int(source_sr), cfg) if source_sr else mel.shape[0]
    if k >= mel.shape[0]:
        return mel
    mel = np.array(mel, copy=True)
    mel[k:] = np.log(float(cfg.log_clamp))
    return mel


@lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, device: str):
    import torch

    return torch.from_numpy(mel_filterbank(sr, n_fft, n_mels, fmin, fmax)).to(device)


@lru_cache(maxsize=16)
def _hann(win_length: int, device: str):
    import torch

    return torch.hann_window(win_length, periodic=True, device=device)


def mel_spectrogram(wav: Any, cfg: "AudioConfig") -> "torch.Tensor":
    """Log-mel spectrogram: natural log of clamp(mel-filtered |STFT|, cfg.log_clamp).

    Centred STFT (reflect padding of n_fft // 2), periodic Hann window of cfg.win_length,
    magnitude (power 1), Slaney mel filterbank. Accepts numpy or torch, [N] or [B, N];
    returns float32 [n_mels, T] or [B, n_mels, T] on the input's device, T = 1 + N // hop.
    """
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(wav)
    if not torch.is_floating_point(x):
        raise TypeError(f"mel_spectrogram needs float audio, got {x.dtype}")
    x = x.float()
    single = x.dim() == 1
    if single:
        x = x.unsqueeze(0)
    elif x.dim() != 2:
        raise ValueError(f"mel_spectrogram expects [N] or [B, N] audio, got shape {tuple(x.shape)}")
    n_fft, hop = int(cfg.n_fft), int(cfg.hop_length)
    pad = n_fft // 2
    # reflect padding needs more samples than the pad; tiny clips fall back to zeros
    mode = "reflect" if x.shape[-1] > pad else "constant"
    x = F.pad(x.unsqueeze(1), (pad, pad), mode=mode).squeeze(1)
    device = str(x.device)
    spec = torch.stft(
        x, n_fft=n_fft, hop_length=hop, win_length=int(cfg.win_length),
        window=_hann(int(cfg.win_length), device), center=False, return_complex=True,
    ).abs()
    fmax = None if cfg.fmax is None else float(cfg.fmax)
    basis = _mel_basis(int(cfg.sample_rate), n_fft, int(cfg.n_mels), float(cfg.fmin), fmax, device)
    mel = torch.log(torch.clamp(torch.matmul(basis, spec), min=float(cfg.log_clamp)))
    return mel[0] if single else mel


# ----------------------------------------------------------------------------- saving

def wav_bytes(wav: Any, sr: int) -> bytes:
    """16-bit PCM mono WAV file content, standard library only (GPU boxes lack soundfile).

    Samples are clipped to [-1, 1] and quantised as soundfile (libsndfile 1.2) writes PCM_16,
    floor(x * 32768) within the int16 range: the same bytes as the soundfile writer this replaced."""
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sr))
        w.writeframes(pcm16_bytes(wav))
    return buf.getvalue()


def pcm16_bytes(wav: Any) -> bytes:
    """Raw 16-bit little-endian mono samples, quantised as `wav_bytes` writes them."""
    if hasattr(wav, "detach"):
        wav = wav.detach().float().cpu().numpy()
    wav = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
    return np.clip(np.floor(wav * np.float32(32768.0)), -32768, 32767).astype("<i2").tobytes()


STREAM_SIZE = 0xFFFFFFFF  # "length unknown" in a streamed WAV header, as other streaming TTS servers write it


def wav_stream_header(sr: int) -> bytes:
    """A 16-bit mono PCM WAV header whose RIFF and data sizes say 'unknown' (0xFFFFFFFF), for
    audio sent while it is made: readers take the samples up to the end of the stream."""
    fmt = struct.pack("<HHIIHH", 1, 1, int(sr), int(sr) * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", STREAM_SIZE) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", STREAM_SIZE))


def save_wav(path: str | os.PathLike, wav: Any, sr: int) -> Path:
    """Write 16-bit PCM mono WAV atomically (temp file + rename)."""
    return atomic_write_bytes(path, wav_bytes(wav, sr))


# Output formats by file extension: WAV always (standard library); the others through soundfile,
# when its libsndfile can write them (MP3 needs libsndfile >= 1.1).
AUDIO_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
                 ".oga": ("OGG", "VORBIS"), ".mp3": ("MP3", "MPEG_LAYER_III")}


def audio_format(path: str | os.PathLike) -> tuple[str, str]:
    """(format, subtype) that `save_audio` writes for this file name; AudioError naming the file
    and the extensions there are, for an unknown extension or one this soundfile cannot write."""
    suffix = Path(path).suffix.lower()
    fmt = AUDIO_FORMATS.get(suffix)
    if fmt is None:
        raise AudioError(f"{path}: unknown audio file extension {suffix or '(none)'!r}; "
                         f"use {', '.join(AUDIO_FORMATS)}")
    if suffix != ".wav":
        try:
            import soundfile as sf

            ok = fmt[1] in sf.available_subtypes(fmt[0])
        except (ImportError, OSError):
            ok = False
        if not ok:
            raise AudioError(f"{path}: this installation cannot write {fmt[0]} (soundfile / libsndfile lacks it); "
                             "use .wav")
    return fmt


def audio_bytes(wav: Any, sr: int, fmt: str, subtype: str) -> bytes:
    """File content of mono audio in one of AUDIO_FORMATS' (format, subtype) pairs."""
    if fmt == "WAV":
        return wav_bytes(wav, sr)
    import soundfile as sf

    if hasattr(wav, "detach"):
        wav = wav.detach().float().cpu().numpy()
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0), sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def save_audio(path: str | os.PathLike, wav: Any, sr: int) -> Path:
    """Write mono audio atomically in the format its extension names (see AUDIO_FORMATS)."""
    return atomic_write_bytes(path, audio_bytes(wav, sr, *audio_format(path)))


__all__ = [
    "AudioError", "load_audio", "resample", "trim_silence", "peak_normalize", "num_frames",
    "mel_filterbank", "mel_spectrogram", "save_wav", "wav_bytes", "hz_to_mel", "mel_to_hz",
    "AUDIO_FORMATS", "audio_format", "save_audio", "audio_bytes", "pcm16_bytes", "wav_stream_header", "STREAM_SIZE",
]
