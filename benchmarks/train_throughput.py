"""FastPitch training throughput in mel frames per second, through the real training loop.

Synthetic batches (random symbols/mels, durations spread evenly) go through `Trainer.fit`: forward,
loss, backward, global-norm clipping, LAMB, LR schedule, metrics - everything a `tts train` step
does except data loading (which runs in worker processes in real runs).

CPU: `tiny`. CUDA: `base` in fp32/TF32, fp16 (+GradScaler) and bf16 AMP on the reference's batch
shape (16 x ~800 frames x ~150 symbols), comparable with NVIDIA's published numbers (frames/s
= output mel frames per second) and the reference measured on an H200 with its own code on
synthetic batches: ~191 k frames/s fp16 AMP, ~215 k bf16.

    .venv/bin/python benchmarks/train_throughput.py [--steps 20] [--device cpu|cuda]

The last line is the headline figure: `tiny` on CPU, or `base` bf16 on the reference shape on CUDA.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from tts_cli.models.fastpitch import FastPitch, FastPitchConfig  # noqa: E402
from tts_cli.training.fastpitch_task import FastPitchTask, FastPitchTaskSettings  # noqa: E402
from tts_cli.training.loop import Trainer
from tts_cli.training.settings import TrainSettings


def synthetic_batches(n: int, B: int, T: int, N: int, n_symbols: int, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        # mild length variation like a bucketed batch: every utterance within 10 % of the longest
        mel_lens = torch.randint(int(T * 0.9), T + 1, (B,), generator=g)
        mel_lens[0] = T
        sym_lens = torch.clamp((mel_lens.float() / T * N).long(), min=2)
        symbols = torch.zeros(B, N, dtype=torch.long)
        durations = torch.zeros(B, N, dtype=torch.long)
        mels = torch.zeros(B, 80, T)
        pitch = torch.zeros(B, T)
        energy = torch.zeros(B, T)
        for b in range(B):
            n_sym, t = int(sym_lens[b]), int(mel_lens[b])
            symbols[b, :n_sym] = torch.randint(1, n_symbols, (n_sym,), generator=g)
            base = t // n_sym
            d = torch.full((n_sym,), base)
            d[: t - base * n_sym] += 1
            durations[b, :n_sym] = d
            mels[b, :, :t] = torch.randn(80, t, generator=g) - 5
            pitch[b, :t] = torch.randn(t, generator=g) * (torch.rand(t, generator=g) > 0.3)
            energy[b, :t] = torch.rand(t, generator=g) * 50
        out.append({"ids": [f"syn{b}" for b in range(B)], "symbols": symbols, "symbol_lens": sym_lens,
                    "mels": mels, "mel_lens": mel_lens, "pitch": pitch, "energy": energy,
                    "speakers": torch.zeros(B, dtype=torch.long), "durations": durations})
    return out


class _Sampler:
    """The loop's sampler interface over a fixed list of batches."""

    def __init__(self, n: int):
        self.n = n

    def set_epoch(self, epoch: int) -> None:
        pass

    def set_start(self, k: int) -> None:
        pass

    def __len__(self) -> int:
        return self.n


def measure(preset: str, device: str, amp: str, B: int, T: int, N: int, steps: int, compile: bool = False) -> float:
    """Mean frames/s over `steps` optimizer steps, after as many untimed warm-up steps."""
    torch.manual_seed(0)
    cfg = FastPitchConfig.from_dict({"preset": preset, "n_symbols": 148})
    model = FastPitch(cfg)
    task = FastPitchTask(model, "external", FastPitchTaskSettings(), meta={"kind": "fastpitch", "config": cfg.to_dict(),
                         "symbols": [str(i) for i in range(148)]}, audio_cfg=None, val_samples=0)
    batches = [task.to_device(b, torch.device(device)) for b in synthetic_batches(4, B, T, N, cfg.n_symbols)]
    with tempfile.TemporaryDirectory() as run:
        settings = TrainSettings(steps=2 * steps, lr=0.1, warmup=1000, log_every=steps, val_every=0,
                                 checkpoint_every=0, amp=amp, compile=compile, num_workers=0)
        trainer = Trainer(task, settings, run, batches, _Sampler(len(batches)), device=device, show_progress=False)
        trainer.save_checkpoint = lambda best=False: None  # not part of a training step
        trainer.fit()
        import json

        rows = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return float(rows[-1]["frames_per_s"])  # the row of steps steps+1 .. 2*steps


def measure_bare(preset: str, device: str, B: int, T: int, N: int, steps: int) -> float:
    """Baseline in the same run: forward + loss + backward + LAMB in a bare loop (fp32), no
    Trainer (no metrics, NaN guard, scheduler, sync); shows what the loop's bookkeeping costs."""
    from tts_cli.models.fastpitch import FastPitchLoss
    from tts_cli.training.optim import Lamb

    torch.manual_seed(0)
    cfg = FastPitchConfig.from_dict({"preset": preset, "n_symbols": 148})
    model = FastPitch(cfg).to(device)
    model.attention.requires_grad_(False)
    crit = FastPitchLoss()
    opt = Lamb([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batches = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
               for b in synthetic_batches(4, B, T, N, cfg.n_symbols)]
    frames = 0
    for i in range(2 * steps):
        if i == steps:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0, frames = time.perf_counter(), 0
        b = batches[i % len(batches)]
        loss, _ = crit(model(b, alignment="external"), b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        frames += int(b["mel_lens"].sum())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return frames / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=None, help="timed steps, after as many warm-up steps (default: 8 CPU, 30 CUDA)")
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (CUDA)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cuda = args.device.startswith("cuda")
    steps = args.steps or (30 if cuda else 8)

    results = []
    if not cuda:
        shape = (8, 400, 80)
        fps = measure("tiny", "cpu", "none", *shape, steps)
        bare = measure_bare("tiny", "cpu", *shape, steps)
        results.append(("tiny", "cpu", "bare step (baseline)", shape, bare))
        results.append(("tiny", "cpu", f"fp32, {torch.get_num_threads()} threads", shape, fps))
    else:
        name = torch.cuda.get_device_name()
        shape = (16, 800, 150)  # the reference's batch: 16 x ~800 frames x ~150 symbols
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        results.append(("base", name, "bare step TF32 (baseline)", shape, measure_bare("base", args.device, *shape, steps)))
        for amp, label in (("none", "fp32/TF32"), ("fp16", "fp16 AMP"), ("bf16", "bf16 AMP")):
            fps = measure("base", args.device, amp, *shape, steps)
            results.append(("base", name, label, shape, fps))
        if args.compile:
            fps = measure("base", args.device, "bf16", *shape, steps, compile=True)
            results.append(("base", name, "bf16 AMP + compile", shape, fps))
        fps = measure("tiny", args.device, "bf16", 32, 800, 150, steps)
        results.append(("tiny", name, "bf16 AMP", (32, 800, 150), fps))
    for preset, dev, prec, (B, T, N), fps in results:
        print(f"{preset:5s} {dev} {prec:20s} batch {B}x{T} frames x{N} symbols: {fps:12,.0f} mel frames/s")
    head = results[-1] if not cuda else next(r for r in results if r[2] == "bf16 AMP")
    print(f"train throughput ({head[0]}, {head[2]}, {head[1]}): {head[4]:,.0f} mel frames/s")


if __name__ == "__main__":
    main()
