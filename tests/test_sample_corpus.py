"""The built-in sample corpus: espeak-ng audio plus its phoneme start times as ground truth."""
from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
import soundfile as sf

from tts_cli.errors import ConfigError, EspeakError
from tts_cli.sample_corpus import (
    DEFAULT_SENTENCES,
    build_sample_corpus,
    main,
    speak,
)

SENTENCES = [
    "El perro de Ramón corre por la orilla del río.",
    "¿Dónde has dejado las llaves del coche, Carmen?",
    "¡Qué alegría verte de nuevo!",
    "Compré tres kilos de naranjas por 4,50 €.",
]


def dbfs(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12))


@pytest.fixture()
def sentence_file(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("# a comment line\n" + "\n".join(SENTENCES) + "\n\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    src = out.parent / "corpus_sentences.txt"
    src.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    build_sample_corpus(out, sentences=src, progress=False)
    return out, json.loads((out / "truth.json").read_text(encoding="utf-8"))


def test_sentence_file_is_large_varied_and_clean():
    lines = DEFAULT_SENTENCES.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 200 and len(set(lines)) == len(lines)
    assert all(line.strip() == line and line and "|" not in line for line in lines)
    text = unicodedata.normalize("NFC", "\n".join(lines)).lower()
    assert sum(line.startswith("¿") for line in lines) >= 20
    assert sum(line.startswith("¡") for line in lines) >= 20
    assert sum(any(c.isdigit() for c in line) for line in lines) >= 30
    for needle in ["ñ", "rr", "ll", "ch", "j", "z", "x", "gü", "%", "€", "$", "sr.", "dra.", "ud.", "nº", ":"]:
        assert needle in text, needle
    words = [len(line.split()) for line in lines]
    assert min(words) >= 4 and max(words) <= 20


def test_speak_gives_audio_and_phoneme_events_in_both_notations():
    audio, sr, events = speak("El niño come chocolate en la plaza.")
    assert sr == 22050 and audio.dtype == np.float32 and audio.ndim == 1
    assert 0.5 < len(audio) / sr < 5 and 0.1 < np.abs(audio).max() <= 1
    phones = [e for e in events if e.kind == "phoneme"]
    samples = [e.sample for e in phones]
    assert samples == sorted(samples) and 0 <= samples[0] and samples[-1] <= len(audio)
    ipa = [e.ipa for e in phones]
    assert {"ɲ", "tʃ", "θ"} <= set(ipa)  # ñ, ch, z in European Spanish
    assert "n^" in [e.phoneme for e in phones]  # the mnemonic of ɲ
    # audio_position (ms, truncated) and sample (exact) describe the same instant
    assert all(abs(e.audio_position_ms / 1000 - e.sample / sr) < 0.0011 for e in phones)
    words = [e for e in events if e.kind == "word"]
    assert len(words) == 7
    # deterministic: each call uses a fresh espeak-ng instance
    again, _, _ = speak("El niño come chocolate en la plaza.")
    assert np.array_equal(audio, again)
    other, _, _ = speak("El niño come chocolate en la plaza.", voice="es+f3")
    assert not np.array_equal(audio[: len(other)], other[: len(audio)])
    slow, _, _ = speak("El niño come chocolate en la plaza.", rate=100)
    assert len(slow) > 1.3 * len(audio)


def test_speak_rejects_unknown_voice_and_bad_rate():
    with pytest.raises(EspeakError, match="no voice"):
        speak("hola", voice="xx-nonexistent")
    with pytest.raises(ConfigError, match="rate"):
        speak("hola", rate=5)


def test_layout_wavs_and_metadata(corpus):
    out, truth = corpus
    rows = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert [r.split("|") for r in rows] == [[f"es_{i:04d}", s, s] for i, s in enumerate(SENTENCES, 1)]
    assert set(truth) == {r.split("|")[0] for r in rows}
    for utt_id, entry in truth.items():
        info = sf.info(out / "wavs" / f"{utt_id}.wav")
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert info.frames / 22050 == pytest.approx(entry["duration_s"], abs=1e-5)
        assert entry["speaker"] == "es"


def test_truth_times_are_ordered_and_inside_the_audio(corpus):
    _, truth = corpus
    for entry in truth.values():
        starts, ends = np.array(entry["starts_s"]), np.array(entry["ends_s"])
        n = len(entry["phonemes"])
        assert n > 10 and len(entry["ipa"]) == len(starts) == len(ends) == n
        assert np.all(np.diff(starts) >= 0) and np.mean(np.diff(starts) > 0) > 0.95
        assert np.array_equal(ends[:-1], starts[1:]) and ends[-1] == entry["duration_s"]
        assert 0.2 <= entry["lead_s"] <= 0.3 and starts[0] >= entry["lead_s"]
        assert ends[-1] - starts[-1] >= 0.2  # trailing silence belongs to the last (pause) phoneme
        assert len(entry["words"]) == len(entry["word_starts_s"]) >= 4


def test_truth_times_match_the_audio_energy(corpus):
    out, truth = corpus
    for utt_id, entry in truth.items():
        audio, sr = sf.read(out / "wavs" / f"{utt_id}.wav", dtype="float32")
        starts, ends = entry["starts_s"], entry["ends_s"]
        # before the first phoneme: only the -70 dBFS noise floor
        assert dbfs(audio[: int(starts[0] * sr)]) < -65
        # speech begins where the truth says (first 2.5 ms frame above -50 dBFS)
        frames = audio[: len(audio) // 55 * 55].reshape(-1, 55)
        onset = np.argmax([dbfs(f) > -50 for f in frames]) * 55 / sr
        assert abs(onset - starts[0]) < 0.01
        spans = list(zip(entry["phonemes"], starts, ends))
        vowels = [audio[int(s * sr): int(e * sr)] for p, s, e in spans if p[-1] in "aeiou" and e - s > 0.02]
        assert vowels and all(dbfs(v) > -40 for v in vowels)
        # long pauses inside the sentence (the comma) are silent after espeak's short decay
        for p, s, e in spans[:-2]:
            if p.startswith("_") and e - s > 0.08:
                assert dbfs(audio[int((s + 0.03) * sr): int(e * sr)]) < -60
    comma = truth["es_0002"]
    assert any(p.startswith("_") and e - s > 0.08
               for p, s, e in zip(comma["phonemes"][:-2], comma["starts_s"], comma["ends_s"]))


def test_two_speakers_get_a_folder_each_and_one_truth(tmp_path, sentence_file):
    out = tmp_path / "multi"
    summary = build_sample_corpus(out, speakers=2, sentences=sentence_file, progress=False)
    assert summary.speakers == ["es", "es_f3"] and summary.n_utterances == 4
    assert not (out / "metadata.csv").exists()
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    for speaker, ids in {"es": ["es_0001", "es_0003"], "es_f3": ["es_f3_0002", "es_f3_0004"]}.items():
        rows = (out / speaker / "metadata.csv").read_text(encoding="utf-8").splitlines()
        assert [r.split("|")[0] for r in rows] == ids
        for utt_id in ids:
            assert sf.info(out / speaker / "wavs" / f"{utt_id}.wav").samplerate == 22050
            assert truth[utt_id]["speaker"] == speaker
    assert truth["es_f3_0002"]["voice"] == "es+f3" and len(truth) == 4

    both = build_sample_corpus(tmp_path / "repeat", speakers=2, limit=2, repeat=True,
                               sentences=sentence_file, progress=False)
    assert both.n_utterances == 4


def test_second_run_is_cached_and_new_settings_rebuild(tmp_path, sentence_file, capsys):
    out = tmp_path / "c"
    args = ["--out", str(out), "--limit", "3", "--sentences", str(sentence_file)]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "3 utterances" in first and "built in" in first
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps

    # other settings: rebuilt, and the wav the new corpus no longer lists is gone
    assert main(["--out", str(out), "--limit", "2", "--sentences", str(sentence_file)]) == 0
    assert "built in" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "wavs").iterdir()) == ["es_0001.wav", "es_0002.wav"]
    assert len(json.loads((out / "truth.json").read_text(encoding="utf-8"))) == 2

    # a deleted wav makes the corpus incomplete: rebuilt, not skipped
    (out / "wavs" / "es_0001.wav").unlink()
    assert main(["--out", str(out), "--limit", "2", "--sentences", str(sentence_file)]) == 0
    assert "built in" in capsys.readouterr().out and (out / "wavs" / "es_0001.wav").exists()


def test_bad_arguments_and_lines_are_reported(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--sentences", str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x"), "--speakers", "0"]) == 2
    assert "--speakers" in capsys.readouterr().err

    mixed = tmp_path / "mixed.txt"
    mixed.write_text("Una línea buena.\nUna|línea mala.\n", encoding="utf-8")
    summary = build_sample_corpus(tmp_path / "y", sentences=mixed, progress=False)
    assert summary.n_utterances == 1
    assert "mixed.txt:2" in capsys.readouterr().out
