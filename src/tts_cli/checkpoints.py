"""The one checkpoint module: save/load (weights_only), format version, NVIDIA import, fine-tuning.

Our checkpoint is one self-describing `.pt` (a dict of tensors and plain Python values only,
so `torch.load(weights_only=True)` reads it):

    format_version  int (FORMAT_VERSION)          kind      "fastpitch" | "hifigan"
    model           state dict (CPU tensors)      config    the architecture (FastPitchConfig dict)
    symbols         list[str], index = symbol id  step      optimizer steps done
    text            {language, phonemiser, espeak_ng, text_type, ...}
    audio           audio settings (AudioConfig dict)
    pitch_stats     {"speakers": {name: {mean, std}}, "corpus": {mean, std}} (Hz)
    speakers        {name: id}
    + optional: optimizer, scheduler, scaler, rng, sampler, epoch, ema, run_config, ...

NVIDIA DeepLearningExamples FastPitch checkpoints (`state_dict` / `ema_state_dict`, maybe
`module.`-prefixed, plus `config` / `train_setup`) are recognised by `load_checkpoint` and
converted to the layout above. Key mapping ours <-> NVIDIA: **identity** after stripping the
`module.` (DDP) and `_orig_mod.` (torch.compile) prefixes; our FastPitch uses NVIDIA's module
names on purpose. Their symbol table is not stored in the file; `english_basic` (148 symbols)
and `english_basic_lowercase` (123) are rebuilt here from NVIDIA's definition (pad `_`, `-`,
punctuation, letters, 84 `@`-prefixed ARPAbet phones); any other set must be passed as `symbols=`.

Fine-tuning (`init_from`) copies weights by name and shape, remaps symbol-embedding rows by
symbol string and speaker rows by speaker name, and returns a `LoadReport` listing every tensor.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from tts_cli.text.similar import similar_symbols

FORMAT_VERSION = 1
KINDS = ("fastpitch", "hifigan")
REQUIRED_KEYS = ("format_version", "kind", "model", "config", "symbols", "step")
SYMBOL_EMB = "encoder.word_emb.weight"
SPEAKER_EMB = "speaker_emb.weight"
# Buffers the new workspace decides (pitch statistics are recomputed, not inherited).
KEEP_ON_INIT = ("pitch_mean", "pitch_std")

_PREFIXES = re.compile(r"^(?:module\.|_orig_mod\.)+")


class CheckpointError(ValueError):
    """A file is not a usable checkpoint; the message names the file and the reason."""


# ----------------------------------------------------------------------------- NVIDIA symbols

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
# LJSpeech statistics NVIDIA's recipe writes into the pitch buffers.
NVIDIA_PITCH_MEAN, NVIDIA_PITCH_STD = 214.72203, 65.72038


def nvidia_to_ours(key: str) -> str:
    """NVIDIA state-dict key -> ours (identity after stripping DDP / compile prefixes)."""
    return _PREFIXES.sub("", key)


def ours_to_nvidia(key: str) -> str:
    """Our state-dict key -> NVIDIA's (identity; NVIDIA's loaders accept unprefixed keys)."""
    return _PREFIXES.sub("", key)


def clean_state_dict(state: dict) -> dict:
    """Detached CPU tensors, `module.` / `_orig_mod.` prefixes stripped."""
    return {_PREFIXES.sub("", k): (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}


def float32_state(state: dict) -> dict:
    """Floating tensors as float32 (a bundled voice stores float16 weights; models run in float32)."""
    return {k: (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != torch.float32
                else v) for k, v in state.items()}


# ----------------------------------------------------------------------------- save / load

def save_checkpoint(
    path: str | os.PathLike,
    model_state: dict,
    config: dict,
    symbols: Sequence[str] | None,
    step: int,
    *,
    kind: str = "fastpitch",
    text: dict | None = None,
    audio: dict | None = None,
    pitch_stats: dict | None = None,
    speakers: dict | None = None,
    **extra: Any,
) -> Path:
    """Write a self-describing checkpoint atomically (a killed run never leaves half a file).

    `extra` holds optional state (optimizer, scheduler, scaler, rng, sampler, epoch, ema, ...);
    it must be tensors / numbers / str / list / dict so `weights_only=True` can read it back.
    """
    from tts_cli.workspace import atomic_torch_save

    if kind not in KINDS:
        raise ValueError(f"checkpoint kind must be one of {KINDS}, got {kind!r}")
    ckpt = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model": clean_state_dict(model_state),
        "config": dict(config),
        "symbols": list(symbols) if symbols is not None else None,
        "step": int(step),
        "text": dict(text or {}),
        "audio": dict(audio or {}),
        "pitch_stats": dict(pitch_stats or {}),
        "speakers": {str(k): int(v) for k, v in (speakers or {}).items()},
    }
    for k, v in extra.items():
        if v is not None:
            ckpt[k] = v
    return atomic_torch_save(path, ckpt)


def require_kind(ckpt: dict, kind: str, where: Any, hint: str = "") -> dict:
    """`ckpt` if it is a `kind` checkpoint ("fastpitch", "hifigan"), else CheckpointError naming
    `where` (file or option) and what it is; `hint` says what to do with the other kind."""
    if ckpt.get("kind") != kind:
        got = ckpt.get("kind")
        raise CheckpointError(f"{where}: a {got!r} checkpoint, not {'FastPitch' if kind == 'fastpitch' else kind}"
                              + (f" ({hint})" if hint and got == "hifigan" else ""))
    return ckpt


def load_checkpoint(
    path: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    symbols: Sequence[str] | None = None,
    prefer_ema: bool = False,
) -> dict:
    """Read one of our checkpoints, or an NVIDIA FastPitch one converted to our layout.

    Raises CheckpointError with the file name and the reason for anything else: a missing or
    unreadable file, pickled objects (weights_only refuses them), a newer/unknown format version.
    `symbols` / `prefer_ema` only matter for NVIDIA files (symbol table, EMA weights).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    obj = safe_torch_load(path, map_location)
    return checkpoint_from_dict(obj, path, symbols=symbols, prefer_ema=prefer_ema)


def safe_torch_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """torch.load(weights_only=True), with CheckpointError naming the file and saying why it is not
    loadable in our words (never torch's advice to load it unsafely)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types; all mean "not loadable"
        text = str(e)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:  # a real checkpoint, but with pickled classes: refused, never executed
            raise CheckpointError(
                f"{path}: contains pickled Python objects ({found.group(1)}), which safe loading "
                "(weights_only=True) refuses; only tensors and plain values are allowed") from e
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        msg = detail.group(1).strip() if detail else (text.strip().splitlines() or [type(e).__name__])[0]
        if "weights_only" in msg or "Weights only load failed" in msg:
            msg = "safe loading (weights_only=True) refused it"
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({msg})") from e


def checkpoint_from_dict(obj: Any, path: str | os.PathLike, *, symbols: Sequence[str] | None = None,
                         prefer_ema: bool = False) -> dict:
    """What load_checkpoint does after reading the file, for a caller that already holds its dict."""
    path = Path(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a checkpoint (holds a {type(obj).__name__}, expected a dict)")
    if "format_version" in obj:
        return _validate_ours(obj, path)
    if is_nvidia_fastpitch(obj):
        return from_nvidia_fastpitch(obj, symbols=symbols, prefer_ema=prefer_ema, source=str(path))
    raise CheckpointError(
        f"{path}: not a tts-cli or NVIDIA FastPitch checkpoint (top-level keys: {', '.join(map(str, list(obj)[:8]))})")


# Upgrades from older formats: version -> function(ckpt) -> ckpt of version + 1.
_MIGRATIONS: dict[int, Any] = {}


def _validate_ours(ckpt: dict, path: Path) -> dict:
    version = ckpt.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: unknown checkpoint format_version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer tts-cli (format {version}; this version reads up to {FORMAT_VERSION}); "
            "upgrade tts-cli to load it")
    while version < FORMAT_VERSION:
        ckpt = _MIGRATIONS[version](ckpt)
        version = ckpt["format_version"]
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    if ckpt["kind"] not in KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {ckpt['kind']!r} (known: {', '.join(KINDS)})")
    return ckpt


# ----------------------------------------------------------------------------- NVIDIA import

def is_nvidia_fastpitch(obj: dict) -> bool:
    """An NVIDIA DeepLearningExamples FastPitch checkpoint (or a bare state dict of one)."""
    state = obj.get("state_dict") or obj.get("ema_state_dict") or obj
    return isinstance(state, dict) and any(nvidia_to_ours(str(k)) == SYMBOL_EMB for k in state)


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
    state = {nvidia_to_ours(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
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
    from tts_cli.models.fastpitch import FastPitchConfig

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


# ----------------------------------------------------------------------------- fine-tuning

ACTIONS = ("loaded", "remapped", "re-initialised", "skipped", "kept")


@dataclass
class LoadEntry:
    name: str
    action: str  # one of ACTIONS
    shape: tuple = ()
    detail: str = ""


@dataclass
class LoadReport:
    """What `init_from` did with every tensor of the model and of the checkpoint."""

    source: str = ""
    entries: list[LoadEntry] = field(default_factory=list)

    def add(self, name: str, action: str, shape: Iterable[int] = (), detail: str = "") -> None:
        assert action in ACTIONS, action
        self.entries.append(LoadEntry(name, action, tuple(shape), detail))

    def by_action(self, action: str) -> list[LoadEntry]:
        return [e for e in self.entries if e.action == action]

    def entry(self, name: str) -> LoadEntry:
        return next(e for e in self.entries if e.name == name)

    def counts(self) -> dict[str, int]:
        return {a: len(self.by_action(a)) for a in ACTIONS}

    def summary(self) -> str:
        return ", ".join(f"{n} {a}" for a, n in self.counts().items() if n)

    def table(self, verbose: bool = False):
        """A rich Table; plainly loaded tensors are grouped by module unless `verbose`."""
        from rich.table import Table

        t = Table(title=f"init from {self.source}" if self.source else "init from checkpoint")
        for col in ("tensor", "action", "shape", "detail"):
            t.add_column(col)
        groups: dict[str, list[LoadEntry]] = {}
        for e in self.entries:
            if e.action == "loaded" and not verbose:
                groups.setdefault(e.name.split(".")[0], []).append(e)
                continue
            t.add_row(e.name, e.action, "×".join(map(str, e.shape)), e.detail)
        for prefix, items in groups.items():
            n = sum(_numel(e.shape) for e in items)
            t.add_row(f"{prefix}.*" if len(items) > 1 or items[0].name != prefix else prefix, "loaded",
                      "", f"{len(items)} tensors, {n:,} values")
        t.caption = self.summary()
        return t

    def print(self, console=None, verbose: bool = False) -> None:
        from rich.console import Console

        (console or Console()).print(self.table(verbose))


def _numel(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _speaker_names(speakers: dict | Sequence[str] | None, n: int) -> list[str]:
    """Names in id order, from a {name: id} map or a list; ids as names when unknown."""
    if speakers is None:
        return [str(i) for i in range(n)]
    if isinstance(speakers, dict):
        names = [str(i) for i in range(n)]
        for name, i in speakers.items():
            if 0 <= int(i) < n:
                names[int(i)] = str(name)
        return names
    return [str(s) for s in speakers]


def init_from(
    model: torch.nn.Module,
    ckpt: dict | str | os.PathLike,
    new_symbols: Sequence[str] | None = None,
    new_speakers: dict | Sequence[str] | None = None,
    *,
    keep: Iterable[str] = KEEP_ON_INIT,
) -> LoadReport:
    """Warm-start `model` (weights only) from a checkpoint (ours or NVIDIA's, dict or path).

    Rules (every tensor gets a report line):
    - same name and shape -> copied ("loaded");
    - `encoder.word_emb.weight`: rows matched by **symbol string** ("remapped"): shared symbols
      copied; symbols new to the checkpoint get the mean of the checkpoint's non-padding rows
      (a neutral start that sits inside the trained embedding cloud); the padding row is 0;
    - `speaker_emb.weight`: rows matched by speaker name; new speakers get the mean of the
      checkpoint's rows; from a single-speaker checkpoint all rows start at 0 (the embedding is
      added to the encoder input, so 0 = the pretrained voice). From a multi-speaker checkpoint
      into a single-speaker model, the row of the speaker with the same name (else the mean
      row) is folded into the symbol embedding, which is exactly equivalent;
    - shape mismatch -> the model keeps its fresh init ("skipped" with both shapes);
    - in the model but not the checkpoint -> "re-initialised"; in the checkpoint but not the
      model -> "skipped"; names in `keep` (pitch statistics) keep the model's value ("kept").
    """
    if not isinstance(ckpt, dict):
        source = str(ckpt)
        ckpt = load_checkpoint(ckpt)
    else:
        source = str(ckpt.get("source", {}).get("file", "")) if isinstance(ckpt.get("source"), dict) else ""
    src = float32_state(clean_state_dict(ckpt["model"]))
    tgt = model.state_dict()
    keep = set(keep)
    report = LoadReport(source=source)
    new_state: dict[str, torch.Tensor] = {}
    src_cfg = ckpt.get("config") or {}
    pad = int(getattr(getattr(model, "config", None), "padding_idx", 0))

    for name, t in tgt.items():
        if name in keep:
            report.add(name, "kept", t.shape, "set from the new workspace")
        elif name == SPEAKER_EMB and name not in src:
            new_state[name] = torch.zeros_like(t)
            report.add(name, "re-initialised", t.shape,
                       "single-speaker checkpoint: rows set to 0, every speaker starts as its voice")
        elif name not in src:
            report.add(name, "re-initialised", t.shape, "not in the checkpoint")
        elif name == SYMBOL_EMB:
            w = _remap_symbols(src[name], t, ckpt.get("symbols"), new_symbols, pad, report)
            if w is not None:
                new_state[name] = w
        elif name == SPEAKER_EMB:
            new_state[name] = _remap_speakers(src[name], t, ckpt.get("speakers"), new_speakers, report)
        elif tuple(src[name].shape) != tuple(t.shape):
            report.add(name, "skipped", src[name].shape,
                       f"shape {tuple(src[name].shape)} in the checkpoint, {tuple(t.shape)} in the model; "
                       "the model keeps its fresh init")
        else:
            new_state[name] = src[name].to(t.dtype)
            report.add(name, "loaded", t.shape)

    if SPEAKER_EMB in src and SPEAKER_EMB not in tgt:
        _fold_speaker(src[SPEAKER_EMB], ckpt.get("speakers"), new_speakers, float(src_cfg.get("speaker_emb_weight", 1.0)),
                      new_state, pad, report)
    for name, s in src.items():
        if name not in tgt and name != SPEAKER_EMB:
            report.add(name, "skipped", s.shape, "not in this model")

    model.load_state_dict({**tgt, **new_state})
    return report


def _remap_symbols(src_w, tgt_w, src_symbols, new_symbols, pad: int, report: LoadReport):
    if new_symbols is None:
        new_symbols = src_symbols
    if src_w.shape[1] != tgt_w.shape[1]:
        report.add(SYMBOL_EMB, "skipped", src_w.shape,
                   f"embedding width {src_w.shape[1]} in the checkpoint, {tgt_w.shape[1]} in the model")
        return None
    if src_symbols is None or new_symbols is None:
        if src_w.shape == tgt_w.shape:
            report.add(SYMBOL_EMB, "loaded", tgt_w.shape, "copied by position: no symbol table to match by name")
            return src_w.to(tgt_w.dtype)
        report.add(SYMBOL_EMB, "skipped", src_w.shape, "no symbol table in the checkpoint to match rows by name")
        return None
    if len(new_symbols) != tgt_w.shape[0]:
        raise ValueError(f"{len(new_symbols)} symbols given for an embedding of {tgt_w.shape[0]} rows")
    index = {s: i for i, s in enumerate(src_symbols)}
    rows = [i for i in range(src_w.shape[0]) if i != pad]
    mean = src_w[rows].mean(0) if rows else torch.zeros(src_w.shape[1])
    out = torch.empty_like(tgt_w)
    new, from_similar = [], []
    for i, s in enumerate(new_symbols):
        j = index.get(s)
        if i == pad:  # the padding row is 0 in a fresh nn.Embedding and never trained
            out[i] = 0.0
        elif j is not None:
            out[i] = src_w[j]
        else:
            # a sound the checkpoint never saw starts at the nearest ones it knows (iː at i,
            # oʊ at o + u), not at one shared mean that every new vowel would have to leave
            similar = similar_symbols(s, index)
            out[i] = src_w[[index[x] for x in similar]].mean(0) if similar else mean
            new.append(s)
            if similar:
                from_similar.append(f"{s}<{'+'.join(similar)}")
    shared = sum(1 for s in new_symbols if s in index)
    same_layout = list(new_symbols) == list(src_symbols)
    if same_layout:
        report.add(SYMBOL_EMB, "loaded", tgt_w.shape, "same symbol table")
    else:
        others = [s for s in new if not any(f.startswith(s + "<") for f in from_similar)]
        shown = " ".join(from_similar[:40] + others[:40])
        report.add(SYMBOL_EMB, "remapped", tgt_w.shape,
                   f"{shared} of {len(new_symbols)} symbols copied by name; {len(new)} new: "
                   f"{len(from_similar)} from the nearest known sounds, {len(others)} from the mean of "
                   f"{len(rows)} checkpoint rows{': ' + shown if new else ''}")
    return out


def _remap_speakers(src_w, tgt_w, src_speakers, new_speakers, report: LoadReport):
    if src_w.shape[1] != tgt_w.shape[1]:
        report.add(SPEAKER_EMB, "skipped", src_w.shape, "speaker embedding width differs; fresh init kept")
        return tgt_w
    src_names = _speaker_names(src_speakers, src_w.shape[0])
    tgt_names = _speaker_names(new_speakers, tgt_w.shape[0])
    index = {s: i for i, s in enumerate(src_names)}
    out = src_w.mean(0, keepdim=True).repeat(tgt_w.shape[0], 1).to(tgt_w.dtype)
    copied = [n for n in tgt_names if n in index]
    for i, n in enumerate(tgt_names):
        if n in index:
            out[i] = src_w[index[n]]
    new = [n for n in tgt_names if n not in index]
    action = "loaded" if src_names == tgt_names else "remapped"
    report.add(SPEAKER_EMB, action, tgt_w.shape,
               f"{len(copied)} of {len(tgt_names)} speakers copied by name"
               + (f"; new (mean of {src_w.shape[0]} rows): {', '.join(new)}" if new else ""))
    return out


def _fold_speaker(src_w, src_speakers, new_speakers, weight: float, new_state: dict, pad: int,
                  report: LoadReport) -> None:
    names = _speaker_names(src_speakers, src_w.shape[0])
    wanted = _speaker_names(new_speakers, 1)[0] if new_speakers is not None else None
    if wanted in names:
        vec, what = src_w[names.index(wanted)], f"speaker {wanted!r}"
    else:
        vec, what = src_w.mean(0), f"mean of {src_w.shape[0]} speakers"
    if SYMBOL_EMB not in new_state or new_state[SYMBOL_EMB].shape[1] != vec.shape[0]:
        report.add(SPEAKER_EMB, "skipped", src_w.shape, "single-speaker model: speaker embedding dropped")
        return
    emb = new_state[SYMBOL_EMB].clone()
    mask = torch.ones(emb.shape[0], dtype=torch.bool)
    mask[pad] = False
    emb[mask] += weight * vec.to(emb.dtype)
    new_state[SYMBOL_EMB] = emb
    report.add(SPEAKER_EMB, "remapped", src_w.shape, f"single-speaker model: {what} folded into {SYMBOL_EMB}")


# ----------------------------------------------------------------------------- helpers

def espeak_version_warning(ckpt_or_text: dict, current: str | None) -> str | None:
    """A warning when the checkpoint was trained with another espeak-ng version (phonemes can
    change between versions), else None. Accepts a checkpoint or its `text` section."""
    text = ckpt_or_text.get("text", ckpt_or_text) if isinstance(ckpt_or_text, dict) else {}
    trained = (text or {}).get("espeak_ng")
    if not trained or not current or str(trained) == str(current):
        return None
    return (f"espeak-ng {current} differs from {trained} used in training: phonemes may differ; "
            "check pronunciations or re-run preprocess with the training version")


def build_fastpitch(ckpt: dict, *, aligner: bool | None = None, strict: bool = True):
    """A FastPitch built from a checkpoint's config with its weights loaded (synthesis, resume).
    `aligner=False` drops the training-only aligner (its weights are then ignored)."""
    from tts_cli.models.fastpitch import FastPitch, FastPitchConfig

    require_kind(ckpt, "fastpitch", "build_fastpitch")
    cfg = FastPitchConfig.from_dict(dict(ckpt["config"]))
    if aligner is not None:
        cfg.aligner = aligner
        if not aligner:
            cfg.alignment = "external"
    model = FastPitch(cfg)
    state = float32_state(clean_state_dict(ckpt["model"]))  # float16 voices too
    if not cfg.aligner:
        state = {k: v for k, v in state.items() if not k.startswith("attention.")}
    model.load_state_dict(state, strict=strict)
    return model


__all__ = [
    "FORMAT_VERSION", "KINDS", "CheckpointError", "save_checkpoint", "load_checkpoint", "is_nvidia_fastpitch",
    "from_nvidia_fastpitch", "nvidia_config_to_ours", "NVIDIA_SYMBOL_SETS", "NVIDIA_CONFIG_KEYS", "nvidia_to_ours",
    "ours_to_nvidia", "clean_state_dict", "float32_state", "init_from", "LoadReport", "LoadEntry", "espeak_version_warning",
    "build_fastpitch", "safe_torch_load",
]
