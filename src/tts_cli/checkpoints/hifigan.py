"""HiFi-GAN generator files -> (generator, audio settings): ours, jik876's and NVIDIA's.

- ours: `tts_cli.checkpoints` format with `kind: "hifigan"`; `model` holds the generator
  (keys as below, optionally prefixed `generator.`), `config` a HiFiGANConfig dict, `audio` the
  audio settings it was trained with;
- jik876/hifi-gan `g_XXXXXXXX`: `{"generator": state}`; keys are ours (flat resblocks
  `resblocks.<stage * n_kernels + k>`). The architecture comes from `config.json` beside the
  file (jik876's convention) when present, else from the weight shapes (+ the preset whose kernel
  sizes match, for the dilations, which no weight reveals);
- NVIDIA DeepLearningExamples `hifigan_gen_checkpoint_*.pt`: `{"generator", "config",
  "train_setup", ...}` with nested resblocks. Mapping to ours:
  `resblocks.<stage>.<k>.<rest>` -> `resblocks.<stage * n_kernels + k>.<rest>`, everything else
  identical (`module.` prefixes dropped, 1-dim shape differences of weight_g reshaped). NVIDIA's
  argparse default orders the resblock kernels [11, 7, 3] while jik876's V1 uses [3, 7, 11]: the
  kernel size of slot k is read from the weights (`resblocks.0.k.convs1.0.weight_v`), never
  assumed, and each kernel keeps its own dilations. The mean over the kernels does not depend on
  their order, so both orders give the same audio.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tts_cli.checkpoints.format import WRAPPER_PREFIXES, safe_torch_load
from tts_cli.checkpoints.load import checkpoint_from_dict
from tts_cli.config import AUDIO_ALIASES, DEFAULT_AUDIO, audio_dict
from tts_cli.errors import CheckpointError, VocoderError
from tts_cli.models.hifigan import PRESETS, Generator, HiFiGANConfig

if TYPE_CHECKING:  # pragma: no cover
    from tts_cli.models.hifigan import HiFiGANConfig

log = logging.getLogger(__name__)


_NESTED = re.compile(r"^resblocks\.(\d+)\.(\d+)\.(.+)$")


def nested_to_flat_resblocks(state: dict) -> dict:
    """NVIDIA's nested `resblocks.<stage>.<k>.*` -> our flat `resblocks.<stage * n_kernels + k>.*`."""
    state = {WRAPPER_PREFIXES.sub("", k): v for k, v in state.items()}
    ks = {int(m.group(2)) for k in state if (m := _NESTED.match(k))}
    if not ks:
        return state
    nk = max(ks) + 1
    out = {}
    for k, v in state.items():
        m = _NESTED.match(k)
        out[f"resblocks.{int(m.group(1)) * nk + int(m.group(2))}.{m.group(3)}" if m else k] = v
    return out


def flat_to_nested_resblocks(state: dict, n_kernels: int) -> dict:
    """Inverse of `nested_to_flat_resblocks` (for exporting or for tests)."""
    out = {}
    for k, v in state.items():
        m = re.match(r"^resblocks\.(\d+)\.(.+)$", k)
        out[f"resblocks.{int(m.group(1)) // n_kernels}.{int(m.group(1)) % n_kernels}.{m.group(2)}" if m else k] = v
    return out


def _weight(state: dict, prefix: str):
    return state.get(prefix + ".weight_v", state.get(prefix + ".weight"))


def infer_generator_config(state: dict, hint: dict | None = None) -> "HiFiGANConfig":
    """The architecture of a generator state dict (our flat layout).

    Channels, kernel sizes and resblock type come from the weights; upsampling rates and dilations
    (not visible in weights) from `hint` (a jik876/NVIDIA config) when its values fit, else from the
    preset with the same resblock kernels, else the published rule rate = kernel / 2."""
    hint = dict(hint or {})
    pre = _weight(state, "conv_pre")
    if pre is None:
        raise VocoderError("not a HiFi-GAN generator (no conv_pre weights)")
    ups = sorted({int(m.group(1)) for k in state if (m := re.match(r"^ups\.(\d+)\.", k))})
    up_kernels = [int(_weight(state, f"ups.{i}").shape[-1]) for i in ups]
    resblock = "1" if any(".convs1." in k for k in state) else "2"
    conv = "convs1" if resblock == "1" else "convs"
    n_res = len({int(m.group(1)) for k in state if (m := re.match(r"^resblocks\.(\d+)\.", k))})
    if not ups or n_res % len(ups):
        raise VocoderError(f"not a HiFi-GAN generator ({n_res} resblocks for {len(ups)} upsampling layers)")
    nk = n_res // len(ups)
    kernels = [int(_weight(state, f"resblocks.{j}.{conv}.0").shape[-1]) for j in range(nk)]
    n_dil = len({int(m.group(1)) for k in state if (m := re.match(rf"^resblocks\.0\.{conv}\.(\d+)\.", k))})

    dil_by_kernel: dict[int, list] = {}
    hint_kernels = [int(k) for k in hint.get("resblock_kernel_sizes", [])]
    if sorted(hint_kernels) == sorted(kernels) and hint.get("resblock_dilation_sizes"):
        dil_by_kernel = {k: list(d) for k, d in zip(hint_kernels, hint["resblock_dilation_sizes"])}
    else:
        for p in PRESETS.values():
            if p.resblock == resblock and sorted(p.resblock_kernel_sizes) == sorted(kernels):
                dil_by_kernel = dict(zip(p.resblock_kernel_sizes, p.resblock_dilation_sizes))
                break
    if not dil_by_kernel or any(len(dil_by_kernel.get(k, [])) != n_dil for k in kernels):
        raise VocoderError(f"cannot tell the resblock dilations of kernels {kernels} from the weights; "
                           "put the model's config.json (jik876 format) beside the checkpoint")
    rates = [int(r) for r in hint.get("upsample_rates", [])]
    if len(rates) != len(up_kernels):
        rates = [k // 2 for k in up_kernels]  # every published config uses kernel = 2 x rate
    return HiFiGANConfig(
        n_mels=int(pre.shape[1]), upsample_rates=rates, upsample_kernel_sizes=up_kernels,
        upsample_initial_channel=int(pre.shape[0]), resblock=resblock, resblock_kernel_sizes=kernels,
        resblock_dilation_sizes=[dil_by_kernel[k] for k in kernels],
    )


def build_generator(state: dict, config: "HiFiGANConfig"):
    """A Generator with `state` (our flat layout, weight-norm or plain form) loaded."""
    import torch

    gen = Generator(config)
    if not any(k.endswith("weight_v") for k in state):
        gen.remove_weight_norm()
    target = gen.state_dict()
    fixed = {}
    for k, v in state.items():
        if k in target and tuple(v.shape) != tuple(target[k].shape) and v.numel() == target[k].numel():
            v = v.reshape(target[k].shape)  # NVIDIA's loader tolerates 1-dim differences too
        fixed[k] = v
    missing = sorted(set(target) - set(fixed))
    unexpected = sorted(set(fixed) - set(target))
    if missing or unexpected:
        raise VocoderError(f"generator weights do not fit the architecture: missing {missing[:4]}, "
                           f"unexpected {unexpected[:4]}")
    try:
        gen.load_state_dict({k: v.to(torch.float32) for k, v in fixed.items()})
    except RuntimeError as e:
        raise VocoderError(f"generator weights do not fit the architecture: {str(e).splitlines()[0]}") from None
    return gen


def load_hifigan(path: str | os.PathLike) -> tuple[Any, dict, bool, str]:
    """(Generator with weight norm as stored, audio settings, audio_known, format name) from a file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise VocoderError(f"{path}: no such vocoder file (use a HiFi-GAN checkpoint or `griffin-lim`)")

    try:
        obj = safe_torch_load(path)
    except CheckpointError as e:
        raise VocoderError(f"{e} (--vocoder takes a HiFi-GAN checkpoint or `griffin-lim`)") from None
    if not isinstance(obj, dict):
        raise VocoderError(f"{path}: not a vocoder checkpoint (holds a {type(obj).__name__})")

    if "format_version" in obj:  # ours: validated by the one checkpoint module
        try:
            ckpt = checkpoint_from_dict(obj, path)
        except CheckpointError as e:
            raise VocoderError(str(e)) from None
        if ckpt["kind"] != "hifigan":
            raise VocoderError(f"{path}: a {ckpt['kind']} checkpoint, not a vocoder; pass it as -m/--model")
        state = {WRAPPER_PREFIXES.sub("", k): v for k, v in ckpt["model"].items()}
        if any(k.startswith("generator.") for k in state):
            state = {k[len("generator."):]: v for k, v in state.items() if k.startswith("generator.")}
        cfg = HiFiGANConfig.from_dict(ckpt["config"].get("generator", ckpt["config"]))
        audio = audio_dict(ckpt.get("audio"))
        return build_generator(state, cfg), audio, bool(ckpt.get("audio")), "tts-cli"

    if isinstance(obj.get("generator"), dict):
        state = obj["generator"]
    elif isinstance(obj.get("gen_ema"), dict):
        state = obj["gen_ema"]
    elif any(WRAPPER_PREFIXES.sub("", str(k)).startswith("conv_pre.") for k in obj):
        state = obj
    else:
        raise VocoderError(f"{path}: not a HiFi-GAN checkpoint (top-level keys: {', '.join(map(str, list(obj)[:8]))}); "
                           "expected ours, jik876's {'generator': ...} or NVIDIA's hifigan_gen_checkpoint")
    nested = any(_NESTED.match(WRAPPER_PREFIXES.sub("", str(k))) for k in state)
    state = nested_to_flat_resblocks({str(k): v for k, v in state.items() if torch.is_tensor(v)})
    hint, audio_src = {}, {}
    side = path.parent / "config.json"  # jik876 keeps the run's config beside the checkpoints
    if isinstance(obj.get("config"), dict):
        hint = dict(obj["config"])
    elif side.is_file():
        try:
            hint = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            log.warning("%s: unreadable (%s); architecture inferred from the weights", side, e)
    for src in (hint, obj.get("train_setup") if isinstance(obj.get("train_setup"), dict) else {}):
        audio_src.update({k: v for k, v in src.items() if k in AUDIO_ALIASES})
    cfg = infer_generator_config(state, hint)
    audio = {**DEFAULT_AUDIO, **audio_dict(audio_src)} if audio_src else dict(DEFAULT_AUDIO)
    if not audio_src:
        audio["hop_length"] = cfg.hop_length
        audio["n_mels"] = cfg.n_mels
    fmt = "nvidia" if nested or "train_setup" in obj else "jik876"
    return build_generator(state, cfg), audio, bool(audio_src), fmt
