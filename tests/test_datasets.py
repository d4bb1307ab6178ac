"""Dataset readers: every layout, auto-detection, multi-speaker, and problem reporting."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tts_cli.datasets import DatasetError, Entry, read_dataset


def touch_wav(path: Path) -> Path:
    """Readers never open audio, so any bytes do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    return path


def make_ljspeech(root: Path, lines: list[str], bom: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    (root / "metadata.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return root


def by_id(entries) -> dict[str, Entry]:
    return {e.id: e for e in entries}


# ----------------------------------------------------------------------------- LJSpeech

def test_ljspeech_with_bom_and_wav_suffix(tmp_path):
    root = make_ljspeech(tmp_path / "lj", [
        "LJ001-0001|Hola, señor 1.|Hola, señor uno.",
        "LJ001-0002.wav|¿Qué tal?",
        "LJ001-0003|Texto|",
    ], bom=True)
    entries = read_dataset(root)
    assert entries.format == "ljspeech" and entries.problems == []
    got = by_id(entries)
    assert list(got) == ["LJ001-0001", "LJ001-0002", "LJ001-0003"]  # BOM not glued to the first id
    first = got["LJ001-0001"]
    assert first.text == "Hola, señor 1." and first.normalized_hint == "Hola, señor uno."
    assert first.audio == root.absolute() / "wavs" / "LJ001-0001.wav"
    assert first.speaker == "default" and first.source == "metadata.csv:1"
    assert got["LJ001-0002"].audio.name == "LJ001-0002.wav"
    assert got["LJ001-0002"].text == "¿Qué tal?" and got["LJ001-0002"].normalized_hint is None
    assert got["LJ001-0003"].normalized_hint is None


def test_ljspeech_speaker_column(tmp_path):
    root = make_ljspeech(tmp_path / "lj", ["a|uno||ana", "b|dos|dos|luis", "c|tres"])
    got = by_id(read_dataset(root))
    assert [got[k].speaker for k in "abc"] == ["ana", "luis", "default"]
    assert read_dataset(root).speakers == ["ana", "default", "luis"]


def test_ljspeech_malformed_lines_are_reported_not_fatal(tmp_path):
    root = make_ljspeech(tmp_path / "lj", [
        "good1|Buenos días",
        "this line has no separator",
        "",
        "|texto sin id",
        "a|b|c|d|e",
        "good2|Adiós",
        "good1|otra vez",
    ])
    entries = read_dataset(root)
    assert [e.id for e in entries] == ["good1", "good2"]
    problems = {p.source: p for p in entries.problems}
    assert set(problems) == {"metadata.csv:2", "metadata.csv:4", "metadata.csv:5", "metadata.csv:7"}
    assert "malformed" in problems["metadata.csv:2"].reason
    assert problems["metadata.csv:2"].id == "this line has no separator"
    assert "empty id" in problems["metadata.csv:4"].reason
    assert "duplicate id" in problems["metadata.csv:7"].reason and "metadata.csv:1" in problems["metadata.csv:7"].reason
    assert problems["metadata.csv:5"].as_dict() == {"id": "a", "source": "metadata.csv:5", "reason": problems["metadata.csv:5"].reason}
    assert dict(problems["metadata.csv:5"]) == problems["metadata.csv:5"].as_dict()
    assert entries.entries == list(entries)


def test_missing_audio_and_empty_text_are_returned(tmp_path):
    """Rejecting those (with a reason) is preprocess's job, not the reader's."""
    root = make_ljspeech(tmp_path / "lj", ["x|", "y|hola"])
    entries = read_dataset(root)
    assert [(e.id, e.text) for e in entries] == [("x", ""), ("y", "hola")]
    assert not entries[1].audio.exists() and entries.problems == []


def test_metadata_file_given_directly(tmp_path):
    root = make_ljspeech(tmp_path / "lj", ["a|uno"])
    entries = read_dataset(root / "metadata.csv")
    assert entries.format == "ljspeech" and entries[0].audio == root.absolute() / "wavs" / "a.wav"


def test_non_utf8_metadata_is_a_dataset_error(tmp_path):
    root = tmp_path / "lj"
    root.mkdir()
    (root / "metadata.csv").write_bytes("a|año\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="UTF-8"):
        read_dataset(root)


# ----------------------------------------------------------------------------- CSS10

def test_css10(tmp_path):
    root = tmp_path / "css"
    root.mkdir()
    (root / "transcript.txt").write_text(
        "libro/libro_0001.wav|Capítulo 1.|Capítulo uno.|2.5\n"
        "libro/libro_0002.wav|Era de noche.|Era de noche.|1.9\n"
        "broken line\n",
        encoding="utf-8",
    )
    entries = read_dataset(root)
    assert entries.format == "css10"
    got = by_id(entries)
    assert list(got) == ["libro_0001", "libro_0002"]
    assert got["libro_0001"].audio == root.absolute() / "libro" / "libro_0001.wav"
    assert got["libro_0001"].text == "Capítulo 1." and got["libro_0001"].normalized_hint == "Capítulo uno."
    assert got["libro_0002"].source == "transcript.txt:2"
    assert [(p.source, "malformed" in p.reason) for p in entries.problems] == [("transcript.txt:3", True)]


# ----------------------------------------------------------------------------- folder

def test_folder_with_txt_and_lab_recursive(tmp_path):
    root = tmp_path / "f"
    touch_wav(root / "a.wav")
    (root / "a.txt").write_text("Primera frase.\n", encoding="utf-8")
    touch_wav(root / "cap2" / "b.flac")
    (root / "cap2" / "b.lab").write_text("segunda\nlínea", encoding="utf-8")
    touch_wav(root / "cap3" / "a.wav")  # same stem as ./a.wav: ids must not collide
    (root / "cap3" / "a.txt").write_text("otra", encoding="utf-8")
    touch_wav(root / "lonely.wav")  # no transcript
    (root / "README.txt").write_text("not a transcript", encoding="utf-8")
    touch_wav(root / ".hidden" / "z.wav")
    (root / ".hidden" / "z.txt").write_text("ignored", encoding="utf-8")

    entries = read_dataset(root, format="folder")
    got = by_id(entries)
    assert set(got) == {"a", "cap2_b", "cap3_a"}
    assert got["a"].text == "Primera frase." and got["a"].source == "a.txt"
    assert got["cap2_b"].text == "segunda línea" and got["cap2_b"].audio.suffix == ".flac"
    assert got["cap2_b"].source == "cap2/b.lab"
    assert [(p.id, "no transcript" in p.reason) for p in entries.problems] == [("lonely", True)]
    # two sub-folders with audio but also audio at the top: auto reads one single-speaker folder
    auto = read_dataset(root)
    assert auto.format == "folder" and {e.speaker for e in auto} == {"default"}


# ----------------------------------------------------------------------------- manifest

def test_jsonl_manifest_relative_paths_and_speaker(tmp_path):
    root = tmp_path / "m"
    root.mkdir()
    rows = [
        {"audio_filepath": "audio/u1.wav", "text": "uno", "speaker": 3, "duration": 1.0},
        {"audio_filepath": str(tmp_path / "abs" / "u2.flac"), "text": "dos"},
        {"text": "no audio"},
        {"audio_filepath": "audio/u3.wav"},
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + ["{not json"]
    (root / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    entries = read_dataset(root)
    assert entries.format == "manifest"
    got = by_id(entries)
    assert list(got) == ["u1", "u2", "u3"]
    assert got["u1"].audio == root.absolute() / "audio" / "u1.wav" and got["u1"].speaker == "3"
    assert got["u2"].audio == tmp_path / "abs" / "u2.flac" and got["u2"].speaker == "default"
    assert got["u3"].text == ""  # empty text: returned, preprocess rejects it
    assert got["u1"].source == "train.jsonl:1"
    assert sorted(p.source for p in entries.problems) == ["train.jsonl:3", "train.jsonl:5"]
    # the manifest file given directly, NeMo's .json naming
    (root / "train.jsonl").rename(root / "val_manifest.json")
    direct = read_dataset(root / "val_manifest.json")
    assert direct.format == "manifest" and [e.id for e in direct] == ["u1", "u2", "u3"]


# ----------------------------------------------------------------------------- detection / multi-speaker

def test_auto_detection(tmp_path):
    make_ljspeech(tmp_path / "lj", ["a|uno"])
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "transcript.txt").write_text("x/a.wav|uno|uno|1\n", encoding="utf-8")
    (tmp_path / "man").mkdir()
    (tmp_path / "man" / "data.jsonl").write_text('{"audio_filepath": "a.wav", "text": "uno"}\n', encoding="utf-8")
    touch_wav(tmp_path / "fold" / "a.wav")
    (tmp_path / "fold" / "a.txt").write_text("uno", encoding="utf-8")
    formats = {name: read_dataset(tmp_path / name).format for name in ("lj", "css", "man", "fold")}
    assert formats == {"lj": "ljspeech", "css": "css10", "man": "manifest", "fold": "folder"}


def test_one_speaker_per_subfolder(tmp_path):
    make_ljspeech(tmp_path / "DATA" / "anna", ["001|hola", "002|adiós"])
    make_ljspeech(tmp_path / "DATA" / "luis", ["001|buenas"])
    touch_wav(tmp_path / "DATA" / "marta" / "001.wav")
    (tmp_path / "DATA" / "marta" / "001.txt").write_text("qué tal", encoding="utf-8")
    (tmp_path / "DATA" / "notes").mkdir()  # not a dataset: ignored

    entries = read_dataset(tmp_path / "DATA")
    got = by_id(entries)
    assert set(got) == {"anna_001", "anna_002", "luis_001", "marta_001"}
    assert {k: e.speaker for k, e in got.items()} == {
        "anna_001": "anna", "anna_002": "anna", "luis_001": "luis", "marta_001": "marta"}
    assert got["luis_001"].audio == (tmp_path / "DATA" / "luis" / "wavs" / "001.wav").absolute()
    assert got["anna_002"].source == "anna/metadata.csv:2"
    assert entries.speakers == ["anna", "luis", "marta"]
    # explicit format also finds the per-speaker metadata files
    assert {e.id for e in read_dataset(tmp_path / "DATA", format="ljspeech")} == {"anna_001", "anna_002", "luis_001"}


def test_ids_already_naming_their_speaker_are_not_prefixed_twice(tmp_path):
    """The sample corpus writes DATA/<speaker>/metadata.csv with ids like <speaker>_0001."""
    make_ljspeech(tmp_path / "DATA" / "f3", ["f3_0001|hola", "0002|uno"])
    make_ljspeech(tmp_path / "DATA" / "m1", ["m1_0001|adiós"])
    (tmp_path / "DATA" / "truth.json").write_text('{\n  "f3_0001": {}\n}\n', encoding="utf-8")
    entries = read_dataset(tmp_path / "DATA")
    assert sorted(e.id for e in entries) == ["f3_0001", "f3_0002", "m1_0001"]


def test_single_subfolder_is_not_multi_speaker(tmp_path):
    touch_wav(tmp_path / "D" / "wavs" / "a.wav")
    (tmp_path / "D" / "wavs" / "a.txt").write_text("uno", encoding="utf-8")
    entries = read_dataset(tmp_path / "D")
    assert entries.format == "folder" and [(e.id, e.speaker) for e in entries] == [("wavs_a", "default")]


@pytest.mark.parametrize("kind", ["missing", "empty_dir", "text_only", "bad_format", "wrong_explicit"])
def test_not_a_dataset(tmp_path, kind):
    path, fmt = tmp_path / "x", "auto"
    if kind != "missing":
        path.mkdir()
    if kind == "text_only":
        (path / "notes.txt").write_text("hola", encoding="utf-8")
    if kind == "bad_format":
        make_ljspeech(path, ["a|b"])
        fmt = "kaldi"
    if kind == "wrong_explicit":
        make_ljspeech(path, ["a|b"])
        fmt = "css10"
    with pytest.raises(DatasetError) as err:
        read_dataset(path, format=fmt)
    assert str(err.value) and "\n" not in str(err.value)


def test_empty_metadata_is_a_dataset_error(tmp_path):
    root = make_ljspeech(tmp_path / "lj", [""])
    with pytest.raises(DatasetError, match="no utterances"):
        read_dataset(root)
