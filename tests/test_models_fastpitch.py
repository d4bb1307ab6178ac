"""FastPitch core: reference layout and size, training forward (external + learned alignment),
length regulator, loss masking, inference controls, and that one batch can be overfitted."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tts_cli.errors import ConfigError
from tts_cli.models.fastpitch import (
    PRESETS,
    FastPitch,
    FastPitchConfig,
    FastPitchLoss,
    count_parameters,
    regulate_length,
)

REFERENCE = Path("/work/shared/reference/nvidia_fastpitch_state_dict.json")


def tiny(**kw) -> FastPitch:
    torch.manual_seed(0)
    return FastPitch(FastPitchConfig.from_dict({"preset": "tiny", "n_symbols": 20, **kw}))


def make_batch(B=2, N=(7, 5), T=(40, 28), n_speakers=1, seed=0) -> dict:
    """A padded batch whose durations sum to the mel lengths; smooth mels that depend on the symbols."""
    g = torch.Generator().manual_seed(seed)
    Nmax, Tmax = max(N), max(T)
    batch = {
        "symbols": torch.zeros(B, Nmax, dtype=torch.long),
        "symbol_lens": torch.tensor(N),
        "mels": torch.zeros(B, 80, Tmax),
        "mel_lens": torch.tensor(T),
        "pitch": torch.zeros(B, Tmax),
        "energy": torch.zeros(B, Tmax),
        "speakers": torch.arange(B) % n_speakers,
        "durations": torch.zeros(B, Nmax, dtype=torch.long),
    }
    for b in range(B):
        n, t = N[b], T[b]
        sym = torch.randint(1, 20, (n,), generator=g)
        cuts = torch.sort(torch.randperm(t - 1, generator=g)[: n - 1] + 1).values
        dur = torch.diff(torch.cat([torch.tensor([0]), cuts, torch.tensor([t])]))
        batch["symbols"][b, :n] = sym
        batch["durations"][b, :n] = dur
        frame_sym = torch.repeat_interleave(sym, dur)
        bins = torch.arange(80).float()
        batch["mels"][b, :, :t] = -6 + 3 * torch.sin(bins[:, None] * 0.1 * frame_sym[None, :].float() / 5)
        pitch = torch.sin(torch.arange(t) / 5.0)
        pitch[::4] = 0.0  # unvoiced frames
        batch["pitch"][b, :t] = pitch
        batch["energy"][b, :t] = batch["mels"][b, :, :t].norm(dim=0)
    return batch


# ----------------------------------------------------------------------------- reference layout

def test_base_matches_nvidia_state_dict_exactly():
    ref = json.loads(REFERENCE.read_text())
    model = FastPitch(PRESETS["base"])
    sd = model.state_dict()
    assert set(sd) == set(ref["state_dict"]), set(sd) ^ set(ref["state_dict"])
    for k, shape in ref["state_dict"].items():
        assert list(sd[k].shape) == shape, k
    assert count_parameters(model) == ref["param_counts"]["total_trainable"] == 46_266_420
    assert count_parameters(model.attention) == ref["param_counts"]["attention_module_only"]
    assert count_parameters(model.encoder) == ref["param_counts"]["encoder"]
    assert count_parameters(model.decoder) == ref["param_counts"]["decoder"]
    no_energy = FastPitch(PRESETS["base"], energy_conditioning=False)
    assert count_parameters(no_energy) == ref["param_counts"]["total_without_energy_conditioning"]
    two = FastPitch(PRESETS["base"], n_speakers=2).state_dict()
    assert list(two["speaker_emb.weight"].shape) == ref["keys_added_when_n_speakers_gt_1"]["speaker_emb.weight"]


def test_tiny_is_small_and_config_round_trips():
    model = tiny()
    assert 0.5e6 < count_parameters(model) < 3e6
    cfg = FastPitchConfig.from_dict(model.config.to_dict())
    assert cfg == model.config
    assert FastPitchConfig.from_dict({"preset": "tiny", "d_model": 96}).d_model == 96
    with pytest.raises(ConfigError, match="d_modle"):
        FastPitchConfig.from_dict({"d_modle": 3})
    with pytest.raises(ConfigError, match="preset"):
        FastPitchConfig.from_dict({"preset": "huge"})


# ----------------------------------------------------------------------------- length regulator

def test_regulate_length_repeats_and_pads():
    enc = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)
    dur = torch.tensor([[2, 0, 3, 1], [1, 1, 0, 0]])
    out, lens = regulate_length(enc, dur)
    assert lens.tolist() == [6, 2]
    assert out.shape == (2, 6, 3)
    for b in range(2):
        expect = torch.repeat_interleave(enc[b], dur[b], dim=0)
        assert torch.equal(out[b, : lens[b]], expect)
        assert torch.all(out[b, lens[b]:] == 0)
    out, _ = regulate_length(enc, dur, max_len=9)
    assert out.shape[1] == 9


def test_regulate_length_exact_in_bf16_beyond_256_frames():
    # 20 symbols x 150 frames: frame indices up to 3000, far beyond bf16's exact integers
    enc = torch.arange(20, dtype=torch.bfloat16).view(1, 20, 1)
    dur = torch.full((1, 20), 150)
    out, lens = regulate_length(enc, dur)
    assert int(lens) == 3000
    assert torch.equal(out[0, :, 0].float(), (torch.arange(3000) // 150).float())


# ----------------------------------------------------------------------------- training forward

def test_forward_external_shapes_and_gradients():
    model = tiny()
    batch = make_batch()
    out = model(batch, alignment="external")
    B, N, T = 2, 7, 40
    assert out["mel_out"].shape == (B, T, 80)
    for k in ("log_dur_pred", "pitch_pred", "pitch_tgt", "energy_pred", "energy_tgt"):
        assert out[k].shape == (B, N), k
    assert torch.equal(out["dur_tgt"], batch["durations"])
    assert out["attn_soft"] is None and out["attn_logprob"] is None
    # per-symbol pitch target = mean of the voiced frames of each symbol
    d = batch["durations"][0, :7]
    ends = d.cumsum(0)
    for i in range(7):
        seg = batch["pitch"][0, ends[i] - d[i]: ends[i]]
        voiced = seg[seg != 0]
        expect = voiced.mean() if len(voiced) else torch.tensor(0.0)
        assert out["pitch_tgt"][0, i] == pytest.approx(float(expect), abs=1e-5)
    assert torch.all(out["pitch_tgt"][1, 5:] == 0)

    total, terms = FastPitchLoss()(out, batch)
    total.backward()
    assert set(terms) == {"mel", "duration", "pitch", "energy", "total"}
    assert all(math.isfinite(float(v)) for v in terms.values())
    for name, p in model.named_parameters():
        if name.startswith("attention."):
            assert p.grad is None, name  # the aligner is idle with external durations
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_forward_learned_alignment():
    model = tiny()
    batch = make_batch()
    del batch["durations"]
    out = model(batch, alignment="learned")
    B, N, T = 2, 7, 40
    assert out["attn_soft"].shape == out["attn_logprob"].shape == out["attn_hard"].shape == (B, 1, T, N)
    assert out["dur_tgt"].dtype == torch.long
    assert out["dur_tgt"].sum(1).tolist() == batch["mel_lens"].tolist()
    assert torch.all(out["dur_tgt"][1, 5:] == 0)
    total, terms = FastPitchLoss()(out, batch, kl_weight=0.5)
    assert {"attn", "kl"} <= set(terms)
    assert all(math.isfinite(float(v)) for v in terms.values())
    total.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("attention.") and "attn_proj" not in n]
    assert grads and all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    assert torch.isfinite(model.encoder.word_emb.weight.grad).all()


@pytest.mark.parametrize("alignment", ["external", "learned"])
def test_forward_under_bf16_autocast(alignment):
    """The AMP path (bf16 here on CPU; fp16/bf16 on CUDA) runs and gives finite losses."""
    model = tiny()
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch, alignment=alignment)
        total, terms = FastPitchLoss()(out, batch, kl_weight=1.0)
    total.backward()
    assert out["mel_out"].shape == (2, 40, 80)
    assert out["dur_tgt"].sum(1).tolist() == batch["mel_lens"].tolist()
    assert all(math.isfinite(float(v)) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_external_alignment_requires_durations():
    model = tiny()
    batch = make_batch()
    del batch["durations"]
    with pytest.raises(ValueError, match="durations"):
        model(batch, alignment="external")


def test_loss_ignores_padding():
    model = tiny()
    model.eval()
    batch = make_batch()
    with torch.no_grad():
        out = model(batch)
    loss = FastPitchLoss()
    total, terms = loss(out, batch)
    spoiled = dict(out)
    spoiled["mel_out"] = out["mel_out"].clone()
    spoiled["mel_out"][1, 28:] = 1e6  # padded frames of the shorter utterance
    spoiled["log_dur_pred"] = out["log_dur_pred"].clone()
    spoiled["log_dur_pred"][1, 5:] = 1e6
    spoiled["pitch_pred"] = out["pitch_pred"].clone()
    spoiled["pitch_pred"][1, 5:] = -1e6
    total2, terms2 = loss(spoiled, batch)
    assert torch.allclose(total, total2)
    # and the unpadded part does count
    spoiled["mel_out"][1, 27] += 10.0
    assert loss(spoiled, batch)[1]["mel"] > terms["mel"]


def test_loss_leaves_out_the_bins_a_telephone_recording_cannot_fill():
    model = tiny()
    model.eval()
    batch = make_batch()
    batch["mel_bins"] = torch.tensor([63, 80])  # clip 0 from 8 kHz audio: nothing above bin 62
    with torch.no_grad():
        out = model(batch)
    loss = FastPitchLoss()
    mel = loss(out, batch)[1]["mel"]
    spoiled = dict(out)
    spoiled["mel_out"] = out["mel_out"].clone()
    spoiled["mel_out"][0, :, 63:] = 1e6
    assert torch.allclose(loss(spoiled, batch)[1]["mel"], mel)
    spoiled["mel_out"][1, :20, 70] += 10.0  # clip 1 is wideband: its top bins count
    assert loss(spoiled, batch)[1]["mel"] > mel


def test_speaker_embedding_changes_output():
    model = tiny(n_speakers=3)
    model.eval()
    sym = torch.randint(1, 20, (1, 6))
    a = model.infer(sym, speakers=0, durations=torch.full((1, 6), 3))["mel"]
    b = model.infer(sym, speakers=2, durations=torch.full((1, 6), 3))["mel"]
    assert a.shape == b.shape == (1, 80, 18)
    assert not torch.allclose(a, b)


# ----------------------------------------------------------------------------- inference

def test_infer_pace_and_controls():
    model = tiny()
    model.eval()
    with torch.no_grad():  # predicted durations = exp(log 7) - 1 = 6 frames per symbol
        model.duration_predictor.fc.weight.zero_()
        model.duration_predictor.fc.bias.fill_(math.log(7.0))
    sym = torch.tensor([[3, 4, 5, 6, 7, 8, 0, 0], [3, 4, 5, 0, 0, 0, 0, 0]])
    slow = model.infer(sym)
    assert slow["mel_lens"].tolist() == [36, 18]
    assert slow["mel"].shape == (2, 80, 36)
    assert torch.all(slow["mel"][1, :, 18:] == 0)
    assert torch.all(slow["durations"][1, 3:] == 0)
    fast = model.infer(sym, pace=2.0)
    assert fast["mel_lens"].tolist() == [18, 9]
    flat = model.infer(sym, pitch_scale=0.0)
    assert torch.all(flat["pitch"] == 0)
    shifted = model.infer(sym, pitch_transform=lambda p, m: p + 1.0)
    assert torch.allclose(shifted["pitch"][0, :6], slow["pitch"][0, :6] + 1.0, atol=1e-5)
    assert torch.all(shifted["pitch"][1, 3:] == 0)
    assert not torch.allclose(shifted["mel"], slow["mel"])
    forced = model.infer(sym, durations=torch.full((2, 8), 2))
    assert forced["mel_lens"].tolist() == [12, 6]


def test_infer_matches_teacher_forced_forward():
    """With the same durations, pitch and energy, inference and training passes agree."""
    model = tiny()
    model.eval()
    batch = make_batch()
    with torch.no_grad():
        out = model(batch)
        inf = model.infer(batch["symbols"], batch["symbol_lens"], durations=batch["durations"],
                          pitch=out["pitch_tgt"], energy=out["energy_tgt"])
    for b, t in enumerate(batch["mel_lens"].tolist()):
        assert torch.allclose(inf["mel"][b, :, :t].T, out["mel_out"][b, :t], atol=1e-4)


# ----------------------------------------------------------------------------- it learns

def test_one_batch_overfits():
    torch.manual_seed(0)
    model = tiny()
    batch = make_batch()
    loss_fn = FastPitchLoss()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(100):
        total, terms = loss_fn(model(batch), batch)
        opt.zero_grad()
        total.backward()
        opt.step()
        losses.append(float(total.detach()))
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])
    # beyond the mean: the mel error is well below the targets' own variance
    valid = torch.cat([batch["mels"][b, :, :t].flatten() for b, t in enumerate(batch["mel_lens"].tolist())])
    assert float(terms["mel"]) < 0.5 * float(valid.var())
