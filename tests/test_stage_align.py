"""`tts align` on tiny synthetic workspaces whose true durations are known."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tts_cli.errors import AlignmentError
from tts_cli.checkpoints.format import save_checkpoint
from tts_cli.stages.align import align
from tts_cli.stages.align_data import batch_for_step
from tts_cli.stages.align_eval import evaluate, predicted_phones
from tts_cli.workspace import Workspace, atomic_save_npy, atomic_write_json, atomic_write_jsonl, atomic_write_text

# small model so a test trains in seconds
TINY = {"align": {"n_text_channels": 32, "n_att_channels": 16, "batch_size": 4, "lr": 3e-3, "save_every": 10,
                  "plots": 2}}
SYMBOLS = ["_", " ", "ˈ", "a", "e", "i", "o", "u", "k", "l", "m", "n", "p", "s", "t"]


def make_workspace(root: Path, n_utts: int = 3, seed: int = 0, noise: float = 0.3, dur_range=(3, 8),
                   n_symbols_range=(6, 10)) -> dict[str, np.ndarray]:
    """A workspace whose mels are each symbol's random spectral template repeated for a random
    duration, plus noise. Word spaces and stress marks are silent (0 frames), as in speech.
    Returns the true durations by id."""
    rng = np.random.default_rng(seed)
    sounding = list(range(3, len(SYMBOLS)))
    templates = rng.normal(-5.0, 2.0, size=(len(SYMBOLS), 80)).astype(np.float32)
    rows, truth = [], {}
    for u in range(n_utts):
        seq: list[int] = []
        for _ in range(int(rng.integers(*n_symbols_range))):
            choices = [s for s in sounding if not seq or s != seq[-1]]
            seq.append(int(rng.choice(choices)))
        dur = rng.integers(dur_range[0], dur_range[1] + 1, size=len(seq)).astype(np.int32)
        # insert a word space after the 3rd symbol and a stress mark before the 5th; both silent
        seq = seq[:3] + [1] + seq[3:4] + [2] + seq[4:]
        dur = np.concatenate([dur[:3], [0], dur[3:4], [0], dur[4:]]).astype(np.int32)
        frames = np.repeat(templates[seq], dur, axis=0)
        frames = frames + noise * rng.standard_normal(frames.shape).astype(np.float32)
        uid = f"utt{u:03d}"
        atomic_save_npy(root / "mels" / f"{uid}.npy", frames.T.copy())
        rows.append({"id": uid, "speaker": f"spk{u % 2}", "text": "", "normalized": "", "phonemes": "",
                     "symbols": [SYMBOLS[i] for i in seq], "audio": f"wavs/{uid}.wav",
                     "n_frames": int(dur.sum()), "duration_s": float(dur.sum() * 256 / 22050),
                     "trim_start_s": 0.0, "split": "train"})
        truth[uid] = dur
    atomic_write_jsonl(root / "manifest.jsonl", rows)
    atomic_write_json(root / "symbols.json", {"symbols": SYMBOLS, "pad": "_", "language": "xx",
                                              "text_type": "phonemes"})
    atomic_write_text(root / "config.yaml", "audio:\n  n_mels: 80\n  hop_length: 256\n  sample_rate: 22050\n")
    return truth


def boundary_error(dur: np.ndarray, true: np.ndarray) -> int:
    return int(np.abs(np.cumsum(dur) - np.cumsum(true)).max())


def artifacts(root: Path) -> dict[str, bytes]:
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and p.parts[-2] in ("durations", "alignments") or p.name == "align_report.jsonl")
    return {n: (root / n).read_bytes() for n in names}


def test_durations_recover_the_synthetic_truth(tmp_path):
    truth = make_workspace(tmp_path, n_utts=8)
    summary = align(tmp_path, steps=150, config=TINY)
    ws = Workspace(tmp_path)
    assert summary["extracted"] == 8 and summary["trained_steps"] == 150
    ckpt = torch.load(ws.aligner_ckpt, weights_only=True)
    assert ckpt["step"] == 150 and ckpt["symbols"] == SYMBOLS
    errors = []
    for row in ws.load_manifest():
        dur = np.load(ws.duration_path(row["id"]))
        assert dur.dtype == np.int32 and len(dur) == len(row["symbols"])
        assert dur.sum() == row["n_frames"]
        sounding = np.array([s not in (" ", "ˈ") for s in row["symbols"]])
        assert (dur[sounding] >= 1).all()  # non-degenerate: every sound gets frames
        assert (dur[[s == "ˈ" for s in row["symbols"]]] == 0).all()  # stress marks are not aligned
        errors.append(boundary_error(dur, truth[row["id"]]))
    # most utterances exact to within a frame or two; an untrained aligner is far off
    assert np.median(errors) <= 2, errors
    assert sorted((tmp_path / "alignments").glob("*.png"))[:2]
    assert (tmp_path / "align_config.yaml").exists()


def test_training_lowers_the_forward_sum_loss(tmp_path):
    make_workspace(tmp_path, n_utts=3)
    early = align(tmp_path, steps=2, config=TINY)["final_loss"]
    late = align(tmp_path, steps=120, config=TINY)["final_loss"]
    assert late < early - 0.1  # the floor is ~1.3 (the blank keeps ~27% of every frame)


def test_killed_then_resumed_run_writes_the_same_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_workspace(a)
    make_workspace(b)
    align(a, steps=40, config=TINY)
    align(b, steps=20, config=TINY)  # "killed" after 20 steps (aligner.pt saved at step 20)
    for p in (b / "durations").glob("*.npy"):
        p.unlink()  # a killed run never got to extract
    align(b, steps=40, config=TINY)  # resumed
    assert artifacts(a) == artifacts(b) and artifacts(a)
    sa = torch.load(a / "aligner.pt", weights_only=True)
    sb = torch.load(b / "aligner.pt", weights_only=True)
    assert sa["step"] == sb["step"] == 40
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k


def test_existing_durations_are_kept_unless_forced(tmp_path):
    make_workspace(tmp_path)
    align(tmp_path, steps=10, config=TINY)
    marker = np.full(len(Workspace(tmp_path).load_manifest()[0]["symbols"]), 7, np.int32)
    atomic_save_npy(Workspace(tmp_path).duration_path("utt000"), marker)
    s = align(tmp_path, steps=10, config=TINY)  # nothing to train, nothing to redo
    assert s["trained_steps"] == 0 and s["kept"] == 3 and s["extracted"] == 0
    assert (np.load(Workspace(tmp_path).duration_path("utt000")) == 7).all()
    s = align(tmp_path, steps=10, config=TINY, force=True)
    assert s["trained_steps"] == 10 and s["extracted"] == 3
    assert not (np.load(Workspace(tmp_path).duration_path("utt000")) == 7).all()


def test_from_checkpoint_uses_fastpitch_aligner_weights(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_workspace(src, n_utts=4)
    align(src, steps=60, config=TINY)
    trained = torch.load(src / "aligner.pt", weights_only=True)
    # a FastPitch-style checkpoint: attention.* + encoder.word_emb.weight, symbols in reverse order
    order = list(range(len(SYMBOLS)))[::-1]
    fp_state = {f"attention.{k[len('attention.'):]}": v for k, v in trained["model"].items() if k.startswith("attention.")}
    fp_state["encoder.word_emb.weight"] = trained["model"]["embedding.weight"][order]
    fp_state["decoder.proj.weight"] = torch.zeros(2, 2)
    save_checkpoint(tmp_path / "fp.pt", fp_state, {}, [SYMBOLS[i] for i in order], 5)
    make_workspace(dst, n_utts=4)
    s = align(dst, from_checkpoint=tmp_path / "fp.pt", config=TINY)
    assert s["trained_steps"] == 0 and s["extracted"] == 4
    assert not (dst / "aligner.pt").exists()
    for p in (src / "durations").glob("*.npy"):
        np.testing.assert_array_equal(np.load(p), np.load(dst / "durations" / p.name))


def test_init_from_starts_from_a_trained_aligner_and_maps_new_symbols(tmp_path):
    src, dst, cold = tmp_path / "src", tmp_path / "dst", tmp_path / "cold"
    make_workspace(src, n_utts=8)
    align(src, steps=150, config=TINY)
    # the same kind of speech, one sound the source never saw: "i" renamed "iː"
    for root in (dst, cold):
        truth = make_workspace(root, n_utts=8)
        rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
        for r in rows:
            r["symbols"] = ["iː" if x == "i" else x for x in r["symbols"]]
        atomic_write_jsonl(root / "manifest.jsonl", rows)
        table = json.loads((root / "symbols.json").read_text())
        table["symbols"] = ["iː" if x == "i" else x for x in table["symbols"]]
        atomic_write_json(root / "symbols.json", table)
    s = align(dst, steps=30, config=TINY, init_from=src / "aligner.pt")
    assert s["trained_steps"] == 30
    src_w = torch.load(src / "aligner.pt", weights_only=True)["model"]["embedding.weight"]
    model = torch.load(dst / "aligner.pt", weights_only=True)
    assert model["step"] == 30 and "iː" in model["symbols"]
    align(cold, steps=30, config=TINY)  # the same 30 steps from scratch

    def errors(root):
        ws = Workspace(root)
        return [boundary_error(np.load(ws.duration_path(r["id"])), truth[r["id"]]) for r in ws.load_manifest()]

    # 30 steps are little from scratch, but enough from an aligner that already knows these sounds
    assert np.median(errors(dst)) <= 2 < np.median(errors(cold)), (errors(dst), errors(cold))
    assert src_w.shape == model["model"]["embedding.weight"].shape


def test_init_from_a_missing_file_is_a_clear_error_that_keeps_the_aligner(tmp_path):
    make_workspace(tmp_path)
    align(tmp_path, steps=5, config=TINY)
    before = (tmp_path / "aligner.pt").read_bytes()
    with pytest.raises(AlignmentError, match="init_from"):
        align(tmp_path, steps=5, config=TINY, init_from=tmp_path / "nope.pt", force=True)
    assert (tmp_path / "aligner.pt").read_bytes() == before


def test_from_checkpoint_without_aligner_is_a_clear_error(tmp_path):
    make_workspace(tmp_path)
    save_checkpoint(tmp_path / "x.pt", {"encoder.word_emb.weight": torch.zeros(len(SYMBOLS), 32)}, {}, SYMBOLS, 0)
    with pytest.raises(AlignmentError, match="no aligner weights"):
        align(tmp_path, from_checkpoint=tmp_path / "x.pt", config=TINY)


def test_bad_rows_are_reported_and_skipped(tmp_path):
    make_workspace(tmp_path)
    rows = Workspace(tmp_path).load_manifest()
    rows.append(dict(rows[0], id="ghost"))  # no mel file
    rows.append(dict(rows[0], id="alien", symbols=["a", "ʘ"]))  # unknown symbol
    atomic_write_jsonl(tmp_path / "manifest.jsonl", rows)
    s = align(tmp_path, steps=5, config=TINY)
    assert s["skipped"] == 2 and s["extracted"] == 3
    report = {r["id"]: r for r in map(json.loads, (tmp_path / "align_report.jsonl").read_text().splitlines())}
    assert "missing" in report["ghost"]["reasons"][0] and "ʘ" in report["alien"]["reasons"][0]


def test_report_flags_long_runs(tmp_path):
    make_workspace(tmp_path)
    cfg = {"align": dict(TINY["align"], max_run_frames=2)}
    align(tmp_path, steps=5, config=cfg)
    report = [json.loads(line) for line in (tmp_path / "align_report.jsonl").read_text().splitlines()]
    assert len(report) == 3 and all("lasts" in r["reasons"][0] for r in report)


def test_batch_order_is_a_function_of_seed_and_step():
    lengths = np.arange(50) % 17
    a = [batch_for_step(50, lengths, 8, 1, s).tolist() for s in range(14)]
    b = [batch_for_step(50, lengths, 8, 1, s).tolist() for s in range(14)]
    assert a == b
    epoch = sorted(i for batch in a[:7] for i in batch)
    assert epoch == list(range(50))  # one epoch visits every item once
    assert a != [batch_for_step(50, lengths, 8, 2, s).tolist() for s in range(14)]


def test_accuracy_evaluation_against_truth(tmp_path):
    truth = make_workspace(tmp_path, n_utts=2)
    ws = Workspace(tmp_path)
    truth_json = {}
    for row in ws.load_manifest():
        dur = truth[row["id"]]
        atomic_save_npy(ws.duration_path(row["id"]), dur)
        starts = np.concatenate([[0], np.cumsum(dur)[:-1]]) * 256 / 22050
        keep = [i for i, s in enumerate(row["symbols"]) if s not in (" ", "ˈ")]
        truth_json[row["id"]] = {"ipa": [row["symbols"][i] for i in keep] + [""],
                                 "starts_s": [float(starts[i]) for i in keep] + [9.9]}
    exact = evaluate(tmp_path, truth_json, frame_offset=0)
    assert exact.within == 1.0 and exact.median_ms == pytest.approx(0, abs=1e-6)
    # shift every truth time by 30 ms: nothing within 20 ms any more
    shifted = {k: dict(v, starts_s=[t + 0.03 for t in v["starts_s"]]) for k, v in truth_json.items()}
    assert evaluate(tmp_path, shifted, frame_offset=0).within == 0.0


def test_predicted_phones_merge_stress_into_the_vowel():
    phones = predicted_phones(["p", "ˈ", "e", " ", "l", "."], np.array([2, 1, 3, 1, 2, 1]))
    assert phones == [("p", 0), ("e", 2), ("l", 7)]


def test_mel_with_wrong_frame_count_is_skipped(tmp_path):
    make_workspace(tmp_path)
    ws = Workspace(tmp_path)
    atomic_save_npy(ws.mel_path("utt001"), np.zeros((80, 3), np.float32))
    s = align(tmp_path, steps=3, config=TINY)
    assert s["skipped"] == 1 and s["extracted"] == 2
    assert not ws.duration_path("utt001").exists()


def make_wav_workspace(root: Path, n_utts: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """A workspace with real audio: each sounding symbol is a tone of its own pitch, word spaces and
    stress marks get no samples; WORK/mels are the usual 1024-sample-window log-mels of the wavs."""
    from tts_cli.audio import mel_spectrogram, save_wav
    from tts_cli.config import AudioConfig

    rng = np.random.default_rng(seed)
    audio, hop, sr = AudioConfig(), 256, 22050
    rows, truth = [], {}
    for u in range(n_utts):
        seq = [int(rng.choice([s for s in range(3, len(SYMBOLS)) if s != prev])) for prev in [None] * 6]
        seq = seq[:3] + [1] + seq[3:]
        dur = np.array([0 if s == 1 else int(rng.integers(4, 9)) for s in seq], np.int32)
        n_samples = (int(dur.sum()) - 1) * hop + 1  # 1 + n_samples // hop == dur.sum() frames
        freqs = np.repeat([200.0 + 150.0 * s for s in seq], dur * hop)[:n_samples]
        wav = 0.3 * np.sin(2 * np.pi * np.cumsum(freqs) / sr) + 0.01 * rng.standard_normal(n_samples)
        uid = f"wav{u:03d}"
        save_wav(root / "wavs" / f"{uid}.wav", wav, sr)
        atomic_save_npy(root / "mels" / f"{uid}.npy", mel_spectrogram(wav.astype(np.float32), audio).numpy())
        rows.append({"id": uid, "speaker": "default", "text": "", "normalized": "", "phonemes": "",
                     "symbols": [SYMBOLS[i] for i in seq], "audio": f"wavs/{uid}.wav", "n_frames": int(dur.sum()),
                     "duration_s": n_samples / sr, "trim_start_s": 0.0, "split": "train"})
        truth[uid] = dur
    atomic_write_jsonl(root / "manifest.jsonl", rows)
    atomic_write_json(root / "symbols.json", {"symbols": SYMBOLS, "pad": "_", "language": "xx",
                                              "text_type": "phonemes"})
    atomic_write_text(root / "config.yaml", "audio:\n  n_mels: 80\n  hop_length: 256\n  sample_rate: 22050\n"
                                            "  win_length: 1024\n  n_fft: 1024\n")
    return truth


def test_query_features_use_a_shorter_window_on_the_same_frames(tmp_path):
    from tts_cli.config import AudioConfig
    from tts_cli.stages.align_data import QueryFeatures, load_items as _load_items

    make_wav_workspace(tmp_path, n_utts=1)
    ws = Workspace(tmp_path)
    items, _ = _load_items(ws, ws.load_manifest(), SYMBOLS, None)
    mel = np.load(ws.mel_path(items[0].id))
    query = QueryFeatures(AudioConfig(), 512).compute(ws, items[0])
    assert query.shape == mel.shape
    assert not np.allclose(query, mel, atol=0.1)  # a different window, not a copy of WORK/mels
    # the full window reproduces WORK/mels (up to the wav's 16-bit rounding): same frames, hop, filterbank
    np.testing.assert_allclose(QueryFeatures(AudioConfig(), 1024).compute(ws, items[0]), mel, atol=0.05)


def test_align_with_query_features_records_them_and_refuses_a_mismatched_resume(tmp_path):
    make_wav_workspace(tmp_path)
    s = align(tmp_path, steps=20, config=TINY)  # default query_win_length (512): reads WORK/wavs
    ws = Workspace(tmp_path)
    assert s["extracted"] == 4
    for row in ws.load_manifest():
        assert np.load(ws.duration_path(row["id"])).sum() == row["n_frames"]
    assert torch.load(ws.aligner_ckpt, weights_only=True)["config"]["query_win_length"] == 512
    with pytest.raises(AlignmentError, match="query features"):
        align(tmp_path, steps=30, config={"align": dict(TINY["align"], query_win_length=0)})


def test_missing_wavs_fall_back_to_the_workspace_mels(tmp_path):
    make_wav_workspace(tmp_path, n_utts=3)
    (tmp_path / "wavs" / "wav001.wav").unlink()
    s = align(tmp_path, steps=5, config=TINY)
    assert s["extracted"] == 3  # nobody skipped: the whole run reads WORK/mels
    assert torch.load(tmp_path / "aligner.pt", weights_only=True)["config"]["query_win_length"] == 0


def test_unreadable_wav_is_reported_and_skipped(tmp_path):
    make_wav_workspace(tmp_path, n_utts=3)
    (tmp_path / "wavs" / "wav002.wav").write_bytes(b"RIFF0000WAVEjunk")
    s = align(tmp_path, steps=5, config=TINY)
    assert s["skipped"] == 1 and s["extracted"] == 2
    report = {r["id"]: r for r in map(json.loads, (tmp_path / "align_report.jsonl").read_text().splitlines())}
    assert "wav002.wav" in report["wav002"]["reasons"][0]


def test_edge_silence_moves_lead_in_and_trail_out_frames_onto_edge_spaces():
    from tts_cli.stages.align_durations import edge_silence

    quiet, loud = np.full(80, np.log(1e-5), np.float32), np.zeros(80, np.float32)
    mel = np.stack([quiet] * 3 + [loud] * 3 + [quiet] * 2, axis=1)  # 3 silent, 3 loud, 2 silent frames
    out = edge_silence(np.array([0, 5, 3, 0], np.int32), [" ", "a", "b", " "], mel, 40.0)
    assert out.tolist() == [3, 2, 1, 2] and out.sum() == 8
    # the donor keeps at least one frame; no edge space, nothing moves
    assert edge_silence(np.array([0, 2, 6, 0], np.int32), [" ", "a", "b", " "], mel, 40.0).tolist() == [1, 1, 4, 2]
    assert edge_silence(np.array([5, 3], np.int32), ["a", "b"], mel, 40.0).tolist() == [5, 3]
    # a space that got sound frames gives them back to its neighbour
    assert edge_silence(np.array([5, 1, 2, 0], np.int32), [" ", "a", "b", " "], mel, 40.0).tolist() == [3, 3, 1, 1]


def test_align_gives_the_lead_in_silence_to_a_leading_space(tmp_path):
    make_workspace(tmp_path, n_utts=4)
    ws = Workspace(tmp_path)
    rows = ws.load_manifest()
    for row in rows:  # an edge space and 4 silent frames before the first sound
        mel = np.load(ws.mel_path(row["id"]))
        mel = np.concatenate([np.full((80, 4), np.log(1e-5), np.float32), mel], axis=1)
        atomic_save_npy(ws.mel_path(row["id"]), mel)
        row.update(symbols=[" "] + row["symbols"], n_frames=mel.shape[1])
    atomic_write_jsonl(tmp_path / "manifest.jsonl", rows)
    align(tmp_path, steps=30, config=TINY)
    for row in rows:
        dur = np.load(ws.duration_path(row["id"]))
        assert dur.sum() == row["n_frames"] and dur[0] == 4 and dur[1] >= 1


def test_stress_marks_are_left_out_of_the_aligner_input_and_get_no_frames(tmp_path):
    from rich.console import Console

    from tts_cli.stages.align_data import load_items as _load_items

    make_workspace(tmp_path, n_utts=1)
    ws = Workspace(tmp_path)
    row = ws.load_manifest()[0]
    (u,), _ = _load_items(ws, [row], SYMBOLS, Console(quiet=True))
    assert "ˈ" not in u.symbols and len(u.symbols) == len(row["symbols"]) - 1
    full = u.full_durations(np.arange(1, len(u.symbols) + 1, dtype=np.int32))
    assert len(full) == len(row["symbols"]) and full[row["symbols"].index("ˈ")] == 0
    assert list(full[full > 0]) == list(range(1, len(u.symbols) + 1))
    (kept,), _ = _load_items(ws, [row], SYMBOLS, Console(quiet=True), zero_width_stress=False)
    assert kept.symbols == row["symbols"] and kept.full_durations(np.ones(3)).tolist() == [1, 1, 1]


def test_a_finished_aligner_without_its_run_folder_is_used_not_retrained(tmp_path):
    """WORK/aligner.pt copied without WORK/align_run (or written by an older tts-cli) is not
    trained again when it already holds the asked steps."""
    import shutil

    make_workspace(tmp_path)
    align(tmp_path, steps=10, config=TINY)
    before = (tmp_path / "aligner.pt").read_bytes()
    shutil.rmtree(tmp_path / "align_run")
    s = align(tmp_path, steps=10, config=TINY)
    assert s["trained_steps"] == 0 and s["kept"] == s["aligned"]
    assert (tmp_path / "aligner.pt").read_bytes() == before
    assert align(tmp_path, steps=12, config=TINY)["trained_steps"] == 12  # more steps: a new run
    shutil.rmtree(tmp_path / "align_run")
    assert align(tmp_path, steps=12, config=TINY, force=True)["trained_steps"] == 12  # --force: anew all the same


def test_an_interrupted_aligner_run_stops_align_and_writes_no_aligner(tmp_path, monkeypatch):
    """Ctrl-C / SIGTERM during aligner training: the run is saved in WORK/align_run (resumable), but no
    half-trained aligner.pt or durations are written."""
    import tts_cli.training.skeleton as skeleton

    monkeypatch.setattr(skeleton, "fit", lambda plan, ctx, hooks, kind: {"stopped": "interrupted", "step": 3,
                                                                          "losses": {}, "skipped_steps": 0})
    make_workspace(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        align(tmp_path, steps=10, config=TINY)
    assert not (tmp_path / "aligner.pt").exists() and not list((tmp_path / "durations").glob("*.npy"))
