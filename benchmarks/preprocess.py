"""Preprocessing speed: seconds of audio processed per wall-clock second, 1 worker vs all cores.

    python benchmarks/preprocess.py [DATA]      (default: the built-in sample corpus, built if needed)

Each configuration starts from an empty workspace, so nothing is skipped as already done.
The last line prints the all-cores figure and its speed-up over 1 worker, measured in the same run.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from tts_cli.stages.preprocess import preprocess


def run(data: Path, workers: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = preprocess(data, Path(tmp) / "work", workers=workers, progress=False)
        wall = time.perf_counter() - t0
    return summary["hours"] * 3600, wall


def main() -> None:
    if len(sys.argv) > 1:
        data = Path(sys.argv[1])
    else:
        from tts_cli.sample_corpus import build_sample_corpus

        data = Path("demo/corpus")
        build_sample_corpus(data, progress=False)
    n_all = os.cpu_count() or 1
    results = {}
    for workers in sorted({1, n_all}):
        audio_s, wall = run(data, workers)
        results[workers] = audio_s / wall
        print(f"workers={workers}: {audio_s:.1f} s of audio in {wall:.2f} s wall -> {audio_s / wall:.1f} s audio / s")
    print(f"preprocess: {results[n_all]:.1f} s of audio per second with {n_all} workers "
          f"({results[n_all] / results[1]:.2f}x over 1 worker)")


if __name__ == "__main__":
    main()
