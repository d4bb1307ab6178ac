"""Pitch extractors on a workspace: speed (1 worker / all workers) and agreement with pyin.

    python benchmarks/pitch.py WORK [--methods praat,dio,yin,pyin] [--limit-seconds S] [--workers N]

Speed is seconds of audio per wall-clock second, reading the wavs included, outputs discarded.
Agreement is against pyin with NVIDIA's settings (C2-C7, frame 1024), frame by frame:
VA = voicing agreement, med/p90 = absolute cents error on frames both call voiced,
GPE = share of those more than 20 % off. The last line prints the default method's speed-up
(all workers) over single-process pyin, both measured in this run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tts_cli.f0 import DEFAULT_METHOD, METHODS, estimate_range, extract_f0  # noqa: E402
from tts_cli.stages.pitch import _init_worker, _run_parallel, default_workers, resolve_settings  # noqa: E402
from tts_cli.workspace import Workspace  # noqa: E402


def f0_job(job: dict) -> tuple[str, np.ndarray, float]:
    from tts_cli.audio import load_audio

    wav = load_audio(job["wav"], job["sr"])
    rng = job.get("range") or (None, None)
    f0 = extract_f0(wav, job["sr"], job["method"], fmin=rng[0], fmax=rng[1], hop_length=job["hop"], n_frames=job["n_frames"])
    return job["id"], f0, len(wav) / job["sr"]


def timed(method: str, jobs: list[dict], workers: int) -> tuple[dict, float, float]:
    out: dict[str, np.ndarray] = {}
    audio = [0.0]

    def keep(res):
        out[res[0]] = res[1]
        audio[0] += res[2]

    mjobs = [{**j, "method": method} for j in jobs]
    t = time.perf_counter()
    _run_parallel(f0_job, mjobs, workers, keep)
    return out, audio[0], time.perf_counter() - t


def agreement(ref: dict, est: dict) -> dict:
    r = np.concatenate([ref[k] for k in ref])
    e = np.concatenate([est[k] for k in ref])
    both = (r > 0) & (e > 0)
    cents = np.abs(1200 * np.log2(e[both] / r[both])) if both.any() else np.zeros(1)
    return {"voiced": 100 * np.mean(e > 0), "va": 100 * np.mean((r > 0) == (e > 0)),
            "med": float(np.median(cents)), "p90": float(np.percentile(cents, 90)),
            "gpe": 100 * float(np.mean(cents > 1200 * np.log2(1.2)))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work")
    ap.add_argument("--methods", default=",".join(m for m in METHODS if m != "pyin"))
    ap.add_argument("--limit-seconds", type=float, default=None, help="only the first utterances up to this much audio")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)

    ws = Workspace(args.work)
    settings = resolve_settings(ws)
    rows = ws.load_manifest()
    if args.limit_seconds:
        total, keep = 0.0, []
        for r in rows:
            if total >= args.limit_seconds:
                break
            keep.append(r)
            total += float(r.get("duration_s", 0))
        rows = keep
    jobs = [{"id": r["id"], "wav": str(ws.root / r.get("audio", f"wavs/{r['id']}.wav")), "sr": settings["sample_rate"],
             "hop": settings["hop_length"], "n_frames": int(r["n_frames"]), "speaker": r.get("speaker", "default")}
            for r in rows]
    workers = args.workers or default_workers()
    _init_worker()  # the 1-worker runs use one thread too, like each pool worker
    methods = [m for m in args.methods.split(",") if m and m != "pyin"]

    print(f"{len(jobs)} utterances from {ws.root}; all workers = {workers}", flush=True)
    ref, audio_s, pyin_1 = timed("pyin", jobs, 1)
    print(f"pyin 1 worker: {audio_s:.1f} s audio in {pyin_1:.1f} s", flush=True)
    results = {"pyin": (audio_s / pyin_1, None, agreement(ref, ref))}
    _, _, pyin_n = timed("pyin", jobs, workers)
    results["pyin"] = (audio_s / pyin_1, audio_s / pyin_n, agreement(ref, ref))
    for m in methods:
        est, _, t1 = timed(m, jobs, 1)
        _, _, tn = timed(m, jobs, workers)
        results[m] = (audio_s / t1, audio_s / tn, agreement(ref, est))
        if m == DEFAULT_METHOD and settings.get("auto_range"):
            # what `tts extract-pitch` does by default: a per-speaker range from this first pass
            ranges = {}
            for spk in {j["speaker"] for j in jobs}:
                voiced = np.concatenate([est[j["id"]][est[j["id"]] > 0] for j in jobs if j["speaker"] == spk])
                ranges[spk] = estimate_range(voiced)
            ajobs = [{**j, "range": ranges[j["speaker"]]} for j in jobs]
            est2, _, t2 = timed(m, ajobs, 1)
            _, _, tn2 = timed(m, ajobs, workers)
            # the speed of the default includes its first pass
            results[m + "+auto"] = (audio_s / (t1 + t2), audio_s / (tn + tn2), agreement(ref, est2))

    head = f"{'method':8} {'1 worker':>10} {'all':>10} {'x pyin':>8} {'voiced%':>8} {'VA%':>6} {'med¢':>6} {'p90¢':>6} {'GPE%':>5}"
    print(head)
    for m, (s1, sn, a) in results.items():
        print(f"{m:8} {s1:9.1f}x {sn:9.1f}x {sn * pyin_1 / audio_s:7.1f}x {a['voiced']:8.1f} {a['va']:6.2f} "
              f"{a['med']:6.2f} {a['p90']:6.1f} {a['gpe']:5.2f}")
    ok = [m for m in results if m != "pyin" and results[m][2]["med"] < 50 and results[m][2]["va"] >= 95]
    print("meets the agreement bar (median < 50 cents, VA >= 95 %): " + (", ".join(ok) or "none"))
    default = DEFAULT_METHOD + "+auto" if DEFAULT_METHOD + "+auto" in results else DEFAULT_METHOD
    if default in results:
        speedup = results[default][1] * pyin_1 / audio_s
        print(f"default '{default}' with {workers} workers is {speedup:.1f}x faster than single-process pyin")


if __name__ == "__main__":
    main()
