"""CPU tuning for inference: threads, bf16 and the allocator, each measured rather than assumed."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from tts_cli.config import resolve_device as config_resolve_device
from tts_cli.errors import ConfigError, SynthesisError

log = logging.getLogger(__name__)

_BF16_FASTER: bool | None = None  # measured once per process
_MALLOC_TUNED: bool | None = None


def _cpu_busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, None where there is no such file."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            parts = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)  # idle + iowait
    return sum(parts) - idle, sum(parts)


def auto_threads(sample_s: float = 0.1, cores: int | None = None, reader=_cpu_busy_jiffies) -> tuple[int, float]:
    """(torch threads, cores busy with other processes): the cores left idle over `sample_s`, at least 1.

    On a shared CPU a thread per core is the worst choice: each parallel region of torch waits for
    its slowest thread, and one that shares its core with another busy process makes all of them
    wait (measured: `tts synthesize -i` of 40 sentences beside a training job took 0.66 s of wall
    time per audio second with 2 threads on 2 cores, 0.21 with 1). Reading /proc/stat twice costs
    `sample_s`; without it (not Linux) every core is used."""
    import time as _time

    cores = cores or os.cpu_count() or 1
    a = reader()
    if a is None or cores <= 1:
        return cores, 0.0
    _time.sleep(sample_s)
    b = reader()
    if b is None or b[1] <= a[1]:
        return cores, 0.0
    busy = cores * (b[0] - a[0]) / (b[1] - a[1])  # this process sleeps meanwhile: all of it is others'
    return max(1, min(cores, int(cores - busy + 0.5))), busy


def resolve_device(device: str | None) -> str:
    """config.resolve_device, its error a SynthesisError."""
    try:
        return config_resolve_device(device)
    except ConfigError as e:
        raise SynthesisError(str(e)) from None


def cpu_has_native_bf16() -> bool:
    """avx512_bf16 or AMX in /proc/cpuinfo (without them bf16 is emulated and always slower)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def bf16_convs_faster() -> bool:
    """Does this CPU run HiFi-GAN-like channels-last convs faster in bf16 than in fp32?

    The flag alone does not tell: on the AMD Zen 5 of the performance notes bf16 is ~2x faster,
    on an Intel Xeon with avx512_bf16 but no AMX it measured ~2x *slower*. So measure once per
    process (~20-40 ms): the best of 3 runs of one 128-channel k7 conv in each precision."""
    global _BF16_FASTER
    if _BF16_FASTER is not None:
        return _BF16_FASTER
    if not cpu_has_native_bf16():
        _BF16_FASTER = False
        return False
    import time

    import torch

    conv = torch.nn.Conv2d(128, 128, (1, 7), padding=(0, 3)).to(memory_format=torch.channels_last)
    x = torch.randn(1, 128, 1, 2048).contiguous(memory_format=torch.channels_last)
    best = {}
    with torch.inference_mode():
        for dtype in (torch.float32, torch.bfloat16):
            c, xi = conv.to(dtype), x.to(dtype)
            c(xi)
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                c(xi)
                times.append(time.perf_counter() - t0)
            best[dtype] = min(times)
    _BF16_FASTER = best[torch.bfloat16] < 0.8 * best[torch.float32]
    return _BF16_FASTER


def tune_malloc_for_inference() -> bool:
    """Let glibc's malloc keep freed blocks of up to 32 MiB for reuse (once per process, Linux).

    By default glibc serves blocks of a few MiB and more with fresh mmap()s and returns them to
    the system when freed, so every new HiFi-GAN activation (up to 26 MiB for 9 s of audio)
    page-faults in again: ~10^6 faults per synthesis, a large share of V3's time. Raising the mmap
    and trim thresholds keeps that memory in the heap (tcmalloc/jemalloc preloads do the same;
    the notes in ../shared/reference/cpu_performance_facts.md). The cost is that the process keeps
    up to ~256 MiB of freed memory instead of handing it back. `TTS_NO_MALLOC_TUNING=1` skips it."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED is not None:
        return _MALLOC_TUNED
    _MALLOC_TUNED = False
    import platform
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("TTS_NO_MALLOC_TUNING") or \
            platform.libc_ver()[0] != "glibc":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = (libc.mallopt(m_mmap_threshold, 32 * 2 ** 20) == 1  # glibc's maximum on 64-bit
              and libc.mallopt(m_trim_threshold, 256 * 2 ** 20) == 1
              and libc.mallopt(m_top_pad, 16 * 2 ** 20) == 1)
    except (OSError, AttributeError):
        return False
    _MALLOC_TUNED = bool(ok)
    return _MALLOC_TUNED


def set_torch_threads(threads: int, device: str | None) -> str:
    """torch's CPU threads: `threads`, or with 0 those cores that other processes leave idle
    (`auto_threads`); OMP_NUM_THREADS set by the user wins over auto. Returns a note for the
    header line."""
    import torch

    if device not in (None, "auto", "cpu") and not str(device).startswith("cpu"):
        return ""
    if threads and threads > 0:
        torch.set_num_threads(int(threads))
        return f" · {threads} thread(s)"
    if os.environ.get("OMP_NUM_THREADS"):
        return f" · {torch.get_num_threads()} thread(s) (OMP_NUM_THREADS)"
    n, busy = auto_threads()
    torch.set_num_threads(n)
    return f" · {n} thread(s) ({busy:.1f} of {os.cpu_count()} cores busy elsewhere)"
