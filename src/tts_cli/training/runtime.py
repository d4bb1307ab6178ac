"""The process a training run lives in: DDP ranks (torchrun's env vars), RNG state that resume
restores bit for bit, and the mixed precision this device supports."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tts_cli.config import resolve_device
from tts_cli.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | None = None) -> tuple[DistInfo, torch.device]:
    """Read torchrun's env vars; init the process group (nccl on CUDA, gloo on CPU)."""
    dev = torch.device(resolve_device(device))  # ConfigError: --device cuda on a CPU-only torch
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), dev
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":  # one GPU per process
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank), dev


def cleanup_distributed() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rng_state() -> dict:
    """All RNG states as plain data / tensors (loadable with weights_only=True)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_amp(amp: Any, device: torch.device) -> str:
    """'none' | 'bf16' | 'fp16'. AMP only on CUDA; 'auto' = bf16 where supported."""
    if device.type != "cuda" or amp in AMP_OFF:
        return "none"
    if amp in AMP_AUTO:
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp in ("bf16", "fp16"):
        return amp
    raise ConfigError(f"unknown amp setting {amp!r} (auto | bf16 | fp16 | none)")


def enable_tf32() -> None:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)


AMP_OFF = (None, False, "none", "off", "fp32", "tf32", "no")


AMP_AUTO = (True, "auto", "on", "yes")


AMP_SETTINGS = ("auto", "bf16", "fp16", "none") + AMP_OFF[1:] + AMP_AUTO  # what a recipe or --amp-dtype may say
