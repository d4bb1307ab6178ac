"""NVIDIA FastPitch checkpoints -> ours.

NVIDIA DeepLearningExamples FastPitch checkpoints (`state_dict` / `ema_state_dict`, maybe
`module.`-prefixed, plus `config` / `train_setup`) are recognised by `load_checkpoint` and
converted to the layout above. Key mapping ours <-> NVIDIA: **identity** after stripping the
`module.` (DDP) and `_orig_mod.` (torch.compile) prefixes; our FastPitch uses NVIDIA's module
names on purpose. Their symbol table is not stored in the file; `english_basic` (148 symbols)
and `english_basic_lowercase` (123) are rebuilt here from NVIDIA's definition (pad `_`, `-`,
punctuation, letters, 84 `@`-prefixed ARPAbet phones); any other set must be passed as `symbols=`.
"""
from __future__ import annotations

import re
from typing import Sequence

import torch

from tts_cli.checkpoints.format import FORMAT_VERSION, SPEAKER_EMB, SYMBOL_EMB, WRAPPER_PREFIXES
from tts_cli.errors import CheckpointError
from tts_cli.models.fastpitch import FastPitchConfig

# LJSpeech statistics NVIDIA's recipe writes into the pitch buffers.
NVIDIA_PITCH_MEAN, NVIDIA_PITCH_STD = 214.72203, 65.72038


_ARPABET = (
    "AA AA0 AA1 AA2 AE AE0 AE1 AE2 AH AH0 AH1 AH2 AO AO0 AO1 AO2 AW AW0 AW1 AW2 AY AY0 AY1 AY2 "
    "B CH D DH EH EH0 EH1 EH2 ER ER0 ER1 ER2 EY EY0 EY1 EY2 F G HH IH IH0 IH1 IH2 IY IY0 IY1 IY2 "
    "JH K L M N NG OW OW0 OW1 OW2 OY OY0 OY1 OY2 P R S SH T TH UH UH0 UH1 UH2 UW UW0 UW1 UW2 "
    "V W Y Z ZH"
).split()


_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


NVIDIA_SYMBOL_SETS: dict[str, list[str]] = {
    "english_basic": list("_" + "-" + "!'(),.:;? " + _UPPER + _UPPER.lower()) + ["@" + p for p in _ARPABET],
    "english_basic_lowercase": list("_" + "-" + "!'\"(),.:;? " + _UPPER.lower()) + ["@" + p for p in _ARPABET],
}


# FastPitchConfig field -> NVIDIA `config` key (the constructor kwargs NVIDIA saves).
NVIDIA_CONFIG_KEYS = {
    "n_mel_channels": "n_mel_channels", "n_symbols": "n_symbols", "padding_idx": "padding_idx",
    "d_model": "symbols_embedding_dim",
    "encoder_layers": "in_fft_n_layers", "encoder_heads": "in_fft_n_heads", "encoder_d_head": "in_fft_d_head",
    "encoder_ff": "in_fft_conv1d_filter_size", "encoder_kernel": "in_fft_conv1d_kernel_size",
    "encoder_dropout": "p_in_fft_dropout", "encoder_dropatt": "p_in_fft_dropatt", "encoder_dropemb": "p_in_fft_dropemb",
    "decoder_layers": "out_fft_n_layers", "decoder_heads": "out_fft_n_heads", "decoder_d_head": "out_fft_d_head",
    "decoder_ff": "out_fft_conv1d_filter_size", "decoder_kernel": "out_fft_conv1d_kernel_size",
    "decoder_dropout": "p_out_fft_dropout", "decoder_dropatt": "p_out_fft_dropatt",
    "decoder_dropemb": "p_out_fft_dropemb",
    "duration_predictor_layers": "dur_predictor_n_layers", "duration_predictor_filters": "dur_predictor_filter_size",
    "duration_predictor_kernel": "dur_predictor_kernel_size", "duration_predictor_dropout": "p_dur_predictor_dropout",
    "pitch_predictor_layers": "pitch_predictor_n_layers", "pitch_predictor_filters": "pitch_predictor_filter_size",
    "pitch_predictor_kernel": "pitch_predictor_kernel_size", "pitch_predictor_dropout": "p_pitch_predictor_dropout",
    "pitch_embedding_kernel": "pitch_embedding_kernel_size",
    "energy_conditioning": "energy_conditioning",
    "energy_predictor_layers": "energy_predictor_n_layers",
    "energy_predictor_filters": "energy_predictor_filter_size",
    "energy_predictor_kernel": "energy_predictor_kernel_size",
    "energy_predictor_dropout": "p_energy_predictor_dropout",
    "energy_embedding_kernel": "energy_embedding_kernel_size",
    "n_speakers": "n_speakers", "speaker_emb_weight": "speaker_emb_weight",
}


def nvidia_key_to_ours(key: str) -> str:
    """NVIDIA state-dict key -> ours (identity after stripping DDP / compile prefixes)."""
    return WRAPPER_PREFIXES.sub("", key)


def is_nvidia_fastpitch(obj: dict) -> bool:
    """An NVIDIA DeepLearningExamples FastPitch checkpoint (or a bare state dict of one)."""
    state = obj.get("state_dict") or obj.get("ema_state_dict") or obj
    return isinstance(state, dict) and any(nvidia_key_to_ours(str(k)) == SYMBOL_EMB for k in state)


def from_nvidia_fastpitch(obj: dict, *, symbols: Sequence[str] | None = None, prefer_ema: bool = False,
                          source: str = "NVIDIA checkpoint") -> dict:
    """Convert NVIDIA's dict (`state_dict`, `ema_state_dict`, `config`, `train_setup`, ...) to ours."""
    if prefer_ema and obj.get("ema_state_dict"):
        state, which = obj["ema_state_dict"], "ema_state_dict"
    elif obj.get("state_dict"):
        state, which = obj["state_dict"], "state_dict"
    elif obj.get("ema_state_dict"):
        state, which = obj["ema_state_dict"], "ema_state_dict"
    else:
        state, which = obj, "bare state dict"
    state = {nvidia_key_to_ours(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    nv_config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    setup = obj.get("train_setup") if isinstance(obj.get("train_setup"), dict) else {}
    config = nvidia_config_to_ours(nv_config, state)

    n_rows = state[SYMBOL_EMB].shape[0]
    if symbols is None:
        symbol_set = setup.get("symbol_set") or "english_basic"
        symbols = NVIDIA_SYMBOL_SETS.get(symbol_set)
        if symbols is None or len(symbols) != n_rows:
            raise CheckpointError(
                f"{source}: cannot tell the symbol table of this NVIDIA checkpoint ({n_rows} embedding rows, "
                f"symbol_set {symbol_set!r}); pass the list of its symbols in embedding order")
    elif len(symbols) != n_rows:
        raise CheckpointError(f"{source}: {len(symbols)} symbols given but the embedding has {n_rows} rows")

    mean = float(state["pitch_mean"].reshape(-1)[0]) if "pitch_mean" in state else 0.0
    std = float(state["pitch_std"].reshape(-1)[0]) if "pitch_std" in state else 0.0
    if std <= 0:  # trained before the buffers existed: the recipe's values
        mean, std = float(setup.get("pitch_mean") or NVIDIA_PITCH_MEAN), float(setup.get("pitch_std") or NVIDIA_PITCH_STD)
    n_speakers = config["n_speakers"]
    speakers = {str(i): i for i in range(n_speakers)} if n_speakers > 1 else {"default": 0}
    return {
        "format_version": FORMAT_VERSION,
        "kind": "fastpitch",
        "model": state,
        "config": config,
        "symbols": list(symbols),
        "step": int(obj.get("iteration") or 0),
        "epoch": int(obj.get("epoch") or 0),
        "text": {"language": "en", "text_type": "characters+arpabet", "phonemiser": "nvidia",
                 "symbol_set": setup.get("symbol_set") or "english_basic",
                 "text_cleaners": setup.get("text_cleaners"), "espeak_ng": None},
        "audio": {
            "sample_rate": int(setup.get("sampling_rate") or 22050),
            "n_fft": int(setup.get("filter_length") or 1024),
            "hop_length": int(setup.get("hop_length") or 256),
            "win_length": int(setup.get("win_length") or 1024),
            "n_mels": int(config["n_mel_channels"]),
            "fmin": float(setup.get("mel_fmin") or 0.0),
            "fmax": float(setup.get("mel_fmax") or 8000.0),
            "log_clamp": 1e-5,
        },
        "pitch_stats": {"corpus": {"mean": mean, "std": std},
                        "speakers": {name: {"mean": mean, "std": std} for name in speakers}},
        "speakers": speakers,
        "source": {"format": "nvidia-deeplearningexamples-fastpitch", "weights": which, "file": source},
    }


def nvidia_config_to_ours(nv_config: dict, state: dict) -> dict:
    """FastPitchConfig dict from NVIDIA's `config` (if any) and the state dict's shapes (which win)."""
    cfg = FastPitchConfig().to_dict()
    for ours, theirs in NVIDIA_CONFIG_KEYS.items():
        if theirs in (nv_config or {}):
            cfg[ours] = nv_config[theirs]

    def n_layers(prefix: str) -> int:
        ids = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}\.layers\.(\d+)\.", k))}
        return max(ids) + 1 if ids else 0

    emb = state[SYMBOL_EMB]
    cfg["n_symbols"], cfg["d_model"] = int(emb.shape[0]), int(emb.shape[1])
    cfg["n_mel_channels"] = int(state["proj.weight"].shape[0]) if "proj.weight" in state else cfg["n_mel_channels"]
    for part, nv in (("encoder", "encoder"), ("decoder", "decoder")):
        cfg[f"{part}_layers"] = n_layers(nv)
        ff = state.get(f"{nv}.layers.0.pos_ff.CoreNet.0.weight")
        if ff is not None:
            cfg[f"{part}_ff"], cfg[f"{part}_kernel"] = int(ff.shape[0]), int(ff.shape[2])
        o_net = state.get(f"{nv}.layers.0.dec_attn.o_net.weight")
        if o_net is not None:
            cfg[f"{part}_d_head"] = int(o_net.shape[1]) // int(cfg[f"{part}_heads"])
    for pred in ("duration", "pitch", "energy"):
        nv = "duration_predictor" if pred == "duration" else f"{pred}_predictor"
        conv = state.get(f"{nv}.layers.0.conv.weight")
        if conv is not None:
            cfg[f"{pred}_predictor_layers"] = n_layers(nv)
            cfg[f"{pred}_predictor_filters"], cfg[f"{pred}_predictor_kernel"] = int(conv.shape[0]), int(conv.shape[2])
    cfg["energy_conditioning"] = "energy_emb.weight" in state
    for name in ("pitch", "energy"):
        w = state.get(f"{name}_emb.weight")
        if w is not None:
            cfg[f"{name}_embedding_kernel"] = int(w.shape[2])
    cfg["n_speakers"] = int(state[SPEAKER_EMB].shape[0]) if SPEAKER_EMB in state else 1
    cfg["aligner"] = any(k.startswith("attention.") for k in state)
    if "attention.key_proj.2.conv.weight" in state:
        cfg["aligner_channels"] = int(state["attention.key_proj.2.conv.weight"].shape[0])
    return cfg
