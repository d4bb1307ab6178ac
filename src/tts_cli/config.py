"""Settings: typed sections (defaults matching NVIDIA's FastPitch reference), YAML recipes, CLI overrides.

A recipe is a YAML file with top-level sections (`audio`, `text`, `data`, `align`, `pitch`,
`model`, `train`). Each section is a `Settings` dataclass that refuses keys it does not know
(a typo must not silently train the wrong model): AudioConfig, TextConfig, DataConfig here,
AlignConfig (tts_cli.stages.align_settings), PitchSettings (tts_cli.stages.pitch),
FastPitchConfig / HiFiGANConfig (tts_cli.models), TrainSettings (tts_cli.training.settings).
Sections a stage does not read are kept untouched, so one recipe can drive every stage. The
resolved settings are saved beside every artifact they produced (e.g. WORK/config.yaml).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

from tts_cli.errors import ConfigError, VocoderError
from tts_cli.resources import RECIPES, resource_dir

RECIPES_DIR = resource_dir(RECIPES)  # tts_cli/resources/recipes, inside the package


def check_known_keys(section: str, given, cls) -> None:
    """ConfigError naming every key of `given` that the dataclass `cls` has no field for."""
    known = {f.name for f in fields(cls)}
    unknown = set(given) - known
    if unknown:
        raise ConfigError(f"unknown {section} setting(s): {', '.join(sorted(unknown))} "
                          f"(known: {', '.join(sorted(known))})")


@dataclass
class Settings:
    """Base of every settings section: strict `from_dict`, plain `to_dict`."""

    SECTION: ClassVar[str] = ""  # the recipe section, for messages

    @classmethod
    def from_dict(cls, d: dict | None = None):
        d = dict(d or {})
        check_known_keys(cls.SECTION, d, cls)
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AudioConfig(Settings):
    SECTION: ClassVar[str] = "audio"
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_clamp: float = 1e-5  # natural log of magnitude clamped here (NVIDIA's dynamic_range_compression)
    trim_silence: bool = True
    trim_top_db: float = 40.0  # below the peak, as librosa.effects.trim
    trim_margin_s: float = 0.05  # keep this much silence on each side after trimming
    peak_normalize: bool = False
    peak_level: float = 0.95
    min_duration_s: float = 0.3
    max_duration_s: float = 20.0


# Settings that change what a mel frame means; any difference makes the vocoder speak garbage.
AUDIO_MATCH_KEYS = ("sample_rate", "hop_length", "n_fft", "win_length", "n_mels", "fmin", "fmax", "log_clamp")

# What a mel frame means when nothing says otherwise (a vocoder file without audio settings).
DEFAULT_AUDIO = {k: v for k, v in asdict(AudioConfig()).items() if k in AUDIO_MATCH_KEYS}

# jik876 config.json / NVIDIA train_setup names -> ours
AUDIO_ALIASES = {
    "sampling_rate": "sample_rate", "sample_rate": "sample_rate",
    "hop_size": "hop_length", "hop_length": "hop_length",
    "win_size": "win_length", "win_length": "win_length",
    "n_fft": "n_fft", "filter_length": "n_fft",
    "num_mels": "n_mels", "n_mel_channels": "n_mels", "n_mels": "n_mels",
    "fmin": "fmin", "mel_fmin": "fmin", "fmax": "fmax", "mel_fmax": "fmax",
}


def audio_dict(audio: Any) -> dict:
    """AudioConfig / dict / None -> a plain dict of the settings that matter (None -> defaults)."""
    if audio is None:
        return dict(DEFAULT_AUDIO)
    if is_dataclass(audio):
        audio = asdict(audio)
    out = {}
    for k, v in dict(audio).items():
        key = AUDIO_ALIASES.get(k, k)
        if key in AUDIO_MATCH_KEYS and v is not None or key == "fmax":
            out[key] = v
    return out


def audio_differences(a_audio: Any, b_audio: Any, a_name: str, b_name: str) -> list[str]:
    """Every audio setting that differs between two sides, as `key: A (a_name) vs B (b_name)`
    (only keys both sides know; fmax None = Nyquist)."""
    a, b = audio_dict(a_audio), audio_dict(b_audio)

    def norm(d: dict, k: str):
        v = d.get(k)
        if k == "fmax" and v is None and "sample_rate" in d:
            v = d["sample_rate"] / 2  # None = Nyquist
        return None if v is None else float(v)

    diffs = []
    for k in AUDIO_MATCH_KEYS:
        if k not in a or k not in b:
            continue
        va, vb = norm(a, k), norm(b, k)
        if va is None or vb is None:
            continue
        if abs(va - vb) > 1e-6 * max(1.0, abs(va)):
            diffs.append(f"{k}: {a[k]} ({a_name}) vs {b[k]} ({b_name})")
    return diffs


def check_audio_match(model_audio: Any, vocoder_audio: Any, model_name: str = "acoustic model",
                      vocoder_name: str = "vocoder") -> None:
    """Raise VocoderError listing every audio setting that differs (only keys both sides know)."""
    diffs = audio_differences(model_audio, vocoder_audio, model_name, vocoder_name)
    if diffs:
        raise VocoderError(
            f"the vocoder does not fit the acoustic model: {'; '.join(diffs)}. Use a vocoder trained with the "
            "same audio settings (e.g. `tts train --model hifigan WORK --out RUN` on the same workspace), "
            "or --vocoder griffin-lim")


@dataclass
class TextConfig(Settings):
    SECTION: ClassVar[str] = "text"
    language: str = "es"
    text_type: str = "text"  # text (normalise + espeak-ng) | characters | phonemes (pre-phonemised input)
    normalize: bool = True
    keep_stress: bool = True


@dataclass
class DataConfig(Settings):
    SECTION: ClassVar[str] = "data"
    format: str = "auto"  # auto | ljspeech | css10 | folder | manifest
    val_fraction: float = 0.02
    max_val: int = 100
    min_val: int = 1
    # small corpora: at least this much validation audio, taking no more than val_max_fraction of
    # the utterances (0 = off): 3-5 clips cannot tell a better checkpoint from a worse one
    val_seconds: float = 60.0
    val_max_fraction: float = 0.1
    seed: int = 1234


SECTIONS = {"audio": AudioConfig, "text": TextConfig, "data": DataConfig}


def defaults() -> dict:
    return {name: asdict(cls()) for name, cls in SECTIONS.items()}


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe by path, or by name from the bundled recipes (`demo_es` -> RECIPES_DIR/demo_es.yaml)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    for cand in (RECIPES_DIR / f"{p.name}.yaml", RECIPES_DIR / p.name):
        if cand.exists():
            return cand
    known = sorted(x.stem for x in RECIPES_DIR.glob("*.yaml")) if RECIPES_DIR.exists() else []
    raise ConfigError(f"recipe {name_or_path!r} not found (known recipes: {', '.join(known) or 'none'})")


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (update or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(recipe: str | Path | None = None, overrides: dict | None = None, base: dict | None = None) -> dict:
    """defaults <- base (e.g. a workspace's saved config) <- recipe <- overrides (None values ignored)."""
    import yaml

    cfg = deep_merge(defaults(), base or {})
    if recipe:
        path = find_recipe(recipe)
        cfg = deep_merge(cfg, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    cfg = deep_merge(cfg, _drop_none(overrides or {}))
    _check_known_keys(cfg)
    return cfg


def _drop_none(d: dict) -> dict:
    return {k: _drop_none(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def _check_known_keys(cfg: dict) -> None:
    for name, cls in SECTIONS.items():
        check_known_keys(name, cfg.get(name, {}), cls)


def check_number(name: str, value, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, integer: bool = False) -> None:
    """ValueError naming the setting unless `value` is a finite number (an integer with
    `integer`) within [low, high] (low excluded with `low_open`). Settings are checked once,
    where they enter (recipe + command line merged), before any work is done or deleted."""
    import math
    import numbers

    kind = numbers.Integral if integer else numbers.Real
    ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        what = "an integer" if integer else "a number"
        if low is not None and high is not None:
            what += f" from {low:g} to {high:g}"
        elif low is not None:
            what += f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            what += f" <= {high:g}"
        raise ConfigError(f"{name} {value!r}: must be {what}")


def check_choice(name: str, value, choices) -> None:
    """ValueError naming the setting and the allowed values unless `value` is one of them."""
    if value not in tuple(choices):
        raise ConfigError(f"{name} {value!r}: use one of {', '.join(str(c) for c in choices)}")


def check_device(device: str | None, option: str = "--device") -> None:
    """ValueError unless `device` (None / auto / cpu / cuda[:N]) names a device this torch can use."""
    if device in (None, "auto", "cpu"):
        return
    import torch

    try:
        dev = torch.device(str(device))
    except (RuntimeError, ValueError):
        raise ConfigError(f"{option} {device!r}: not a device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {device}: CUDA is not available on this machine "
                              f"(torch {torch.__version__}; use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{option} {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def resolve_device(device: str | None, option: str = "--device") -> str:
    """The device to use: None / auto mean cuda when this torch sees one, else cpu; others are checked."""
    check_device(device, option)
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def audio_config(cfg: dict) -> AudioConfig:
    return AudioConfig.from_dict(cfg.get("audio"))


def text_config(cfg: dict) -> TextConfig:
    return TextConfig.from_dict(cfg.get("text"))


def data_config(cfg: dict) -> DataConfig:
    return DataConfig.from_dict(cfg.get("data"))


def dump_yaml(cfg: dict) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)


__all__ = [
    "AudioConfig", "TextConfig", "DataConfig", "load_config", "find_recipe", "deep_merge",
    "audio_config", "text_config", "data_config", "dump_yaml", "defaults", "check_number", "check_choice",
    "check_device", "Settings", "check_known_keys", "AUDIO_MATCH_KEYS", "DEFAULT_AUDIO", "AUDIO_ALIASES", "audio_dict", "audio_differences",
    "check_audio_match",
]
