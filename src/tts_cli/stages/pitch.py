"""`tts extract-pitch`: frame-level F0 and energy per utterance, per-speaker pitch statistics.

Reads WORK/manifest.jsonl, wavs/<id>.wav and mels/<id>.npy; writes pitch/<id>.npy (float32 Hz,
0 = unvoiced, n_frames values), energy/<id>.npy (float32, n_frames), pitch_stats.json
(per-speaker and corpus mean/std of voiced F0 - training normalises with these),
pitch_report.jsonl (no voiced frames, unreadable inputs) and pitch/_settings.json.

Parallel over processes, one BLAS thread each. Incremental: pitch/_settings.json keeps, per
utterance, a key of (settings, input file sizes and mtimes) and the utterance's voiced-F0 sums,
so a re-run redoes only changed utterances and computes statistics without reloading anything.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tts_cli.audio import load_audio
from tts_cli.config import Settings, audio_config, check_known_keys, find_recipe, load_config
from tts_cli.errors import AudioError, ConfigError, WorkspaceError
from tts_cli.f0 import C2_HZ, C7_HZ, DEFAULT_METHOD, METHODS, estimate_range, extract_f0, frame_energy
from tts_cli.workers import die_with_parent, usable_cores
from tts_cli.workspace import Workspace, atomic_save_npy, atomic_write_json, atomic_write_jsonl

SETTINGS_FILE = "_settings.json"
FORMAT_VERSION = 1  # bump when the extraction code changes its output: everything is redone
AUTO_RANGE_UTTS = 30  # utterances per speaker in the first pass of `auto_range`

@dataclass
class PitchSettings(Settings):
    """The `pitch:` section of a recipe."""

    SECTION: ClassVar[str] = "pitch"

    method: str | None = None  # None -> tts_cli.f0.DEFAULT_METHOD
    fmin: float | None = None  # Hz; None -> C2 (65.4 Hz, NVIDIA's pyin setting)
    fmax: float | None = None  # Hz; None -> C7 (2093 Hz)
    auto_range: bool = True  # per-speaker fmin/fmax from a first pass over a sample of utterances
    frame_length: int = 1024
    workers: int | None = None  # None -> all cores
    options: dict = field(default_factory=dict)  # extra keyword arguments for the method (e.g. praat voicing_threshold)


PITCH_DEFAULTS: dict[str, Any] = PitchSettings().to_dict()


# ----------------------------------------------------------------------------- settings

def resolve_settings(ws: Workspace, config: Any = None, **explicit) -> dict:
    """defaults <- WORK/config.yaml `pitch:` <- recipe/dict `pitch:` <- explicit (non-None) arguments."""
    base = ws.load_config(missing_ok=True)
    section = dict(PITCH_DEFAULTS)
    section.update(base.get("pitch") or {})
    section.update(_pitch_section(config, find_recipe))
    section.update({k: v for k, v in explicit.items() if v is not None})
    check_known_keys("pitch", section, PitchSettings)
    section["method"] = section["method"] or DEFAULT_METHOD
    if section["method"] not in METHODS:
        raise ConfigError(f"unknown pitch method {section['method']!r} (known: {', '.join(METHODS)})")
    for k in ("fmin", "fmax"):
        if section[k] is not None and float(section[k]) <= 0:
            raise ConfigError(f"pitch {k} must be a positive frequency in Hz, got {section[k]}")
    if section["fmin"] and section["fmax"] and float(section["fmin"]) >= float(section["fmax"]):
        raise ConfigError(f"pitch fmin ({section['fmin']} Hz) must be below fmax ({section['fmax']} Hz)")
    acfg = audio_config(load_config(base={"audio": base.get("audio") or {}}))
    section["sample_rate"] = int(acfg.sample_rate)
    section["hop_length"] = int(acfg.hop_length)
    section["options"] = dict(section.get("options") or {})
    return section


def _pitch_section(config: Any, find_recipe) -> dict:
    if config is None:
        return {}
    if isinstance(config, (str, os.PathLike)):
        import yaml

        config = yaml.safe_load(Path(find_recipe(config)).read_text(encoding="utf-8")) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"pitch config must be a recipe name/path or a dict, got {type(config).__name__}")
    return dict(config.get("pitch") or {}) if ("pitch" in config or "audio" in config) else dict(config)


def _file_key(settings: dict, fmin: float, fmax: float, wav: Path, mel: Path, n_frames: int) -> str:
    def stamp(p: Path):
        try:
            st = p.stat()
            return [st.st_size, st.st_mtime_ns]
        except OSError:
            return None

    blob = {
        "v": FORMAT_VERSION, "method": settings["method"], "fmin": round(fmin, 4), "fmax": round(fmax, 4),
        "frame_length": settings["frame_length"], "hop": settings["hop_length"], "sr": settings["sample_rate"],
        "options": settings["options"], "n_frames": n_frames, "wav": stamp(wav), "mel": stamp(mel),
    }
    return hashlib.sha1(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- worker

def _init_worker(parent_pid: int | None = None) -> None:
    """One thread per process: workers already use every core. Exits with the parent (kill -9 too)."""
    if parent_pid is not None:
        die_with_parent(parent_pid)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # threadpoolctl is optional
        pass


def process_utterance(job: dict) -> dict:
    """Extract and save pitch + energy for one utterance; never raises (errors come back as rows)."""
    uid, n = job["id"], int(job["n_frames"])
    try:
        try:
            wav = load_audio(job["wav"], job["sample_rate"])
        except AudioError as e:
            return {"id": uid, "ok": False, "issue": "unreadable_wav", "reason": f"{job['wav']}: {e}"}
        try:
            mel = np.load(job["mel"], allow_pickle=False)
        except (OSError, ValueError) as e:
            return {"id": uid, "ok": False, "issue": "unreadable_mel", "reason": f"{job['mel']}: {e}"}
        if mel.ndim != 2 or mel.shape[1] != n:
            return {"id": uid, "ok": False, "issue": "mel_length_mismatch",
                    "reason": f"{job['mel']}: shape {tuple(mel.shape)}, manifest says {n} frames"}
        got = 1 + len(wav) // job["hop_length"]
        if abs(got - n) > 1:
            return {"id": uid, "ok": False, "issue": "wav_length_mismatch",
                    "reason": f"{job['wav']}: {got} frames of audio, manifest says {n}"}
        f0 = extract_f0(wav, job["sample_rate"], job["method"], job["fmin"], job["fmax"],
                        hop_length=job["hop_length"], frame_length=job["frame_length"], n_frames=n,
                        **job["options"])
        energy = frame_energy(mel)
        atomic_save_npy(job["pitch"], f0)
        atomic_save_npy(job["energy"], energy)
        voiced = f0[f0 > 0].astype(np.float64)
        return {"id": uid, "ok": True, "n_frames": n, "n_voiced": int(len(voiced)),
                "sum": float(voiced.sum()), "sumsq": float((voiced ** 2).sum()), "audio_s": len(wav) / job["sample_rate"]}
    except Exception as e:  # a bad file must not stop the run
        return {"id": uid, "ok": False, "issue": "error", "reason": f"{type(e).__name__}: {e}"}


def _first_pass_voiced(job: dict) -> tuple[str, np.ndarray]:
    """(speaker, voiced F0) of one utterance with the wide range (for auto_range); empty on error."""
    try:
        wav = load_audio(job["wav"], job["sample_rate"])
        f0 = extract_f0(wav, job["sample_rate"], job["method"], None, None, hop_length=job["hop_length"],
                        frame_length=job["frame_length"], **job["options"])
        return job["speaker"], f0[f0 > 0]
    except Exception:
        return job["speaker"], np.zeros(0, np.float32)


def _run_parallel(fn, jobs: list[dict], workers: int, on_result) -> None:
    """fn(job) for every job, in `workers` processes (in this process when workers == 1)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            on_result(fn(job))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # fork starts workers in milliseconds; elsewhere the platform default
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(fn, job) for job in jobs]
        for fut in as_completed(futures):
            on_result(fut.result())


def default_workers() -> int:
    return usable_cores()


# ----------------------------------------------------------------------------- stage

def extract_pitch(
    work: str | os.PathLike,
    method: str | None = None,
    workers: int | None = None,
    fmin: float | None = None,
    fmax: float | None = None,
    force: bool = False,
    config: Any = None,
    progress: bool = True,
) -> dict:
    """Run the stage on workspace `work`; returns a summary dict (also printed as a table)."""
    from rich.console import Console

    t0 = time.perf_counter()
    ws = Workspace(work)
    rows = ws.load_manifest()
    if not rows:
        raise WorkspaceError(f"{ws.root}: manifest.jsonl lists no utterances")
    settings = resolve_settings(ws, config, method=method, workers=workers, fmin=fmin, fmax=fmax)
    n_workers = int(settings["workers"] or default_workers())
    console = Console(stderr=True, quiet=not progress)

    index_path = ws.dir("pitch") / SETTINGS_FILE
    index = _load_index(index_path)
    files: dict[str, dict] = {} if force else dict(index.get("files") or {})

    base_job = partial(_base_job, ws, settings)

    # per-speaker search range: fixed, or estimated from a first pass over a sample
    speakers = sorted({str(r.get("speaker", "default")) for r in rows})
    ranges = {s: (float(settings["fmin"] or C2_HZ), float(settings["fmax"] or C7_HZ)) for s in speakers}
    if settings["auto_range"]:
        ranges.update(_auto_ranges(rows, base_job, n_workers, ranges, estimate_range, index, settings, force))

    jobs, skipped = _pending_jobs(rows, base_job, ranges, settings, files)
    failures, audio_s = _run_jobs(jobs, ws, files, (index_path, settings, ranges), n_workers, console)
    ids = {r["id"] for r in rows}
    files = {k: v for k, v in files.items() if k in ids}  # utterances gone from the manifest
    _save_index(index_path, settings, ranges, files)

    stats = _statistics(rows, files, ranges, settings)
    atomic_write_json(ws.pitch_stats, stats)
    report = _report(rows, files, failures)
    atomic_write_jsonl(ws.pitch_report, report)
    for f in failures:
        console.print(f"[yellow]skipped {f['id']}[/]: {f['reason']}")

    summary = {
        "workspace": str(ws.root), "method": settings["method"], "workers": n_workers,
        "utterances": len(rows), "processed": len(jobs) - len(failures), "skipped": skipped,
        "failed": len(failures), "no_voiced": sum(1 for r in report if r["issue"] == "no_voiced_frames"),
        "audio_seconds": round(audio_s, 2), "seconds": round(time.perf_counter() - t0, 2),
        "speakers": stats["speakers"], "corpus": stats["corpus"],
    }
    _print_summary(console, summary)
    return summary


def _base_job(ws: Workspace, settings: dict, r: dict) -> dict:
    """One utterance's job for `process_utterance`, without its search range and cache key."""
    return {"id": r["id"], "wav": str(ws.root / r.get("audio", f"wavs/{r['id']}.wav")),
            "mel": str(ws.mel_path(r["id"])), "pitch": str(ws.pitch_path(r["id"])),
            "energy": str(ws.energy_path(r["id"])), "n_frames": int(r["n_frames"]),
            "method": settings["method"], "sample_rate": settings["sample_rate"],
            "hop_length": settings["hop_length"], "frame_length": int(settings["frame_length"]),
            "options": settings["options"]}


def _pending_jobs(rows: list[dict], base_job, ranges: dict, settings: dict, files: dict) -> tuple[list[dict], int]:
    """(jobs to run, how many are up to date): an utterance whose key (inputs and settings) is
    unchanged and whose outputs exist is skipped; the others lose their index entry."""
    jobs, skipped = [], 0
    for r in rows:
        spk = str(r.get("speaker", "default"))
        job = base_job(r)
        job["fmin"], job["fmax"] = ranges[spk]
        job["key"] = _file_key(settings, *ranges[spk], Path(job["wav"]), Path(job["mel"]), job["n_frames"])
        done = files.get(r["id"])
        if done and done.get("key") == job["key"] and Path(job["pitch"]).exists() and Path(job["energy"]).exists():
            skipped += 1
            continue
        files.pop(r["id"], None)
        jobs.append(job)
    return jobs, skipped


def _run_jobs(jobs: list[dict], ws: Workspace, files: dict, index: tuple, n_workers: int,
              console) -> tuple[list[dict], float]:
    """Run `jobs` in workers, recording results into `files`; (failures, seconds of audio processed).
    `index` = (index path, settings, ranges) for the periodic saves."""
    index_path, settings, ranges = index
    failures: list[dict] = []
    audio_s = 0.0
    keys = {j["id"]: j["key"] for j in jobs}
    last_save = time.monotonic()

    def record(res: dict) -> None:
        nonlocal audio_s, last_save
        if res["ok"]:
            audio_s += res.pop("audio_s")
            res.pop("ok")
            files[res["id"]] = {"key": keys[res["id"]], **{k: v for k, v in res.items() if k != "id"}}
        else:
            failures.append(res)
            for stale in (ws.pitch_path(res["id"]), ws.energy_path(res["id"])):  # from an older, good input
                stale.unlink(missing_ok=True)
        if time.monotonic() - last_save > 30:  # a killed run keeps most of its work
            _save_index(index_path, settings, ranges, files)
            last_save = time.monotonic()

    if jobs:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        cols = [TextColumn("pitch"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*cols, console=console, transient=True) as bar:
            task = bar.add_task("pitch", total=len(jobs))

            def on_result(res: dict) -> None:
                record(res)
                bar.advance(task)

            _run_parallel(process_utterance, jobs, min(n_workers, len(jobs)), on_result)
    return failures, audio_s


def _auto_ranges(rows, base_job, n_workers, wide, estimate_range, index, settings, force) -> dict:
    """fmin/fmax per speaker from a wide-range first pass; reused while the settings are unchanged."""
    sig = {k: settings[k] for k in ("method", "fmin", "fmax", "frame_length", "options", "hop_length", "sample_rate")}
    saved = index.get("auto_ranges") or {}
    if not force and saved.get("signature") == sig and set(saved.get("ranges", {})) >= set(wide):
        return {s: tuple(v) for s, v in saved["ranges"].items() if s in wide}
    by_spk: dict[str, list[dict]] = {}
    for r in rows:
        by_spk.setdefault(str(r.get("speaker", "default")), []).append(r)
    jobs = []
    for spk, rs in by_spk.items():
        step = max(1, len(rs) // AUTO_RANGE_UTTS)
        jobs += [{**base_job(r), "speaker": spk} for r in rs[::step][:AUTO_RANGE_UTTS]]
    voiced: dict[str, list[np.ndarray]] = {s: [] for s in by_spk}
    _run_parallel(_first_pass_voiced, jobs, min(n_workers, len(jobs)), lambda res: voiced[res[0]].append(res[1]))
    ranges = {}
    for spk, vs in voiced.items():
        lo, hi = estimate_range(np.concatenate(vs) if vs else np.zeros(0))
        # an explicit fmin/fmax still bounds the estimate
        ranges[spk] = (max(lo, wide[spk][0]), min(hi, wide[spk][1]))
    index["auto_ranges"] = {"signature": sig, "ranges": {s: list(v) for s, v in ranges.items()}}
    return ranges


def _load_index(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_index(path: Path, settings: dict, ranges: dict, files: dict) -> None:
    old = _load_index(path)
    atomic_write_json(path, {
        "settings": settings, "ranges": {s: list(v) for s, v in ranges.items()},
        "auto_ranges": old.get("auto_ranges"), "files": files,
    })


def _moments(entries: list[dict]) -> dict:
    n = sum(e["n_voiced"] for e in entries)
    frames = sum(e["n_frames"] for e in entries)
    mean = sum(e["sum"] for e in entries) / n if n else 0.0
    var = sum(e["sumsq"] for e in entries) / n - mean * mean if n else 0.0
    return {"mean": round(mean, 4), "std": round(math.sqrt(max(var, 0.0)), 4),
            "voiced_share": round(n / frames, 4) if frames else 0.0,
            "n_utterances": len(entries), "n_voiced_frames": n, "n_frames": frames}


def _statistics(rows: list[dict], files: dict, ranges: dict, settings: dict) -> dict:
    """Mean/std of voiced F0 (Hz) per speaker and over the corpus (all splits)."""
    by_spk: dict[str, list[dict]] = {}
    for r in rows:
        e = files.get(r["id"])
        if e is not None:
            by_spk.setdefault(str(r.get("speaker", "default")), []).append(e)
    speakers = {}
    for spk in sorted(by_spk):
        speakers[spk] = {**_moments(by_spk[spk]), "fmin": round(ranges[spk][0], 2), "fmax": round(ranges[spk][1], 2)}
    corpus = _moments([e for es in by_spk.values() for e in es])
    return {"method": settings["method"], "units": "Hz", "mean": corpus["mean"], "std": corpus["std"],
            "corpus": corpus, "speakers": speakers,
            "settings": {k: v for k, v in settings.items() if k != "workers"}}


def _report(rows: list[dict], files: dict, failures: list[dict]) -> list[dict]:
    spk = {r["id"]: str(r.get("speaker", "default")) for r in rows}
    out = [{"id": f["id"], "speaker": spk.get(f["id"]), "issue": f["issue"], "reason": f["reason"]} for f in failures]
    for r in rows:
        e = files.get(r["id"])
        if e is not None and e["n_voiced"] == 0:
            out.append({"id": r["id"], "speaker": spk[r["id"]], "issue": "no_voiced_frames",
                        "reason": f"no voiced frame among {e['n_frames']} (silence, noise or whisper?)"})
    return out


def _print_summary(console, s: dict) -> None:
    from rich.table import Table

    t = Table(title=f"tts extract-pitch ({s['method']}) → {s['workspace']}")
    for col in ("speaker", "utterances", "voiced %", "mean F0 Hz", "std Hz", "range Hz"):
        t.add_column(col, justify="left" if col == "speaker" else "right")
    for spk, st in s["speakers"].items():
        t.add_row(spk, str(st["n_utterances"]), f"{100 * st['voiced_share']:.1f}", f"{st['mean']:.1f}",
                  f"{st['std']:.1f}", f"{st['fmin']:.0f}-{st['fmax']:.0f}")
    c = s["corpus"]
    t.add_row("[b]all[/]", str(c["n_utterances"]), f"{100 * c['voiced_share']:.1f}", f"{c['mean']:.1f}",
              f"{c['std']:.1f}", "")
    console.print(t)
    speed = f", {s['audio_seconds'] / s['seconds']:.0f}x real time" if s["processed"] and s["seconds"] else ""
    console.print(f"processed {s['processed']}, skipped {s['skipped']} (already done), failed {s['failed']}, "
                  f"no voiced frames {s['no_voiced']}; {s['seconds']:.1f} s{speed} with {s['workers']} worker(s)")


__all__ = ["extract_pitch", "resolve_settings", "process_utterance", "PITCH_DEFAULTS"]
