"""FastPitch 1.1 (Łańcucki 2021; Badlani et al. 2021 aligner), as NVIDIA's reference defines it.

symbols -> embedding -> FFT encoder (+ speaker embedding added to its input)
        -> duration predictor (log domain), pitch predictor, energy predictor
        -> + pitch embedding, + energy embedding (teacher-forced with targets in training)
        -> length regulator -> FFT decoder -> Linear -> mel

Parameter and buffer names equal NVIDIA DeepLearningExamples' FastPitch (see
`tts_cli.checkpoints`), so the base preset's state dict has the same 185 keys and shapes.

Training (`forward`) takes durations either from the batch (`alignment="external"`, from
`tts align`) or from the built-in aligner + monotonic alignment search each step
(`alignment="learned"`, FastPitch 1.1). Per-symbol pitch/energy targets are averaged from the
frame values inside `forward`, because learned durations change every step.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from tts_cli.config import Settings, check_known_keys
from tts_cli.errors import ConfigError
from tts_cli.models.alignment import AlignmentEncoder, BinarizationLoss, ForwardSumLoss, binarize, prior_batch
from tts_cli.models.transformer import FFTransformer, mask_from_lens
from tts_cli.prosody import average_per_symbol

ALIGNMENTS = ("external", "learned")


@dataclass
class FastPitchConfig(Settings):
    """All sizes of the model. `base` = NVIDIA's defaults; any field can come from a recipe."""

    SECTION: ClassVar[str] = "model"

    n_mel_channels: int = 80
    n_symbols: int = 148  # set from the symbol table when the model is built
    padding_idx: int = 0
    d_model: int = 384  # symbol embedding = encoder/decoder width
    # encoder ("input FFT")
    encoder_layers: int = 6
    encoder_heads: int = 1
    encoder_d_head: int = 64
    encoder_ff: int = 1536
    encoder_kernel: int = 3
    encoder_dropout: float = 0.1
    encoder_dropatt: float = 0.1
    encoder_dropemb: float = 0.0
    # decoder ("output FFT")
    decoder_layers: int = 6
    decoder_heads: int = 1
    decoder_d_head: int = 64
    decoder_ff: int = 1536
    decoder_kernel: int = 3
    decoder_dropout: float = 0.1
    decoder_dropatt: float = 0.1
    decoder_dropemb: float = 0.0
    # predictors: n_layers x (Conv1d k -> ReLU -> LayerNorm -> Dropout) -> Linear
    duration_predictor_layers: int = 2
    duration_predictor_filters: int = 256
    duration_predictor_kernel: int = 3
    duration_predictor_dropout: float = 0.1
    pitch_predictor_layers: int = 2
    pitch_predictor_filters: int = 256
    pitch_predictor_kernel: int = 3
    pitch_predictor_dropout: float = 0.1
    pitch_embedding_kernel: int = 3
    energy_conditioning: bool = True
    energy_predictor_layers: int = 2
    energy_predictor_filters: int = 256
    energy_predictor_kernel: int = 3
    energy_predictor_dropout: float = 0.1
    energy_embedding_kernel: int = 3
    # speakers: an embedding only when n_speakers > 1 (as NVIDIA)
    n_speakers: int = 1
    speaker_emb_weight: float = 1.0
    # the aligner (training only; needed for alignment="learned")
    aligner: bool = True
    aligner_channels: int = 80
    aligner_temperature: float = 0.0005
    # inference: longest duration (frames) a symbol may get
    max_duration: int = 75
    # where training durations come from: "external" (batch) or "learned" (aligner + MAS)
    alignment: str = "external"

    def __post_init__(self):
        if self.alignment not in ALIGNMENTS:
            raise ConfigError(f"model.alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        if self.alignment == "learned" and not self.aligner:
            raise ConfigError("model.alignment 'learned' needs model.aligner: true")

    @classmethod
    def from_dict(cls, d: dict | None = None, **overrides) -> "FastPitchConfig":
        """From a recipe's `model` section: an optional `preset` name plus any fields to override.
        Unknown keys are an error (a typo must not silently train the wrong model)."""
        d = {**(d or {}), **{k: v for k, v in overrides.items() if v is not None}}
        preset = d.pop("preset", "base")
        if preset not in PRESETS:
            raise ConfigError(f"unknown model preset {preset!r} (known: {', '.join(PRESETS)})")
        check_known_keys("model", d, cls)
        return replace(PRESETS[preset], **d)


PRESETS: dict[str, FastPitchConfig] = {
    # NVIDIA's reference defaults: 46,266,420 parameters with energy, aligner, 148 symbols.
    "base": FastPitchConfig(),
    # Small enough to train in minutes on a CPU (demo, tests): ~2 M parameters.
    "tiny": FastPitchConfig(
        d_model=128,
        encoder_layers=2, encoder_ff=512,
        decoder_layers=2, decoder_ff=512,
        duration_predictor_filters=128, pitch_predictor_filters=128, energy_predictor_filters=128,
    ),
}


class ConvReLUNorm(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(out_channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, N]
        x = F.relu(self.conv(x))
        return self.dropout(self.norm(x.transpose(1, 2)).transpose(1, 2))


class TemporalPredictor(nn.Module):
    """One value per symbol (duration, pitch or energy) from the encoder output."""

    def __init__(self, in_channels: int, filters: int, kernel_size: int, dropout: float, n_layers: int):
        super().__init__()
        self.layers = nn.Sequential(*[
            ConvReLUNorm(in_channels if i == 0 else filters, filters, kernel_size, dropout) for i in range(n_layers)
        ])
        self.fc = nn.Linear(filters, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x [B, N, C], mask [B, N, 1] -> [B, N]."""
        out = self.layers((x * mask).transpose(1, 2)).transpose(1, 2)
        return (self.fc(out) * mask).squeeze(-1)


def regulate_length(enc_out: torch.Tensor, durations: torch.Tensor, max_len: int | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat each symbol's vector `durations` times.

    enc_out [B, N, C]; durations integer [B, N] -> ([B, T, C], frame lengths [B]); frames past a
    row's length are zero. T = max_len (pad or cut) or the longest row. The cumulative sum stays
    an integer tensor: in bf16/fp16 (as NVIDIA's cast to the activations' dtype does) frame
    indices above 256/2048 are not representable and frames land on the wrong symbol.
    """
    durations = durations.long().clamp_min(0)
    ends = durations.cumsum(1)  # [B, N], exclusive end frame of each symbol
    lens = ends[:, -1]
    T = int(lens.max()) if max_len is None else int(max_len)
    frames = torch.arange(T, device=enc_out.device).unsqueeze(0).expand(enc_out.size(0), T).contiguous()
    # symbol of frame t = number of symbols that end at or before t
    idx = torch.searchsorted(ends, frames, right=True).clamp_max(enc_out.size(1) - 1)
    out = torch.gather(enc_out, 1, idx.unsqueeze(2).expand(-1, -1, enc_out.size(2)))
    valid = frames < lens.unsqueeze(1)
    return out * valid.unsqueeze(2).to(out.dtype), lens.clamp_max(T)


class FastPitch(nn.Module):
    def __init__(self, config: FastPitchConfig | None = None, **overrides):
        super().__init__()
        cfg = replace(config or FastPitchConfig(), **overrides)
        self.config = cfg
        d = cfg.d_model
        self.encoder = FFTransformer(
            cfg.encoder_layers, cfg.encoder_heads, d, cfg.encoder_d_head, cfg.encoder_ff, cfg.encoder_kernel,
            cfg.encoder_dropout, cfg.encoder_dropatt, cfg.encoder_dropemb,
            n_embed=cfg.n_symbols, padding_idx=cfg.padding_idx,
        )
        self.speaker_emb = nn.Embedding(cfg.n_speakers, d) if cfg.n_speakers > 1 else None
        self.duration_predictor = TemporalPredictor(
            d, cfg.duration_predictor_filters, cfg.duration_predictor_kernel, cfg.duration_predictor_dropout,
            cfg.duration_predictor_layers)
        self.decoder = FFTransformer(
            cfg.decoder_layers, cfg.decoder_heads, d, cfg.decoder_d_head, cfg.decoder_ff, cfg.decoder_kernel,
            cfg.decoder_dropout, cfg.decoder_dropatt, cfg.decoder_dropemb,
        )
        self.pitch_predictor = TemporalPredictor(
            d, cfg.pitch_predictor_filters, cfg.pitch_predictor_kernel, cfg.pitch_predictor_dropout,
            cfg.pitch_predictor_layers)
        self.pitch_emb = nn.Conv1d(1, d, cfg.pitch_embedding_kernel, padding=cfg.pitch_embedding_kernel // 2)
        # Hz statistics for pitch transforms at inference (targets are normalised per speaker
        # by the data pipeline; these hold the corpus / single-speaker values).
        self.register_buffer("pitch_mean", torch.zeros(1))
        self.register_buffer("pitch_std", torch.zeros(1))
        if cfg.energy_conditioning:
            self.energy_predictor = TemporalPredictor(
                d, cfg.energy_predictor_filters, cfg.energy_predictor_kernel, cfg.energy_predictor_dropout,
                cfg.energy_predictor_layers)
            self.energy_emb = nn.Conv1d(1, d, cfg.energy_embedding_kernel, padding=cfg.energy_embedding_kernel // 2)
        else:
            self.energy_predictor = self.energy_emb = None
        self.proj = nn.Linear(d, cfg.n_mel_channels)
        if cfg.aligner:
            self.attention = AlignmentEncoder(cfg.n_mel_channels, d, cfg.aligner_channels, cfg.aligner_temperature)
        else:
            self.attention = None

    # ------------------------------------------------------------------ pieces
    def _encode(self, symbols: torch.Tensor, symbol_lens: torch.Tensor | None, speakers: torch.Tensor | None):
        cond: torch.Tensor | float = 0.0
        if self.speaker_emb is not None:
            if speakers is None:
                speakers = torch.zeros(symbols.size(0), dtype=torch.long, device=symbols.device)
            cond = self.speaker_emb(speakers).unsqueeze(1) * self.config.speaker_emb_weight
        return self.encoder(symbols, symbol_lens, conditioning=cond)

    def _embed_prosody(self, emb: nn.Conv1d, values: torch.Tensor) -> torch.Tensor:
        """[B, N] per-symbol values -> [B, N, d_model]."""
        return emb(values.unsqueeze(1).to(self.proj.weight.dtype)).transpose(1, 2)

    def align(self, batch: dict, enc_mask: torch.Tensor):
        """Aligner + MAS: (durations [B, N] long, soft, hard, logprob), attention [B, 1, T, N]."""
        symbols, symbol_lens = batch["symbols"], batch["symbol_lens"]
        mels, mel_lens = batch["mels"], batch["mel_lens"]
        prior = batch.get("attn_prior")
        if prior is None:
            prior = prior_batch(symbol_lens.tolist(), mel_lens.tolist(), max_text=symbols.size(1),
                                max_mel=mels.size(2)).to(mels.device)
        keys = self.encoder.word_emb(symbols).transpose(1, 2)  # raw embeddings, as NVIDIA
        text_mask = enc_mask.squeeze(2) > 0
        # The aligner is small but its squared distances overflow fp16: always run it in fp32.
        with torch.autocast(device_type=mels.device.type, enabled=False):
            attn_soft, attn_logprob = self.attention(mels.float(), keys.float(), text_mask, prior.float())
        with torch.no_grad():
            attn_hard = binarize(attn_logprob.detach().float(), symbol_lens, mel_lens)
        durations = attn_hard.sum(2)[:, 0, :].round().long()
        return durations, attn_soft, attn_hard, attn_logprob

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict, alignment: str | None = None) -> dict:
        """Teacher-forced training pass; see the module docstring and `FastPitchLoss`.

        batch: symbols Long [B, N] (0 = pad), symbol_lens [B], mels [B, n_mel, T] (zero padded),
        mel_lens [B], pitch [B, T] (normalised, 0 = unvoiced), energy [B, T], speakers Long [B]
        (optional), durations Long [B, N] (needed for "external"), attn_prior [B, T, N] (optional,
        "learned"; computed here when absent).
        """
        alignment = alignment or self.config.alignment
        if alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {alignment!r}")
        symbols, symbol_lens = batch["symbols"], batch["symbol_lens"]
        mels, mel_lens = batch["mels"], batch["mel_lens"]
        T = mels.size(2)

        enc_out, enc_mask = self._encode(symbols, symbol_lens, batch.get("speakers"))
        log_dur_pred = self.duration_predictor(enc_out, enc_mask)
        pitch_pred = self.pitch_predictor(enc_out, enc_mask)

        attn_soft = attn_hard = attn_logprob = None
        if alignment == "learned":
            if self.attention is None:
                raise ValueError("alignment='learned' needs a model built with aligner=True")
            dur_tgt, attn_soft, attn_hard, attn_logprob = self.align(batch, enc_mask)
        else:
            if batch.get("durations") is None:
                raise ValueError("alignment='external' needs batch['durations'] (run `tts align`)")
            dur_tgt = batch["durations"].long()

        pitch_tgt = average_per_symbol(batch["pitch"].float(), dur_tgt)
        enc_out = enc_out + self._embed_prosody(self.pitch_emb, pitch_tgt)

        energy_pred = energy_tgt = None
        if self.energy_predictor is not None:
            energy_pred = self.energy_predictor(enc_out, enc_mask)
            energy_tgt = torch.log1p(average_per_symbol(batch["energy"].float().clamp_min(0), dur_tgt))
            enc_out = enc_out + self._embed_prosody(self.energy_emb, energy_tgt)

        frames, _ = regulate_length(enc_out, dur_tgt, max_len=T)
        dec_out, dec_mask = self.decoder(frames, mel_lens)
        mel_out = self.proj(dec_out)
        return {
            "mel_out": mel_out,  # [B, T, n_mel]
            "log_dur_pred": log_dur_pred,  # [B, N]
            "dur_tgt": dur_tgt,  # [B, N] long
            "pitch_pred": pitch_pred, "pitch_tgt": pitch_tgt,  # [B, N]
            "energy_pred": energy_pred, "energy_tgt": energy_tgt,  # [B, N] or None
            "attn_soft": attn_soft, "attn_hard": attn_hard, "attn_logprob": attn_logprob,  # [B, 1, T, N]
            "symbol_mask": enc_mask.squeeze(2) > 0,  # [B, N] bool
            "mel_mask": dec_mask.squeeze(2) > 0,  # [B, T] bool
        }

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def infer(
        self,
        symbols: torch.Tensor,
        symbol_lens: torch.Tensor | None = None,
        speakers: torch.Tensor | int | None = None,
        pace: float = 1.0,
        pitch_scale: float = 1.0,
        pitch_shift_hz: float = 0.0,
        pitch_transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        energy_scale: float = 1.0,
        durations: torch.Tensor | None = None,
        pitch: torch.Tensor | None = None,
        energy: torch.Tensor | None = None,
        max_frames: int | None = None,
    ) -> dict[str, Any]:
        """Symbols [B, N] (0 = pad) -> mel [B, n_mel, T'].

        pace: speed factor (2.0 = twice as fast); durations = floor(clamp(exp(log_dur) - 1, 0,
        max_duration) / pace + 0.5). Pitch controls act on the predicted per-symbol normalised pitch:
        pitch_scale multiplies it (0 = flat, NVIDIA's amplify), pitch_shift_hz adds Hz / pitch_std,
        pitch_transform(pitch [B, N], symbol_mask [B, N]) -> pitch is applied last. energy_scale
        multiplies the predicted log(1 + energy). durations / pitch / energy (per symbol) replace
        the predictions when given (durations are then used as is, pace still applies).
        Returns mel, mel_lens, durations (frames per symbol, after pace), pitch, energy.
        """
        if symbol_lens is None:
            symbol_lens = (symbols != self.config.padding_idx).sum(1)
        if isinstance(speakers, int):
            speakers = torch.full((symbols.size(0),), speakers, dtype=torch.long, device=symbols.device)
        enc_out, enc_mask = self._encode(symbols, symbol_lens, speakers)
        mask2 = enc_mask.squeeze(2)

        if durations is None:
            log_dur = self.duration_predictor(enc_out, enc_mask)
            dur = torch.clamp(torch.exp(log_dur) - 1.0, 0.0, float(self.config.max_duration))
        else:
            dur = durations.float()
        dur = torch.floor(dur / pace + 0.5).long() * mask2.long()  # NVIDIA rounds half up

        if pitch is None:
            pitch = self.pitch_predictor(enc_out, enc_mask)
            if pitch_scale != 1.0:
                pitch = pitch * pitch_scale
            if pitch_shift_hz:
                std = float(self.pitch_std) if float(self.pitch_std) > 0 else 1.0
                pitch = pitch + pitch_shift_hz / std
            if pitch_transform is not None:
                pitch = pitch_transform(pitch, mask2 > 0)
            pitch = pitch * mask2
        enc_out = enc_out + self._embed_prosody(self.pitch_emb, pitch)

        if self.energy_predictor is not None:
            if energy is None:
                energy = self.energy_predictor(enc_out, enc_mask) * energy_scale
            enc_out = enc_out + self._embed_prosody(self.energy_emb, energy)

        frames, mel_lens = regulate_length(enc_out, dur, max_len=max_frames)
        if frames.size(1) == 0:  # nothing to say: one empty frame keeps shapes valid
            frames = enc_out.new_zeros(enc_out.size(0), 1, enc_out.size(2))
        dec_out, _ = self.decoder(frames, mel_lens.clamp_min(1))
        mel = self.proj(dec_out) * mask_from_lens(mel_lens, dec_out.size(1)).unsqueeze(2)
        return {"mel": mel.transpose(1, 2), "mel_lens": mel_lens, "durations": dur, "pitch": pitch,
                "energy": energy}


# ---------------------------------------------------------------------------- loss

class FastPitchLoss(nn.Module):
    """NVIDIA's loss with the recipe's weights: mel MSE 1.0, duration 0.1, pitch 0.1, energy 0.1,
    forward-sum attention 1.0, plus binarisation (KL) x `kl_weight` (ramped by the caller).

    Masks: mel frames by `mel_lens` (NVIDIA masks `target != 0`, equal for zero-padded batches),
    mel bins by `batch["mel_bins"]` when given (a telephone recording fills only the lower ones),
    per-symbol terms by `symbol_lens`. Returns (total, terms) where terms holds detached tensors
    (no host sync per step; call `.item()` when logging).
    """

    def __init__(self, mel_weight: float = 1.0, dur_weight: float = 0.1, pitch_weight: float = 0.1,
                 energy_weight: float = 0.1, attn_weight: float = 1.0):
        super().__init__()
        self.mel_weight, self.dur_weight = mel_weight, dur_weight
        self.pitch_weight, self.energy_weight, self.attn_weight = pitch_weight, energy_weight, attn_weight

        self.forward_sum = ForwardSumLoss()
        self.binarization = BinarizationLoss()

    @staticmethod
    def _masked_mse(pred: torch.Tensor, tgt: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(pred.dtype)
        while m.dim() < pred.dim():
            m = m.unsqueeze(-1)
        err = (pred.float() - tgt.float()).pow(2) * m
        n = m.expand_as(err).sum().clamp_min(1)
        return err.sum() / n

    def forward(self, out: dict, batch: dict, kl_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
        mel_mask, sym_mask = out["mel_mask"], out["symbol_mask"]
        mel_tgt = batch["mels"].transpose(1, 2)
        if batch.get("mel_bins") is not None:
            # bins above a narrowband recording's Nyquist hold no speech: leave them out of the loss
            recorded = torch.arange(mel_tgt.size(2), device=mel_tgt.device)[None, :] < batch["mel_bins"][:, None]
            mel_mask = mel_mask[:, :, None] & recorded[:, None, :]
        terms = {
            "mel": self._masked_mse(out["mel_out"], mel_tgt, mel_mask),
            "duration": self._masked_mse(out["log_dur_pred"], torch.log1p(out["dur_tgt"].float()), sym_mask),
            "pitch": self._masked_mse(out["pitch_pred"], out["pitch_tgt"], sym_mask),
        }
        total = (self.mel_weight * terms["mel"] + self.dur_weight * terms["duration"]
                 + self.pitch_weight * terms["pitch"])
        if out.get("energy_pred") is not None:
            terms["energy"] = self._masked_mse(out["energy_pred"], out["energy_tgt"], sym_mask)
            total = total + self.energy_weight * terms["energy"]
        if out.get("attn_logprob") is not None:
            terms["attn"] = self.forward_sum(out["attn_logprob"].float(), batch["symbol_lens"], batch["mel_lens"])
            terms["kl"] = self.binarization(out["attn_hard"], out["attn_soft"].float())
            total = total + self.attn_weight * terms["attn"] + kl_weight * terms["kl"]
        terms = {k: v.detach() for k, v in terms.items()}
        terms["total"] = total.detach()
        return total, terms


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["FastPitchConfig", "PRESETS", "FastPitch", "FastPitchLoss", "regulate_length", "TemporalPredictor",
           "count_parameters", "ALIGNMENTS"]
