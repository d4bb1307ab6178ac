"""Replay: the base voice's own speech mixed into fine-tuning (rehearsal).

Why: minutes of new recordings teach the shared decoder a new voice, and at the same time wear away
what the base learned from hours of speech: sounds and sound sequences the new clips rarely hold
come out smeared. Training on the new clips *and* on the base voice speaking its own training
sentences (each base speaker under its own speaker embedding) keeps that knowledge in use.

The replay set is made once per run from the init checkpoint itself: sentences in the base's
language, phonemised by its own front end, spoken by the model with its predicted durations, pitch
and energy. Its mels are the base's outputs (no vocoder, no audio): exactly what the base would
say, in the feature space the fine-tuning trains on. It lives in RUN/replay/ as a small workspace
(manifest, symbols, pitch statistics, mels/durations/pitch/energy), never in the user's WORK.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tts_cli.errors import ConfigError, TrainConfigError
from tts_cli.workspace import Workspace, atomic_save_npy, atomic_write_json, atomic_write_jsonl

log = logging.getLogger("tts_cli.train")

REPLAY_DIR = "replay"
KEY_FILE = "replay.json"
FORMAT_VERSION = 1
MIN_FRAMES = 20  # a replay utterance shorter than this (~0.2 s) teaches nothing


@dataclass
class ReplayPlan:
    """`ratio` minutes of base speech per minute of the new voice's training audio, from `sentences`."""

    ratio: float
    sentences: list[str]
    source: str  # where the sentences came from, for the log and the key


def bundled_sentences(language: str) -> Path | None:
    """The sentence file a bundled voice in `language` was trained on (teacher_sentences_<lang>.txt),
    else the language's sample sentences, else None."""
    from tts_cli.resources import SENTENCES, language_file

    return language_file(SENTENCES, "teacher_sentences", language) or language_file(SENTENCES, "sentences", language)


def plan_replay(replay: dict | None, init_language: str) -> ReplayPlan | None:
    """The recipe's `train: replay:` section -> a plan, or None when replay is off.

    replay: {ratio: R, sentences: PATH (optional, one sentence per line)}: R minutes of the base
    voice per minute of your training audio (0 = off); the sentences default to the ones a bundled
    voice in the init checkpoint's language was trained on.
    """
    if not replay:
        return None
    if not isinstance(replay, dict):
        raise TrainConfigError(f"train.replay: expected a mapping such as {{ratio: 1.0}}, got {replay!r}")
    unknown = sorted(set(replay) - {"ratio", "sentences"})
    if unknown:
        raise TrainConfigError(f"train.replay: unknown setting(s) {unknown}; known: ratio, sentences")
    try:
        ratio = float(replay.get("ratio") or 0)
    except (TypeError, ValueError):
        raise TrainConfigError(f"train.replay.ratio: a number (minutes of base speech per minute of yours), "
                               f"got {replay.get('ratio')!r}") from None
    if ratio < 0:
        raise TrainConfigError(f"train.replay.ratio: {ratio} < 0")
    if ratio == 0:
        return None
    path = replay.get("sentences")
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise TrainConfigError(f"train.replay.sentences: {p}: no such file")
    else:
        p = bundled_sentences(init_language)
        if p is None:
            log.warning("replay off: no bundled sentences in %s, the init checkpoint's language "
                        "(set train.replay.sentences to a file of sentences in it)", init_language)
            return None
    from tts_cli.sample_corpus import read_sentences  # the project's reader: # comments, blank lines

    try:
        sentences = read_sentences(p)
    except ConfigError as e:
        raise TrainConfigError(f"train.replay.sentences: {e}") from None
    source = str(path) if path else p.name
    return ReplayPlan(ratio, sentences, source)


def _key(plan: ReplayPlan, init_ckpt: dict, minutes: float) -> str:
    """Changes when the base weights, the sentences or the amount change: then the set is remade."""
    h = hashlib.sha256()
    for name in sorted(init_ckpt["model"]):
        t = init_ckpt["model"][name]
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().float().numpy().tobytes())
    h.update(json.dumps([FORMAT_VERSION, round(minutes, 2), plan.sentences], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def make_replay(run_dir: Path, plan: ReplayPlan, init_ckpt: dict, taken_speakers: set[str],
                user_minutes: float) -> Workspace:
    """RUN/replay/ for this plan (reused when its key matches): `plan.ratio` x `user_minutes` of the
    init model speaking `plan.sentences`, split evenly over its speakers (disjoint sentences each).

    Base speakers whose name the user's data already uses are left out (their embedding row is
    the user's). Returns the replay workspace (split "train" everywhere).
    """
    from tts_cli.checkpoints.format import CheckpointHeader
    from tts_cli.checkpoints.load import build_fastpitch

    ws = Workspace(run_dir / REPLAY_DIR)
    minutes = plan.ratio * user_minutes
    key = _key(plan, init_ckpt, minutes)
    key_file = ws.root / KEY_FILE
    if key_file.exists() and ws.manifest.exists():
        if json.loads(key_file.read_text(encoding="utf-8")).get("key") == key:
            return ws
    header = CheckpointHeader.of(init_ckpt)
    names = [n for n in header.speaker_names() or ["default"] if n not in taken_speakers]
    if not names:
        log.warning("replay off: every speaker of the init checkpoint is a speaker of the new data")
        return ws
    model = build_fastpitch(init_ckpt, aligner=False).eval()
    stats = header.pitch_stats or {}
    share = len(plan.sentences) // len(names)
    for d in ("mels", "durations", "pitch", "energy"):
        ws.dir(d).mkdir(parents=True, exist_ok=True)
    rows, pitch_stats = [], {}
    for k, name in enumerate(names):
        s = (stats.get("speakers") or {}).get(name) or stats.get("corpus") or {}
        mean, std = float(s.get("mean", float(model.pitch_mean))), float(s.get("std", float(model.pitch_std)))
        pitch_stats[name] = {"mean": mean, "std": std if std > 1e-3 else 1.0}
        texts = plan.sentences[k * share:(k + 1) * share] or plan.sentences
        rows += _speak(ws, model, header, name, texts, pitch_stats[name], minutes * 60 / len(names))
    atomic_write_json(ws.symbols, {"symbols": list(header.symbols), "language": header.language})
    atomic_write_json(ws.pitch_stats, {"speakers": pitch_stats, "corpus": stats.get("corpus") or
                                       next(iter(pitch_stats.values()))})
    atomic_write_jsonl(ws.manifest, rows)
    atomic_write_json(key_file, {"key": key, "minutes": round(minutes, 2), "ratio": plan.ratio,
                                 "sentences": plan.source, "utterances": len(rows), "speakers": names})
    return ws


def _speak(ws: Workspace, model, header, name: str, texts: list[str], pitch: dict, budget_s: float) -> list[dict]:
    """One base speaker saying `texts` in order until `budget_s` seconds: features + manifest rows."""
    import torch

    from tts_cli.f0 import frame_energy
    from tts_cli.prosody import denormalize_pitch
    from tts_cli.text import texts_to_symbols
    from tts_cli.text.symbols import SymbolTable

    table, text = SymbolTable(header.symbols), header.text
    frame_s = float(header.audio.get("hop_length", 256)) / float(header.audio.get("sample_rate", 22050))
    speaker = (dict(header.speakers).get(name, 0)) if model.speaker_emb is not None else None
    rows, spoken_s = [], 0.0
    for start in range(0, len(texts), 16):
        batch = texts[start:start + 16]
        results = texts_to_symbols(batch, header.language, str(text.get("text_type") or "text"),
                                   bool(text.get("normalize", True)), bool(text.get("keep_stress", True)))
        for sentence, res in zip(batch, results):
            ids, _ = table.encode_with_unknown(res.symbols)
            if spoken_s >= budget_s:
                return rows
            if not ids:
                continue
            with torch.inference_mode():
                out = model.infer(torch.tensor([ids]), torch.tensor([len(ids)]), speakers=speaker)
            T = int(out["mel_lens"][0])
            if T < MIN_FRAMES:
                continue
            mel = out["mel"][0, :, :T].float().numpy().astype(np.float32)
            dur = out["durations"][0].numpy().astype(np.int64)
            hz = denormalize_pitch(out["pitch"][0].float().numpy(), pitch["mean"], pitch["std"])
            uid = f"replay-{name}-{len(rows):04d}"
            atomic_save_npy(ws.mel_path(uid), mel)
            atomic_save_npy(ws.duration_path(uid), dur)
            atomic_save_npy(ws.pitch_path(uid), np.repeat(hz, dur).astype(np.float32))
            atomic_save_npy(ws.energy_path(uid), frame_energy(mel))
            rows.append({"id": uid, "speaker": name, "text": sentence, "symbols": [table.symbols[i] for i in ids],
                         "n_frames": T, "duration_s": round(T * frame_s, 4), "split": "train"})
            spoken_s += T * frame_s
    return rows


def load_replay(run_dir: Path) -> Workspace | None:
    """The replay set a run made (for --resume), or None."""
    ws = Workspace(run_dir / REPLAY_DIR)
    return ws if (ws.root / KEY_FILE).exists() and ws.manifest.exists() else None
