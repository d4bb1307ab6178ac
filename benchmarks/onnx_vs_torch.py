"""RTF of the bundled es_base through torch (the baseline, measured in the same run) and through
its ONNX export (`tts export --format onnx`, onnxruntime), both with the universal HiFi-GAN V1.

Each engine speaks --n held-out sentences (tts_cli/resources/sentences/teacher_test_es.txt) one
`synthesize` call each, after a warm-up of two, at each --threads count; RTF = compute time /
audio duration (front end + FastPitch + vocoder; loading excluded). The torch engine runs as
`tts synthesize` does (precision auto: bf16 where this CPU runs it faster, fixed-size vocoder
windows) and, for a like-for-like row, in fp32 (the ONNX export is fp32). 'others' = CPU cores other
processes used meanwhile: on a shared CPU the figures are pessimistic, compare within a run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthesis import cpu_busy_jiffies, cpu_model, foreign_cores, own_cpu_s  # noqa: E402


def sentences(n: int) -> list[str]:
    from tts_cli.resources import SENTENCES, resource_file

    lines = resource_file(SENTENCES, "teacher_test_es.txt").read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")][:n]


def time_engine(synth, texts: list[str]) -> tuple[float, float, float]:
    """(RTF, audio seconds, foreign cores) over `texts`, after two warm-up sentences."""
    for t in texts[:2]:
        synth.synthesize(t)
    busy0, own0, t0 = cpu_busy_jiffies(), own_cpu_s(), time.perf_counter()
    audio = compute = 0.0
    for t in texts:
        t1 = time.perf_counter()
        audio += synth.synthesize(t).seconds
        compute += time.perf_counter() - t1
    return compute / audio, audio, foreign_cores(busy0, own0, time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="held-out sentences")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--onnx", type=Path, help="an existing export folder (default: export es_base to a temp folder)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    from tts_cli.onnx_export import export_onnx
    from tts_cli.inference.synthesizer import Synthesizer
    from tts_cli.inference.voices import get_voice

    voice = get_voice("es_base")
    tmp = None
    if args.onnx is None:
        tmp = tempfile.TemporaryDirectory(prefix="tts_onnx_")
        t0 = time.perf_counter()
        export_onnx(voice.acoustic_path, tmp.name)
        args.onnx = Path(tmp.name)
        print(f"exported es_base to ONNX in {time.perf_counter() - t0:.1f} s")
    texts = sentences(args.n)
    print(f"torch {torch.__version__}, {cpu_model()}, {os.cpu_count()} CPUs; {len(texts)} held-out sentences")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)  # before loading: the ONNX sessions take torch's thread count
        engines = {"torch": Synthesizer(voice.acoustic_path, device="cpu"),
                   "torch fp32": Synthesizer(voice.acoustic_path, device="cpu", precision="fp32"),
                   "onnx": Synthesizer(args.onnx, engine="onnx")}
        for name, synth in engines.items():
            rtf, audio, others = time_engine(synth, texts)
            rows.append((threads, name, rtf))
            print(f"{threads}T {name:<10} RTF {rtf:.3f}  ({audio:.1f} s audio; {synth.vocoder.describe()}; "
                  f"others {others:.2f} cores)", flush=True)
    for threads in args.threads:
        r = {name: rtf for t, name, rtf in rows if t == threads}
        print(f"{threads} thread(s): onnx / torch RTF = {r['onnx'] / r['torch']:.2f} "
              f"(onnx / torch fp32 = {r['onnx'] / r['torch fp32']:.2f})")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
