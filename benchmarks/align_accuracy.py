"""Alignment accuracy: phoneme start times from WORK/durations vs espeak-ng's truth.json.

    python benchmarks/align_accuracy.py WORK TRUTH.json [--tolerance-ms 20] [--frame-offset 0.5]

WORK is a workspace after `tts preprocess` + `tts align` of the built-in sample corpus
(`python -m tts_cli.sample_corpus --out CORPUS` writes CORPUS/truth.json). Stress marks,
punctuation and pauses are ignored; phoneme sequences are matched by edit distance.
The last line is the figure: the share of boundaries within the tolerance and the median error.
"""
from __future__ import annotations

import argparse

from tts_cli.stages.align_eval import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work")
    parser.add_argument("truth")
    parser.add_argument("--tolerance-ms", type=float, default=20.0)
    parser.add_argument("--frame-offset", type=float, default=0.0,
                        help="frames subtracted from each start (0: plain cumsum x hop / sr)")
    args = parser.parse_args()
    res = evaluate(args.work, args.truth, args.tolerance_ms, args.frame_offset)
    for line in res.lines():
        print(line)
    print(f"align accuracy: {res.within:.1%} of boundaries within {res.tolerance_ms:g} ms, "
          f"median error {res.median_ms:.1f} ms")


if __name__ == "__main__":
    main()
