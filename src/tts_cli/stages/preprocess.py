"""`tts preprocess`: dataset -> workspace (manifest, processed wavs, mels, symbol table).

Text is normalised and phonemised in the main process (one persistent espeak-ng backend,
batched calls); audio is decoded, resampled, trimmed and turned into mels in worker
processes. Every input is keyed by its content and the settings that shape its output, so
a re-run only redoes what changed and yields an identical workspace.

SPLIT RULE (train/val). Utterances are ranked once by a seeded hash of their id (data.seed); an
utterance's rank depends on nothing else (not the rest of the corpus, not the input order).
1. Corpus-wide pick: the first n_val = clamp(max(round(n * val_fraction), k_seconds), min_val,
   max_val) utterances of that order (at most n - 1), where k_seconds is how many it takes to hold
   val_seconds of audio, capped at val_max_fraction of the corpus (so a 10-minute corpus gets ~1
   minute of validation audio, enough to rank checkpoints, and a large one keeps its 2 %). In
   expectation every speaker gets its proportional share of it.
2. Per-speaker guarantee: every speaker with at least MIN_SPEAKER_UTTS_FOR_VAL (5) utterances also
   has its first min_val utterances of the same order in val, so a small speaker that the pick
   happened to miss is still validated. A smaller speaker keeps everything for training (one
   validation utterance would cost it over 20 % of its data).
Why this rule and not exact per-speaker quotas: (a) one speaker gives exactly the original split
(its guarantee is the front of the corpus-wide pick), and in a multi-speaker workspace nothing the
original rule put in val moves to train on a re-run; (b) quotas under the corpus-wide max_val cap
would tie every speaker's split to the corpus size. Growth stays as bounded as before: a speaker's
val set is a prefix of its hash order, so one added file changes the split of at most two existing
utterances (the original rule: at most one), the pick's edge and its own speaker's guarantee.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tts_cli.audio import (load_audio_and_rate, mel_bins_recorded, mel_spectrogram, mel_top_hz, peak_normalize,
                            save_wav, trim_silence)
from tts_cli.config import AudioConfig
from tts_cli.datasets import DatasetError, read_dataset
from tts_cli.errors import AudioError, PreprocessError
from tts_cli.text import SymbolTable, canonical_text_type, espeak_info, texts_to_symbols
from tts_cli.workers import die_with_parent
from tts_cli.workspace import (
    Workspace,
    atomic_save_npy,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    check_output_dir,
)

from .. import __version__
from ..config import audio_config, data_config, dump_yaml, load_config, text_config

CACHE_NAME = ".preprocess_cache.json"
MIN_SPEAKER_UTTS_FOR_VAL = 5  # a speaker with fewer keeps its utterances for training (see SPLIT RULE)


def safe_id(raw: str) -> str:
    """A file-name-safe utterance id (sub-paths such as css10's `book/x` become `book_x`)."""
    s = re.sub(r"[^\w.\-]+", "_", raw.strip(), flags=re.UNICODE).strip("._")
    return s or "utt"


def _settings_hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _file_hash(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- audio worker
def _init_worker(parent_pid: int | None = None) -> None:
    import torch

    if parent_pid is not None:
        die_with_parent(parent_pid)  # not orphaned, blocked on the task pipe, after a kill -9 of `tts preprocess`
    torch.set_num_threads(1)


def process_audio(utt_id: str, src: str, audio_cfg: dict, work_root: str) -> dict:
    """Decode, resample, trim and normalise one file; write its wav and mel. Returns row fields or a reason."""
    cfg = AudioConfig(**audio_cfg)
    ws = Workspace(work_root)
    try:
        wav, source_sr = load_audio_and_rate(src, cfg.sample_rate)
        start = 0
        if cfg.trim_silence:
            wav, start = trim_silence(wav, cfg.sample_rate, top_db=cfg.trim_top_db, margin_s=cfg.trim_margin_s)
        if cfg.peak_normalize:
            wav = peak_normalize(wav, cfg.peak_level)
    except AudioError as e:
        return {"error": str(e)}
    except Exception as e:  # a decoder bug must not stop a 10,000-file run
        return {"error": f"unreadable audio: {type(e).__name__}: {e}"}
    duration = len(wav) / cfg.sample_rate
    if duration < cfg.min_duration_s:
        return {"error": f"too short: {duration:.2f} s < min_duration_s {cfg.min_duration_s} s"}
    if duration > cfg.max_duration_s:
        return {"error": f"too long: {duration:.2f} s > max_duration_s {cfg.max_duration_s} s"}
    mel = mel_spectrogram(wav, cfg).numpy().astype("float32")
    save_wav(ws.wav_path(utt_id), wav, cfg.sample_rate)
    atomic_save_npy(ws.mel_path(utt_id), mel)
    return {
        "audio": f"wavs/{utt_id}.wav",
        "n_frames": int(mel.shape[1]),
        "duration_s": round(duration, 4),
        "trim_start_s": round(start / cfg.sample_rate, 4),
        "source_sr": source_sr,
    }


def _source_rate(src: str) -> int | None:
    """The file's own sample rate, for rows cached before preprocess recorded it; None if unknown."""
    import soundfile as sf

    try:
        return int(sf.info(str(src)).samplerate)
    except Exception:
        return None


# ---------------------------------------------------------------- the stage
def preprocess(
    data: str | os.PathLike,
    out: str | os.PathLike,
    config: str | os.PathLike | None = None,
    overrides: dict | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Build (or update) the workspace `out` from the dataset `data`. Returns the summary."""
    from rich.console import Console

    console = Console(stderr=True, quiet=not progress)
    data, ws = Path(data), Workspace(out)
    check_output_dir(ws.root, "--out", PreprocessError)
    cfg = load_config(config, overrides)
    acfg, tcfg, dcfg = audio_config(cfg), text_config(cfg), data_config(cfg)
    dataset, entries = _read_dataset(data, ws, dcfg)
    ws.root.mkdir(parents=True, exist_ok=True)

    rejected: list[dict] = [dict(p) for p in dataset.problems]
    cache_path = ws.root / CACHE_NAME
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    audio_key = _settings_hash(asdict(acfg))
    items = _unique_items(entries, rejected)

    # ---- text (main process, batched)

    espeak = espeak_info() if canonical_text_type(tcfg.text_type) == "text" else {}
    text_key = _settings_hash([asdict(tcfg), espeak.get("version")])
    text_rows = _text_rows(items, cache, text_key, tcfg, console)
    kept_text = _keep_speakable(items, text_rows, rejected)

    # ---- audio (worker processes)
    audio_rows, file_hashes = _audio_rows(kept_text, cache, audio_key, acfg, ws, workers, console, rejected)

    # ---- assemble
    keys = {"text_key": text_key, "audio_key": audio_key}
    rows, new_cache = _assemble(kept_text, text_rows, audio_rows, file_hashes, cache, keys, rejected)
    if not rows:
        atomic_write_jsonl(ws.rejected, rejected)
        reasons = Counter(r["reason"].split(":")[0] for r in rejected)
        raise PreprocessError(
            f"nothing survived preprocessing ({len(rejected)} rejected: "
            + ", ".join(f"{k} ×{v}" for k, v in reasons.most_common(3)) + f"); see {ws.rejected}"
        )
    rows.sort(key=lambda r: r["id"])
    _assign_split(rows, dcfg)

    table = SymbolTable.build([r["symbols"] for r in rows], tcfg.language, tcfg.text_type)
    table.save(ws.symbols)
    atomic_write_jsonl(ws.manifest, rows)
    atomic_write_jsonl(ws.rejected, sorted(rejected, key=lambda r: str(r.get("id"))))
    resolved = dict(cfg)
    resolved["workspace"] = {"tts_cli_version": __version__, "data": str(data.resolve()), "espeak": espeak}
    atomic_write_text(ws.config, dump_yaml(resolved))
    atomic_write_json(cache_path, new_cache)
    _remove_stale(ws, {r["id"] for r in rows})

    summary = _summary(rows, rejected, table, acfg)
    if progress:
        _print_summary(console, summary, ws)
    return summary


def _read_dataset(data: Path, ws: Workspace, dcfg) -> tuple[Any, list]:
    """(the dataset reader, its entries); refuses a workspace inside the dataset (DATA is never modified)."""
    try:
        dataset = read_dataset(data, dcfg.format)
    except DatasetError as e:
        raise PreprocessError(str(e)) from e
    entries = list(dataset.entries)
    if data.resolve() in (ws.root.resolve(), *ws.root.resolve().parents):
        raise PreprocessError(f"{ws.root}: the workspace must be outside the dataset folder (DATA is never modified)")
    return dataset, entries


def _unique_items(entries: list, rejected: list[dict]) -> list[tuple]:
    """(id, entry) with file-name safe, unique ids; later duplicates are rejected."""
    seen: Counter = Counter()
    items = []
    for e in entries:
        uid = safe_id(e.id)
        seen[uid] += 1
        if seen[uid] > 1:
            rejected.append({"id": e.id, "source": e.source, "reason": f"duplicate id {uid!r}"})
            continue
        items.append((uid, e))
    return items


def _text_rows(items: list[tuple], cache: dict, text_key: str, tcfg, console) -> dict[str, dict]:
    """{id: phonemised text row} for every non-empty text: from the cache when text and settings
    are unchanged, else phonemised now in one batch."""
    todo_text = []
    text_rows: dict[str, dict] = {}
    for uid, e in items:
        if not (e.text or "").strip():
            continue
        c = cache.get(uid, {})
        if c.get("text_key") == text_key and c.get("text") == e.text and "text_row" in c:
            text_rows[uid] = c["text_row"]
        else:
            todo_text.append((uid, e))
    if todo_text:
        with console.status(f"phonemising {len(todo_text)} texts ({tcfg.language}, {tcfg.text_type})"):
            results = _phonemise_all([e.text for _, e in todo_text], tcfg)
        for (uid, e), res in zip(todo_text, results):
            text_rows[uid] = res
    return text_rows


def _keep_speakable(items: list[tuple], text_rows: dict[str, dict], rejected: list[dict]) -> list[tuple]:
    """The items whose text phonemises to speech and whose audio file exists; the rest rejected."""
    kept_text = []
    for uid, e in items:
        if not (e.text or "").strip():
            rejected.append({"id": uid, "source": e.source, "reason": "empty text"})
            continue
        res = text_rows[uid]
        if "error" in res:
            rejected.append({"id": uid, "source": e.source, "reason": res["error"]})
            continue
        if not _has_speech(res["symbols"]):
            rejected.append({"id": uid, "source": e.source, "reason": "text normalises/phonemises to nothing"})
            continue
        if not Path(e.audio).exists():
            rejected.append({"id": uid, "source": e.source, "reason": f"missing audio file {e.audio}"})
            continue
        kept_text.append((uid, e))
    return kept_text


def _audio_rows(kept_text: list[tuple], cache: dict, audio_key: str, acfg, ws: Workspace, workers: int | None,
                console, rejected: list[dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """({id: audio row}, {id: file hash of what was processed now}): cached rows are reused while
    the file, the audio settings and the outputs on disk are unchanged; the rest go to workers."""
    audio_rows: dict[str, dict] = {}
    todo_audio = []
    for uid, e in kept_text:
        c = cache.get(uid, {})
        try:
            fhash = _file_hash(Path(e.audio))
        except OSError as err:
            rejected.append({"id": uid, "source": e.source, "reason": f"unreadable audio: {err}"})
            continue
        fresh = (
            c.get("audio_key") == audio_key
            and c.get("file_hash") == fhash
            and "audio_row" in c
            and ("error" in c["audio_row"] or (ws.mel_path(uid).exists() and ws.wav_path(uid).exists()))
        )
        if fresh:
            audio_rows[uid] = c["audio_row"]
            if "error" not in c["audio_row"] and "source_sr" not in c["audio_row"]:  # cached by an older version
                audio_rows[uid] = {**c["audio_row"], "source_sr": _source_rate(str(e.audio))}
        else:
            todo_audio.append((uid, e, fhash))
    n_workers = max(1, workers or os.cpu_count() or 1)
    if todo_audio:
        for uid, row in _run_audio(todo_audio, acfg, ws, n_workers, console):
            audio_rows[uid] = row
    return audio_rows, {uid: fh for uid, _, fh in todo_audio}


def _assemble(kept_text: list[tuple], text_rows: dict, audio_rows: dict, file_hashes: dict, cache: dict,
              keys: dict, rejected: list[dict]) -> tuple[list[dict], dict]:
    """(manifest rows, the new cache); the cache also remembers failed audio so it is not retried."""
    rows = []
    new_cache = {}
    for uid, e in kept_text:
        if uid not in audio_rows:
            continue
        arow, trow = audio_rows[uid], text_rows[uid]
        new_cache[uid] = {
            "text_key": keys["text_key"], "text": e.text, "text_row": trow, "audio_key": keys["audio_key"],
            "file_hash": file_hashes.get(uid, cache.get(uid, {}).get("file_hash")), "audio_row": arow,
        }
        if "error" in arow:
            rejected.append({"id": uid, "source": e.source, "audio": str(e.audio), "reason": arow["error"]})
            continue
        rows.append({
            "id": uid, "speaker": e.speaker or "default", "text": e.text,
            "normalized": trow["normalized"], "phonemes": trow["phonemes"], "symbols": trow["symbols"],
            **arow, "source": str(Path(e.audio)),
        })
    return rows, new_cache


def _phonemise_all(texts: list[str], tcfg) -> list[dict]:
    """Normalise + phonemise in batches; a batch that fails is retried item by item."""
    out: list[dict] = []
    kw = dict(language=tcfg.language, text_type=tcfg.text_type, normalize=tcfg.normalize, keep_stress=tcfg.keep_stress)

    def row(r) -> dict:
        if r.dropped:  # the recording says something the symbols would not: not a training pair
            return {"error": f"text has characters that a voice in language {tcfg.language} cannot speak "
                             f"(another script, emoji or symbols): {' '.join(dict.fromkeys(r.dropped))}"}
        return {"normalized": r.normalized, "phonemes": r.phonemes, "symbols": list(r.symbols)}

    for i in range(0, len(texts), 256):
        chunk = texts[i : i + 256]
        try:
            out.extend(row(r) for r in texts_to_symbols(chunk, **kw))
        except Exception:
            for t in chunk:
                try:
                    (r,) = texts_to_symbols([t], **kw)
                    out.append(row(r))
                except Exception as e:
                    out.append({"error": f"text front end failed: {type(e).__name__}: {e}"})
    return out


def _has_speech(symbols: list[str]) -> bool:
    """True when some symbol is a letter (IPA or grapheme), not only spaces and punctuation."""
    import unicodedata

    return any(unicodedata.category(ch).startswith("L") and ch not in "ˈˌ" for s in symbols for ch in s)


def _run_audio(todo, acfg, ws: Workspace, n_workers: int, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cfg = asdict(acfg)
    cols = (TextColumn("audio"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*cols, console=console, transient=True) as bar:
        task = bar.add_task("audio", total=len(todo))
        if n_workers == 1:
            _init_worker()
            for uid, e, _ in todo:
                yield uid, process_audio(uid, str(e.audio), cfg, str(ws.root))
                bar.advance(task)
            return
        with ProcessPoolExecutor(n_workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
            futs = {pool.submit(process_audio, uid, str(e.audio), cfg, str(ws.root)): uid for uid, e, _ in todo}
            for fut in as_completed(futs):
                uid = futs[fut]
                try:
                    row = fut.result()
                except Exception as err:  # a crashed worker still names the file
                    row = {"error": f"audio processing failed: {type(err).__name__}: {err}"}
                yield uid, row
                bar.advance(task)


def _split_rank(seed: int, uid: str) -> str:
    """The fixed order validation utterances are taken in: a seeded hash of the id alone, so an
    utterance's place never depends on the rest of the corpus or the input order."""
    return hashlib.sha1(f"{seed}:{uid}".encode()).hexdigest()


def _assign_split(rows: list[dict], dcfg) -> None:
    """A small deterministic validation split with every speaker in it (the SPLIT RULE above)."""
    n = len(rows)
    ranked = sorted(rows, key=lambda r: _split_rank(dcfg.seed, r["id"]))
    n_val = max(round(n * dcfg.val_fraction), _n_for_seconds(ranked, dcfg))
    n_val = min(dcfg.max_val, max(dcfg.min_val, n_val))
    n_val = min(n_val, n - 1) if n > 1 else 0
    val_ids = {r["id"] for r in ranked[:n_val]}  # the corpus-wide pick
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for r in ranked:  # each speaker's list keeps the hash order
        by_speaker[str(r.get("speaker") or "default")].append(r)
    for spk_rows in by_speaker.values():
        val_ids.update(r["id"] for r in spk_rows[:speaker_val_guarantee(len(spk_rows), dcfg)])
    for r in rows:
        r["split"] = "val" if r["id"] in val_ids else "train"


def _n_for_seconds(ranked: list[dict], dcfg) -> int:
    """Utterances (in hash order) needed for `val_seconds` of validation audio, at most
    `val_max_fraction` of the corpus: on 10 minutes of data, 2 % is 3-5 clips, too few to tell a
    better checkpoint from a worse one. 0 where durations are unknown."""
    if dcfg.val_seconds <= 0 or not any(r.get("duration_s") for r in ranked):
        return 0
    cap = int(len(ranked) * dcfg.val_max_fraction)
    total = 0.0
    for k, r in enumerate(ranked[:cap], 1):
        total += float(r.get("duration_s") or 0.0)
        if total >= dcfg.val_seconds:
            return k
    return cap


def speaker_val_guarantee(n_speaker: int, dcfg) -> int:
    """Validation utterances a speaker is sure to have: min_val once it has
    MIN_SPEAKER_UTTS_FOR_VAL utterances, never its last training one. Depends on the speaker's
    own count only, so other speakers' files never move its split."""
    if n_speaker < MIN_SPEAKER_UTTS_FOR_VAL:
        return 0
    return max(0, min(int(dcfg.min_val), n_speaker - 1))


def _remove_stale(ws: Workspace, keep: set[str]) -> None:
    """Artifacts of utterances no longer in the manifest (inside WORK only, never DATA)."""
    for sub, ext in (("wavs", ".wav"), ("mels", ".npy")):
        d = ws.dir(sub)
        if d.exists():
            for p in d.glob(f"*{ext}"):
                if p.stem not in keep:
                    p.unlink()


def _summary(rows: list[dict], rejected: list[dict], table, acfg) -> dict:
    per_speaker: dict[str, dict] = defaultdict(lambda: {"utterances": 0, "hours": 0.0, "val": 0})
    for r in rows:
        s = per_speaker[r["speaker"]]
        s["utterances"] += 1
        s["hours"] += r["duration_s"] / 3600
        s["val"] += r["split"] == "val"
    reasons = Counter(_reason_class(r["reason"]) for r in rejected)
    return {
        "kept": len(rows),
        "rejected": len(rejected),
        "rejected_by_reason": dict(reasons.most_common()),
        "hours": sum(r["duration_s"] for r in rows) / 3600,
        "speakers": {k: dict(v) for k, v in sorted(per_speaker.items())},
        "symbols": len(table),
        "val": sum(r["split"] == "val" for r in rows),
        "narrowband": _narrowband(rows, acfg),
    }


def _narrowband(rows: list[dict], acfg) -> dict:
    """Clips whose source rate cannot fill the mel range (telephone audio at 8 kHz for mels to
    8 kHz): {"clips", "rates", "band_hz"}. Their bands above the source's Nyquist stay empty
    (training masks them: `mel_bins_recorded`), and a voice trained on them is less intelligible."""
    band_hz = mel_top_hz(acfg)
    rates = Counter(int(r["source_sr"]) for r in rows if r.get("source_sr"))
    # the rule training masks by: some mel bin lies wholly above the source's Nyquist
    narrow = {sr: n for sr, n in rates.items() if mel_bins_recorded(sr, acfg) < acfg.n_mels}
    return {"clips": sum(narrow.values()), "rates": sorted(narrow), "band_hz": band_hz}


def _reason_class(reason: str) -> str:
    return reason.split(":")[0].strip()


def _print_summary(console, s: dict, ws: Workspace) -> None:
    from rich.table import Table

    t = Table(title=f"tts preprocess → {ws.root}", show_header=True)
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("kept utterances", str(s["kept"]))
    t.add_row("validation split", str(s["val"]))
    t.add_row("hours of audio", f"{s['hours']:.3f}")
    t.add_row("symbols", str(s["symbols"]))
    t.add_row("rejected", str(s["rejected"]))
    for reason, n in s["rejected_by_reason"].items():
        t.add_row(f"  {reason}", str(n))
    for spk, v in s["speakers"].items():
        t.add_row(f"speaker {spk}", f"{v['utterances']} utt ({v['val']} val), {v['hours'] * 60:.1f} min")
    console.print(t)
    if s["rejected"]:
        console.print(f"rejected entries and reasons: {ws.rejected}")
    nb = s["narrowband"]
    if nb["clips"]:
        low = min(nb["rates"])
        console.print(
            f"[yellow]warning:[/] {nb['clips']} of {s['kept']} clips are sampled at "
            f"{', '.join(f'{r} Hz' for r in nb['rates'])}: nothing above {low // 2} Hz, while the voice's mels "
            f"reach {nb['band_hz']:.0f} Hz. Training leaves the empty bands out of the loss (the highs come from "
            "the base voice), but expect a less intelligible voice than from wideband recordings, the more so "
            "through a phone codec: use the original recordings if you have them (README: Telephone-band audio).")
