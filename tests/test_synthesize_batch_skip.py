"""`tts synthesize -i FILE`: a line that cannot be spoken is skipped (named by line, id and reason),
the other lines of its batch and of the file are still written, and only an all-failed file fails."""
from __future__ import annotations

import math

import pytest
import torch

SYMBOLS = ["_", " ", ".", "a", "p", "t", "k"]  # no "x", "o": "xoxo" has nothing to say
FRAMES = 3  # frames per symbol of a line the fake duration predictor speaks


@pytest.fixture()
def voice(tmp_path, monkeypatch):
    """An untrained phoneme voice whose durations are FRAMES per symbol, except 0 for every symbol
    of a line containing 'k' (the model 'predicts no frames' for it, like an undertrained one)."""
    from tts_cli.checkpoints.format import save_checkpoint
    from tts_cli.models.fastpitch import FastPitch, FastPitchConfig

    cfg = FastPitchConfig.from_dict({"preset": "tiny", "n_symbols": len(SYMBOLS), "aligner": False, "d_model": 32,
                                     "encoder_layers": 1, "decoder_layers": 1, "encoder_ff": 32, "decoder_ff": 32})
    torch.manual_seed(0)
    model = FastPitch(cfg)
    with torch.no_grad():
        model.duration_predictor.fc.weight.zero_()
        model.duration_predictor.fc.bias.fill_(math.log(1 + FRAMES))
    original = FastPitch.infer
    k = SYMBOLS.index("k")

    def infer(self, symbols, symbol_lens=None, **kw):
        if kw.get("durations") is None:
            dur = (symbols != 0).float() * FRAMES
            dur[(symbols == k).any(1)] = 0.0
            kw["durations"] = dur
        return original(self, symbols, symbol_lens, **kw)

    monkeypatch.setattr(FastPitch, "infer", infer)
    text = {"language": "es", "text_type": "phonemes", "normalize": False, "keep_stress": True}
    return save_checkpoint(tmp_path / "voice.pt", model.state_dict(), cfg.to_dict(), SYMBOLS, 0, text=text,
                           audio={}, pitch_stats={"corpus": {"mean": 150.0, "std": 30.0}}, speakers={"default": 0})


def _cli(*args):
    from typer.testing import CliRunner

    from tts_cli.cli import app

    return CliRunner().invoke(app, ["synthesize", *map(str, args)], terminal_width=250)


def test_bad_lines_are_skipped_and_the_rest_of_their_batches_written(voice, tmp_path):
    lines = tmp_path / "lines.txt"
    # line 2: no symbol the voice knows; line 4: the model predicts no frames; batches of 2 put
    # each bad line next to a good one, and the last batch holds one good line alone
    lines.write_text("pata\nxxx|xoxo\n\nkaka\npapa\napa\n", encoding="utf-8")
    out = tmp_path / "out"
    res = _cli("-i", lines, "-m", voice, "--vocoder", "griffin-lim", "--batch-size", 2, "--output-dir", out)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.wav")) == ["utt_0001.wav", "utt_0005.wav", "utt_0006.wav"]
    err = " ".join(res.stderr.split())  # undo rich's line wrapping
    assert f"skipped {lines}:2 (xxx): nothing to say" in err
    assert f"skipped {lines}:4 (utt_0004): the model predicted no speech frames" in err and "undertrained" in err
    assert "3 of 5 lines written" in err and "2 skipped: xxx (line 2), utt_0004 (line 4)" in err
    # the failed batch attempt's warning is not repeated: only the retry of line 2 warns
    warned = [ln for ln in res.stderr.splitlines() if "warning:" in ln and "does not know" in ln]
    assert len(warned) == 1 and "'x'" in warned[0]


def test_one_big_batch_with_a_bad_line_keeps_the_good_ones(voice, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("pata\nkaka\napa\n", encoding="utf-8")
    res = _cli("-i", lines, "-m", voice, "--vocoder", "griffin-lim", "--output-dir", tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.wav")) == ["utt_0001.wav", "utt_0003.wav"]
    assert "1 skipped" in " ".join(res.stderr.split())


def test_only_a_file_where_every_line_fails_is_an_error(voice, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("kaka\nxoxo\n", encoding="utf-8")
    res = _cli("-i", lines, "-m", voice, "--vocoder", "griffin-lim", "--output-dir", tmp_path / "out")
    assert res.exit_code != 0
    err = " ".join(res.stderr.split())
    assert "all 2 lines" in err and "utt_0001 (line 1), utt_0002 (line 2)" in err
    assert not list((tmp_path / "out").glob("*.wav"))


def test_bad_controls_fail_once_before_any_line(voice, tmp_path):
    lines = tmp_path / "lines.txt"
    lines.write_text("pata\napa\n", encoding="utf-8")
    res = _cli("-i", lines, "-m", voice, "--vocoder", "griffin-lim", "--output-dir", tmp_path / "out",
               "--speaker", "nobody")
    assert res.exit_code != 0
    assert "unknown speaker 'nobody'" in res.stderr and "skipped" not in res.stderr
