"""Real-time factor of the Kokoro teacher on one onnxruntime thread.

Run: python benchmarks/teacher_rtf.py [--n 10] [--voice ef_dora] [--sentences FILE]
RTF = model seconds / audio seconds (text front end and resampling timed separately).
The machine is shared, so the CPU load is printed next to the numbers.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tts_cli.teacher import load_teacher
from tts_cli.teacher.corpus import DEFAULT_SENTENCES, read_sentences


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--voice", default="ef_dora")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sentences", type=Path, default=DEFAULT_SENTENCES)
    args = ap.parse_args()
    texts = [t for _, t in read_sentences(args.sentences)][: args.n]
    start = time.perf_counter()
    teacher = load_teacher("kokoro", voice=args.voice, threads=args.threads)
    load_s = time.perf_counter() - start
    teacher.synthesize("Hola.")  # warm-up
    model_s = total_s = audio_s = 0.0
    for text in texts:
        t0 = time.perf_counter()
        out = teacher.synthesize(text)
        total_s += time.perf_counter() - t0
        model_s += out.seconds
        audio_s += len(out.audio) / out.sample_rate
    print(f"load {load_s:.1f} s | {len(texts)} sentences, {audio_s:.1f} s of audio | "
          f"RTF model {model_s / audio_s:.3f}, end to end {total_s / audio_s:.3f} "
          f"({args.threads} thread(s), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
