"""`tts align WORK --from-teacher CORPUS`: durations from a teacher corpus's phoneme timing."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from tts_cli.stages.align_durations import silent_symbols_as_aligner
from tts_cli.stages.align_teacher import align_from_teacher, match_durations, read_teacher_rows
from tts_cli.teacher.kokoro import AUDIO_LEAD_S
from tts_cli.workspace import Workspace, atomic_write_json, atomic_write_jsonl

sys.path.insert(0, str(Path(__file__).parent))
from helpers_workspace import make_workspace  # noqa: E402

SR, HOP = 22050, 256
TINY_ALIGN = {"align": {"n_text_channels": 32, "n_att_channels": 16, "batch_size": 4, "lr": 3e-3, "save_every": 10,
                        "plots": 0}}


def frame(t: float, trim: float) -> int:
    """The spec: a boundary at source time t lands on frame round((t - trim) * sr / hop)."""
    return int(np.floor((t - trim) * SR / HOP + 0.5))


# --------------------------------------------------------------------------- the arithmetic

def test_boundaries_are_shifted_by_the_trim_and_rounded_to_frames():
    symbols = ["k", "ˈ", "a", " ", "s", "a", "."]
    inner = [0.061, 0.0237, 0.0911, 0.0333, 0.1052, 0.0788, 0.0444]
    tokens, durs = ["", *symbols, ""], [0.2317, *inner, 0.0913]
    trim, n_frames = 0.1311, 42
    m = match_durations(symbols, n_frames, trim, SR, HOP, tokens, durs)
    assert m.kind == "exact" and m.durations.dtype == np.int32
    assert m.durations.sum() == n_frames and (m.durations >= 0).all()
    bounds = np.concatenate([[0], np.cumsum(m.durations)])
    times = 0.2317 + np.concatenate([[0], np.cumsum(inner)])
    for k in range(1, len(symbols)):  # inner boundaries: exactly the teacher's, shifted and rounded
        assert bounds[k] == min(max(frame(times[k], trim), 0), n_frames)
    # the first symbol absorbs the kept lead-in (the pad's time after the trim), the last the tail
    assert bounds[0] == 0 and m.durations[0] == frame(times[1], trim)
    assert bounds[-1] == n_frames


def test_boundaries_outside_the_kept_audio_are_clipped():
    symbols = ["a", "b", "c", "d"]
    tokens, durs = ["", *symbols, ""], [0.3, 0.1, 0.2, 0.2, 0.2, 0.3]
    # trim cuts into "a"; the kept audio ends inside "c" (n_frames covers ~0.35 s)
    m = match_durations(symbols, 30, 0.35, SR, HOP, tokens, durs)
    assert m.durations.sum() == 30 and (m.durations >= 0).all()
    assert m.durations[0] == frame(0.4, 0.35) and m.durations[-1] == 0


def test_kokoro_letters_and_dropped_punctuation_still_give_exact_sound_boundaries():
    # our front end: ¿ tʃ ˈ a aɪ eʊ ? ; Kokoro: ʧ for tʃ, I for aɪ, e ʊ as two tokens, no ¿ in its vocabulary
    symbols = ["¿", "tʃ", "ˈ", "a", "aɪ", "eʊ", "?"]
    tokens = ["", "ʧ", "ˈ", "a", "I", "e", "ʊ", "?", ""]
    durs = [0.3, 0.1017, 0.0261, 0.0876, 0.1345, 0.05, 0.0712, 0.0523, 0.05]
    trim, n = 0.1, 60
    m = match_durations(symbols, n, trim, SR, HOP, tokens, durs)
    assert m.kind == "equivalent" and m.durations.sum() == n
    t = 0.3 + np.concatenate([[0], np.cumsum(durs[1:-1])])  # teacher token starts
    ends = np.cumsum(m.durations)
    assert m.durations[0] == frame(t[0], trim)  # ¿ (the teacher has none) holds the lead-in silence
    assert ends[1] == frame(t[1], trim)  # tʃ = ʧ
    assert ends[4] == frame(t[4], trim)  # aɪ = I
    assert ends[5] == frame(t[6], trim)  # eʊ = e + ʊ


def test_a_differing_sound_is_bridged_and_flagged_and_a_different_text_is_a_mismatch():
    symbols = list("laestaθjonkomoestas")
    tokens = ["", *"laestaθjonkɔmoestas", ""]  # one vowel differs
    durs = [0.2] + [0.06] * (len(tokens) - 2) + [0.1]
    m = match_durations(symbols, 120, 0.1, SR, HOP, tokens, durs)
    assert m.kind == "approximate" and m.durations.sum() == 120
    assert "'o'" in m.notes[0] and "'ɔ'" in m.notes[0]
    assert np.cumsum(m.durations)[11] == frame(0.2 + 12 * 0.06, 0.1)  # same-length substitution: still exact
    other = match_durations(list("buenosdias"), 120, 0.1, SR, HOP, tokens, durs)
    assert other.kind == "mismatch" and other.durations is None and "differ" in other.notes[0]


def test_the_teachers_audio_lead_moves_every_inner_boundary_earlier():
    symbols = ["a", "b", "c", "d"]
    tokens, durs = ["", *symbols, ""], [0.3, 0.1, 0.2, 0.2, 0.2, 0.3]
    plain = match_durations(symbols, 80, 0.1, SR, HOP, tokens, durs)
    early = match_durations(symbols, 80, 0.1, SR, HOP, tokens, durs, lead_s=0.04)
    times = 0.3 + np.cumsum([0.1, 0.2, 0.2])
    np.testing.assert_array_equal(np.cumsum(early.durations)[:-1], [frame(t - 0.04, 0.1) for t in times])
    assert np.cumsum(plain.durations)[1] - np.cumsum(early.durations)[1] == 3  # 40 ms = 3.4 frames
    assert early.durations.sum() == 80


# --------------------------------------------------------------------------- the aligner's convention

def loud_quiet_mel(loud: list[bool]) -> np.ndarray:
    """A log-mel whose frames are loud (0) or 40+ dB quieter (-10)."""
    return np.where(np.array(loud)[None, :], 0.0, -10.0).repeat(4, axis=0).astype(np.float32)


def test_a_stress_marks_frames_go_to_the_sound_after_it_or_before_it_at_the_end():
    symbols = ["k", "ˈ", "a", "s", "ˌ"]
    dur = np.array([3, 4, 5, 2, 2], np.int32)
    out = silent_symbols_as_aligner(dur, symbols, None, zero_width_stress=True, space_quiet_db=0)
    np.testing.assert_array_equal(out, [3, 0, 9, 4, 0])
    kept = silent_symbols_as_aligner(dur, symbols, None, zero_width_stress=False, space_quiet_db=0)
    np.testing.assert_array_equal(kept, dur)


def test_a_word_space_keeps_only_its_quiet_frames():
    symbols = ["a", " ", "ˈ", "b", " ", "c", " "]
    dur = np.array([4, 6, 2, 3, 4, 3, 3], np.int32)
    # frames: a 0-3 | space 4-9: loud, loud, quiet, quiet, quiet, loud | ˈ 10-11 | b 12-14 | space 15-18 all loud
    # | c 19-21 | trailing space 22-24: loud, quiet, quiet
    loud = [True] * 6 + [False] * 3 + [True] * 14 + [False] * 2
    out = silent_symbols_as_aligner(dur, symbols, loud_quiet_mel(loud), zero_width_stress=True, space_quiet_db=40)
    # space 1: 2 loud frames to a, 1 loud frame to b (its stress mark's 2 as well); space 4, no quiet frame:
    # half to b, half to c; the trailing space gives its loud frame to c and keeps the silence
    np.testing.assert_array_equal(out, [6, 3, 0, 3 + 1 + 2 + 2, 0, 3 + 2 + 1, 2])
    assert out.sum() == dur.sum() and out.dtype == np.int32
    untouched = silent_symbols_as_aligner(dur, symbols, None, zero_width_stress=False, space_quiet_db=0)
    np.testing.assert_array_equal(untouched, dur)


# --------------------------------------------------------------------------- the stage

def teacher_row(uid: str, symbols: list[str], n_frames: int, trim: float, rng) -> dict:
    """A teacher row whose speech spans the kept audio: lead pad ends 20 ms after the trim point."""
    lead = trim + 0.02
    speech = n_frames * HOP / SR - 0.04
    inner = rng.uniform(0.5, 1.5, size=len(symbols))
    inner = inner / inner.sum() * speech
    durs = [lead, *inner.tolist(), 0.1]
    return {"id": uid, "phonemes": "".join(symbols), "tokens": ["", *symbols, ""], "durations_s": durs,
            "units": [], "duration_s": float(sum(durs)), "sample_rate": SR}


def expected(row: dict, t: dict, work: Path) -> np.ndarray:
    """The teacher's boundaries moved by its audio lead, then put in the aligner's convention."""
    times = np.cumsum(t["durations_s"])[:-1] - AUDIO_LEAD_S  # boundaries: pad end, each inner token end
    f = [min(max(frame(x, row["trim_start_s"]), 0), row["n_frames"]) for x in times]
    f[0], f[-1] = 0, row["n_frames"]
    mel = np.load(work / "mels" / f"{row['id']}.npy")
    return silent_symbols_as_aligner(np.diff(f), row["symbols"], mel, zero_width_stress=True, space_quiet_db=40)


def make_pair(tmp_path: Path, n_utts: int = 6, seed: int = 0):
    """A workspace of two speakers plus a two-voice teacher corpus made for it.

    voiceA: teacher_durations.jsonl; manifest ids = teacher ids; source paths that do not exist.
    voiceB: only teacher/<id>.json (a corpus still being made); manifest ids prefixed with the
    speaker (as `tts preprocess` does), sources pointing into CORPUS/voiceB/wavs (one without).
    """
    work = make_workspace(tmp_path / "work", n_utts=n_utts, n_val=1, speakers=("voiceA", "voiceB"),
                          durations=False, seed=seed)
    corpus = tmp_path / "corpus"
    rng = np.random.default_rng(seed)
    ws = Workspace(work)
    rows, by_voice = [], {"voiceA": [], "voiceB": []}
    for row in ws.load_manifest():
        row["trim_start_s"] = round(float(rng.uniform(0.05, 0.3)), 4)
        tid = row["id"]
        if row["speaker"] == "voiceB":
            new = f"voiceB_{tid}"
            for sub in ("mels", "pitch", "energy"):
                (work / sub / f"{tid}.npy").rename(work / sub / f"{new}.npy")
            row["id"], row["audio"] = new, f"wavs/{new}.wav"
            row["source"] = str(corpus / "voiceB" / "wavs" / f"{tid}.wav")
        else:
            row["source"] = f"elsewhere/wavs/{tid}.wav"
        by_voice[row["speaker"]].append(teacher_row(tid, row["symbols"], row["n_frames"], row["trim_start_s"], rng))
        rows.append(row)
    del rows[-1]["source"]  # matched by id without the speaker prefix
    atomic_write_jsonl(ws.manifest, rows)
    atomic_write_jsonl(corpus / "voiceA" / "teacher_durations.jsonl", by_voice["voiceA"])
    for t in by_voice["voiceB"]:
        atomic_write_json(corpus / "voiceB" / "teacher" / f"{t['id']}.json", t)
    teacher = {f"voiceB_{t['id']}" if t in by_voice["voiceB"] else t["id"]: t for v in by_voice.values() for t in v}
    return work, corpus, teacher


def report_rows(work: Path) -> list[dict]:
    return [json.loads(x) for x in (work / "align_report.jsonl").read_text().splitlines() if x.strip()]


def test_multi_voice_corpus_gives_every_utterance_its_teacher_durations(tmp_path):
    work, corpus, teacher = make_pair(tmp_path)
    assert len(read_teacher_rows(corpus)[0]) == 6
    s = align_from_teacher(work, corpus)
    ws = Workspace(work)
    assert s["written"] == 6 and s["exact"] == 6 and s["no_teacher"] == 0 and s["missing"] == 0
    for row in ws.load_manifest():
        dur = np.load(ws.duration_path(row["id"]))
        assert dur.dtype == np.int32 and len(dur) == len(row["symbols"])
        assert dur.sum() == row["n_frames"]
        np.testing.assert_array_equal(dur, expected(row, teacher[row["id"]], work))
    cfg = (work / "align_config.yaml").read_text()
    assert "method: teacher" in cfg and str(corpus.resolve()) in cfg and "hop_length: 256" in cfg
    assert report_rows(work) == []
    assert len(list((work / "alignments").glob("*.png"))) == 6  # the learned stage's plot, cheaply


def test_mismatch_and_missing_rows_are_reported_and_the_run_goes_on(tmp_path):
    work, corpus, teacher = make_pair(tmp_path)
    ws = Workspace(work)
    jsonl = corpus / "voiceA" / "teacher_durations.jsonl"
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    bad = rows[0]["id"]
    rows[0]["tokens"] = ["", *"xyzzyxyzzy"[: len(rows[0]["tokens"]) - 2], ""]  # another text
    atomic_write_jsonl(jsonl, rows)
    gone = sorted((corpus / "voiceB" / "teacher").glob("*.json"))[0]
    gone.unlink()
    s = align_from_teacher(work, corpus)
    assert s["no_teacher"] == 2 and s["missing"] == 2 and s["written"] == 4
    report = {r["id"]: r for r in report_rows(work)}
    assert str(jsonl) in report[bad]["reasons"][0] and "differ" in report[bad]["reasons"][0]
    missing_id = f"voiceB_{gone.stem}"
    assert "no teacher row" in report[missing_id]["reasons"][0]
    assert f"{gone.stem}.wav" in report[missing_id]["reasons"][0]  # names the source file
    assert not ws.duration_path(bad).exists() and not ws.duration_path(missing_id).exists()
    others = [r for r in ws.load_manifest() if r["id"] not in (bad, missing_id)]
    assert all(np.load(ws.duration_path(r["id"])).sum() == r["n_frames"] for r in others)


def test_rerun_is_incremental_and_replaces_durations_from_another_source(tmp_path):
    work, corpus, teacher = make_pair(tmp_path)
    ws = Workspace(work)
    align_from_teacher(work, corpus)
    first = {r["id"]: np.load(ws.duration_path(r["id"])) for r in ws.load_manifest()}
    s = align_from_teacher(work, corpus)
    assert s["written"] == 0 and s["kept"] == 6
    # another source (e.g. the learned aligner) wrote one file: the teacher's replaces it
    victim = sorted(first)[2]
    other = first[victim].copy()
    other[0] += 1
    other[-1] -= 1
    np.save(ws.duration_path(victim), other.astype(np.int32))
    s = align_from_teacher(work, corpus)
    assert s["written"] == 1 and s["kept"] == 5
    np.testing.assert_array_equal(np.load(ws.duration_path(victim)), first[victim])
    assert align_from_teacher(work, corpus, force=True)["written"] == 6


def test_learned_fallback_aligns_only_what_the_teacher_could_not(tmp_path):
    work, corpus, teacher = make_pair(tmp_path, n_utts=4)
    ws = Workspace(work)
    gone = sorted((corpus / "voiceB" / "teacher").glob("*.json"))[0]
    gone.unlink()
    s = align_from_teacher(work, corpus, fallback="learned", steps=5, config=TINY_ALIGN)
    assert s["no_teacher"] == 1 and s["learned"] == 1 and s["missing"] == 0
    for row in ws.load_manifest():
        dur = np.load(ws.duration_path(row["id"]))
        assert dur.sum() == row["n_frames"]
        if row["id"] in teacher and row["id"] != f"voiceB_{gone.stem}":
            np.testing.assert_array_equal(dur, expected(row, teacher[row["id"]], work))  # not overwritten
    assert "fallback_learned" in (work / "align_config.yaml").read_text()
    report = report_rows(work)
    assert [r["id"] for r in report if r.get("source") == "teacher"] == [f"voiceB_{gone.stem}"]
    # a rerun keeps the learned file (no teacher row for it) and the report rows
    s = align_from_teacher(work, corpus)
    assert s["missing"] == 0 and s["written"] == 0
    assert report_rows(work) == report


def test_train_consumes_teacher_durations(tmp_path):
    from tts_cli.stages.train import train

    work, corpus, _ = make_pair(tmp_path)
    align_from_teacher(work, corpus)
    micro = {"preset": "tiny", "d_model": 48, "encoder_layers": 1, "decoder_layers": 1, "encoder_ff": 96,
             "decoder_ff": 96, "duration_predictor_filters": 32, "pitch_predictor_filters": 32,
             "energy_predictor_filters": 32, "aligner_channels": 16}
    config = {"model": micro, "train": {"steps": 2, "lr": 0.01, "warmup": 1, "batch_frames": 200, "log_every": 1,
                                        "val_every": 0, "checkpoint_every": 100, "num_workers": 0}}
    s = train(work, tmp_path / "run", config=config, progress=False, device="cpu")
    assert s["step"] == 2 and all(np.isfinite(v) for v in s["losses"].values())
    assert "duration" in " ".join(s["losses"])  # trained with external durations: a duration loss


def test_cli_switch(tmp_path):
    from typer.testing import CliRunner

    from tts_cli.cli import app

    work, corpus, _ = make_pair(tmp_path, n_utts=2)
    r = CliRunner().invoke(app, ["align", str(work), "--from-teacher", str(corpus)], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert all(np.load(p).dtype == np.int32 for p in (work / "durations").glob("*.npy"))
    assert len(list((work / "durations").glob("*.npy"))) == 2
    r = CliRunner().invoke(app, ["align", str(work), "--from-teacher", str(corpus), "--steps", "5"])
    assert r.exit_code == 1 and "--fallback learned" in r.output
    r = CliRunner().invoke(app, ["align", str(work), "--from-teacher", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and "not found" in r.output
