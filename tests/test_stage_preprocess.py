import hashlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import tone, write_ljspeech
from tts_cli.cli import app
from tts_cli.errors import PreprocessError, WorkspaceError
from tts_cli.stages.preprocess import preprocess
from tts_cli.workspace import Workspace, read_jsonl

GOOD = [
    ("a1", "Hola, ¿qué tal estás?", None),
    ("a2", "El perro corre por el parque.", None),
    ("a3", "¡Qué día tan bonito!", None),
    ("a4", "Tengo 3 gatos y 2 perros.", None),
]


def _corpus(root: Path, extra=()):
    rows = [(uid, text, tone(f0=150 + 20 * i)) for i, (uid, text, _) in enumerate(GOOD)]
    return write_ljspeech(root, rows + list(extra))


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_workspace_layout_and_manifest(tmp_path):
    data = _corpus(tmp_path / "data")
    before = _tree_digest(data)
    summary = preprocess(data, tmp_path / "work", workers=1, progress=False)
    ws = Workspace(tmp_path / "work")
    rows = ws.load_manifest()
    assert summary["kept"] == 4 and [r["id"] for r in rows] == ["a1", "a2", "a3", "a4"]
    symbols = ws.load_symbols()
    assert symbols[0] == "_"
    for r in rows:
        for key in ("id", "speaker", "text", "normalized", "phonemes", "symbols", "audio", "n_frames",
                    "duration_s", "trim_start_s", "split"):
            assert key in r, key
        mel = np.load(ws.mel_path(r["id"]))
        assert mel.dtype == np.float32 and mel.shape == (80, r["n_frames"])
        assert (tmp_path / "work" / r["audio"]).exists()
        assert all(s in symbols for s in r["symbols"])
        # silence trimming: 0.2 s of leading silence is cut (minus the kept margin)
        assert 0.1 < r["trim_start_s"] < 0.2
        assert 1.0 < r["duration_s"] < 1.3
    assert "tres" in rows[3]["normalized"]  # numbers are spelled out before phonemisation
    assert sum(r["split"] == "val" for r in rows) >= 1
    assert ws.load_config()["audio"]["sample_rate"] == 22050
    assert _tree_digest(data) == before  # the user's data folder is never modified


def test_bad_entries_are_rejected_with_reasons_and_the_rest_kept(tmp_path):
    sr = 22050
    bad = [
        ("missing", "Falta el fichero.", None),
        ("corrupt", "Fichero roto.", b"RIFF\x00\x00\x00\x00WAVEgarbage-garbage"),
        ("empty_audio", "Sin audio.", np.zeros(0, np.float32)),
        ("silent", "Todo silencio.", np.zeros(sr, np.float32)),
        ("notext", "", tone()),
        ("short", "Corto.", tone(seconds=0.05, lead_s=0.0)),
    ]
    data = _corpus(tmp_path / "data", bad)
    # a malformed metadata line
    with (data / "metadata.csv").open("a", encoding="utf-8") as f:
        f.write("no_separator_here\n")
    summary = preprocess(data, tmp_path / "work", workers=2, progress=False)
    assert summary["kept"] == 4
    rejected = {r["id"]: r for r in read_jsonl(Path(tmp_path / "work" / "rejected.jsonl"))}
    for uid in ("missing", "corrupt", "empty_audio", "silent", "notext", "short"):
        assert uid in rejected, uid
        assert rejected[uid]["reason"] and rejected[uid]["source"]
    assert "missing" in rejected["missing"]["reason"]
    assert "empty text" in rejected["notext"]["reason"]
    assert "silent" in rejected["silent"]["reason"]
    assert "short" in rejected["short"]["reason"]
    assert len(rejected) >= 7  # + the malformed line


def test_rerun_is_incremental_and_identical(tmp_path):
    data = _corpus(tmp_path / "data")
    work = tmp_path / "work"
    preprocess(data, work, workers=1, progress=False)
    first = _tree_digest(work)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (work / "mels").iterdir()}
    preprocess(data, work, workers=2, progress=False)
    assert _tree_digest(work) == first
    assert {p.name: p.stat().st_mtime_ns for p in (work / "mels").iterdir()} == mtimes  # nothing redone

    import soundfile as sf

    sf.write(data / "wavs" / "a2.wav", tone(f0=300, seconds=1.5), 22050)  # one input changes
    (work / "mels" / "a3.npy").unlink()  # one artifact lost (e.g. a killed run)
    preprocess(data, work, workers=1, progress=False)
    after = {p.name: p.stat().st_mtime_ns for p in (work / "mels").iterdir()}
    assert after["a1.npy"] == mtimes["a1.npy"] and after["a4.npy"] == mtimes["a4.npy"]
    assert after["a2.npy"] != mtimes["a2.npy"]
    assert (work / "mels" / "a3.npy").exists()
    rows = {r["id"]: r for r in Workspace(work).load_manifest()}
    assert rows["a2"]["duration_s"] > 1.4
    assert not list(work.rglob("*.tmp"))


def test_multi_speaker_subfolders(tmp_path):
    data = tmp_path / "data"
    write_ljspeech(data / "ana", [("x1", "Hola.", tone()), ("x2", "Adiós.", tone())])
    write_ljspeech(data / "luis", [("y1", "Buenos días.", tone(f0=110))])
    preprocess(data, tmp_path / "work", workers=1, progress=False)
    rows = Workspace(tmp_path / "work").load_manifest()
    assert sorted({r["speaker"] for r in rows}) == ["ana", "luis"]


def test_not_a_dataset_and_nothing_survived(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PreprocessError):
        preprocess(tmp_path / "empty", tmp_path / "w1", progress=False)
    data = write_ljspeech(tmp_path / "bad", [("m1", "Hola.", None)])
    with pytest.raises(PreprocessError, match="nothing survived"):
        preprocess(data, tmp_path / "w2", progress=False)
    result = CliRunner().invoke(app, ["preprocess", str(tmp_path / "empty"), "--out", str(tmp_path / "w3")])
    assert result.exit_code != 0
    assert "error:" in result.output


def test_workspace_inside_data_is_refused(tmp_path):
    data = _corpus(tmp_path / "data")
    with pytest.raises(PreprocessError, match="outside"):
        preprocess(data, data / "work", progress=False)


def test_characters_mode_and_cli(tmp_path):
    data = _corpus(tmp_path / "data")
    result = CliRunner().invoke(app, ["preprocess", str(data), "--out", str(tmp_path / "w"), "--text-type", "characters", "-j", "1"])
    assert result.exit_code == 0, result.output
    rows = Workspace(tmp_path / "w").load_manifest()
    assert rows[0]["symbols"][:4] == list("hola")


def test_sample_corpus_workspace(sample_workspace):
    ws = Workspace(sample_workspace)
    rows = ws.load_manifest()
    assert len(rows) == 6
    cfg = ws.load_config()
    assert cfg["workspace"]["espeak"]["version"]
    assert all(r["n_frames"] == np.load(ws.mel_path(r["id"])).shape[1] for r in rows)


def test_atomic_writes_have_ordinary_permissions(tmp_path):
    import os
    import stat

    from tts_cli.workspace import atomic_write_text

    p = atomic_write_text(tmp_path / "x.txt", "hola")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask


def test_load_config_of_a_workspace_without_one(tmp_path):
    ws = Workspace(tmp_path / "empty")
    assert ws.load_config(missing_ok=True) == {}
    with pytest.raises(WorkspaceError, match="run `tts preprocess` first"):
        ws.load_config()


def test_narrowband_sources_are_counted_and_warned_about(tmp_path, capsys):
    # telephone audio (8 kHz) holds nothing above 4 kHz; resampling to 22.05 kHz cannot add it
    data = write_ljspeech(tmp_path / "narrow", [(uid, text, tone(sr=8000, f0=150)) for uid, text, _ in GOOD], sr=8000)
    summary = preprocess(data, tmp_path / "work", workers=1, progress=True)
    assert summary["narrowband"] == {"clips": 4, "rates": [8000], "band_hz": 8000.0}
    assert {r["source_sr"] for r in Workspace(tmp_path / "work").load_manifest()} == {8000}
    err = " ".join(capsys.readouterr().err.split())
    assert "4 of 4 clips are sampled at 8000 Hz" in err and "nothing above 4000 Hz" in err
    # a workspace cached by a version that did not record source_sr gets it without redoing the audio
    import json

    from tts_cli.stages.preprocess import CACHE_NAME

    cache_path = tmp_path / "work" / CACHE_NAME
    cache = json.loads(cache_path.read_text())
    for c in cache.values():
        c["audio_row"].pop("source_sr")
    cache_path.write_text(json.dumps(cache))
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "work" / "mels").iterdir()}
    assert preprocess(data, tmp_path / "work", workers=1, progress=False)["narrowband"]["clips"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "work" / "mels").iterdir()} == mtimes
    # 16 kHz fills the default mels (fmax 8 kHz): no warning
    wide = write_ljspeech(tmp_path / "wide", [(uid, text, tone(sr=16000)) for uid, text, _ in GOOD], sr=16000)
    assert preprocess(wide, tmp_path / "work16", workers=1, progress=False)["narrowband"]["clips"] == 0
