"""Checkpoints: self-describing save/load with weights_only, format-version errors, NVIDIA import,
and fine-tuning across symbol sets and speaker sets with a complete report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tts_cli.text.similar import similar_symbols

from tts_cli.checkpoints.format import FORMAT_VERSION, save_checkpoint
from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint
from tts_cli.text.frontend import espeak_version_warning
from tts_cli.checkpoints.nvidia_fastpitch import NVIDIA_SYMBOL_SETS
from tts_cli.errors import CheckpointError
from tts_cli.training.init_from import init_from
from tts_cli.models.fastpitch import PRESETS, FastPitch, FastPitchConfig

REFERENCE = Path("/work/shared/reference/nvidia_fastpitch_state_dict.json")
SYMBOLS = ["_", " ", ",", ".", "?", "a", "e", "i", "o", "u", "b", "d", "g", "k", "l", "m", "n", "p", "r", "s"]


def tiny(n_symbols=len(SYMBOLS), **kw) -> FastPitch:
    return FastPitch(FastPitchConfig.from_dict({"preset": "tiny", "n_symbols": n_symbols, **kw}))


def save_tiny(path, model, symbols=SYMBOLS, speakers=None, **extra):
    return save_checkpoint(
        path, model.state_dict(), model.config.to_dict(), symbols, step=123,
        text={"language": "es", "phonemiser": "espeak-ng", "espeak_ng": "1.52.0", "text_type": "phonemes"},
        audio={"sample_rate": 22050, "hop_length": 256},
        pitch_stats={"corpus": {"mean": 180.0, "std": 30.0}, "speakers": {"default": {"mean": 180.0, "std": 30.0}}},
        speakers=speakers or {"default": 0}, **extra,
    )


# ----------------------------------------------------------------------------- save / load

def test_save_load_roundtrip_weights_only(tmp_path):
    torch.manual_seed(0)
    model = tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(_batch()).get("mel_out").sum().backward()
    opt.step()
    path = save_tiny(tmp_path / "ck.pt", model, optimizer=opt.state_dict(), epoch=4,
                     rng={"torch": torch.get_rng_state()})
    raw = torch.load(path, weights_only=True)  # plain tensors and Python values only
    assert {"model", "config", "symbols", "step", "format_version", "kind", "text", "audio", "pitch_stats",
            "speakers", "optimizer", "epoch", "rng"} <= set(raw)
    assert raw["format_version"] == FORMAT_VERSION and raw["kind"] == "fastpitch"
    ck = load_checkpoint(path)
    assert ck["symbols"] == SYMBOLS and ck["step"] == 123 and ck["epoch"] == 4
    for k, v in model.state_dict().items():
        assert torch.equal(ck["model"][k], v), k
    opt2 = torch.optim.AdamW(tiny().parameters(), lr=1e-3)
    opt2.load_state_dict(ck["optimizer"])  # optimizer state survives weights_only
    rebuilt = build_fastpitch(ck)
    model.eval()
    rebuilt.eval()
    sym = torch.tensor([[5, 10, 6, 11, 3]])
    dur = torch.full((1, 5), 3)
    assert torch.equal(model.infer(sym, durations=dur)["mel"], rebuilt.infer(sym, durations=dur)["mel"])
    no_aligner = build_fastpitch(ck, aligner=False)
    assert no_aligner.attention is None


def test_save_strips_ddp_and_compile_prefixes(tmp_path):
    model = tiny()
    state = {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / "ck.pt", state, model.config.to_dict(), SYMBOLS, step=1)
    assert set(load_checkpoint(path)["model"]) == set(model.state_dict())


@pytest.mark.parametrize("version, message", [(FORMAT_VERSION + 1, "newer"), ("one", "unknown"), (0, "unknown")])
def test_bad_format_version_is_a_clear_error(tmp_path, version, message):
    path = save_tiny(tmp_path / "ck.pt", tiny())
    ck = torch.load(path, weights_only=True)
    ck["format_version"] = version
    torch.save(ck, path)
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(path)
    assert str(path) in str(e.value)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a tts-cli or NVIDIA"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such"):
        load_checkpoint(tmp_path / "missing.pt")
    pickled = tmp_path / "pickled.pt"
    torch.save({"format_version": 1, "obj": Path("x")}, pickled)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(pickled)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(garbage)


def test_espeak_version_warning():
    ck = {"text": {"espeak_ng": "1.51"}}
    assert "1.52" in espeak_version_warning(ck, "1.52")
    assert espeak_version_warning(ck, "1.51") is None
    assert espeak_version_warning({"text": {}}, "1.52") is None


# ----------------------------------------------------------------------------- fine-tuning

def test_init_from_different_symbol_set(tmp_path):
    torch.manual_seed(0)
    src = tiny()
    with torch.no_grad():
        src.pitch_mean.fill_(180.0)
    path = save_tiny(tmp_path / "src.pt", src)
    new_symbols = ["_", "a", "ɲ", "e", " ", "β", "?", "ʎ", "o"]  # reordered, 3 new
    torch.manual_seed(1)
    dst = tiny(n_symbols=len(new_symbols))
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    report = init_from(dst, path, new_symbols)

    W, S = dst.encoder.word_emb.weight.detach(), src.encoder.word_emb.weight.detach()
    for i, s in enumerate(new_symbols):
        if s in SYMBOLS:
            assert torch.equal(W[i], S[SYMBOLS.index(s)]), s
    # new sounds start at the nearest known ones: ɲ at n, β at b, ʎ at l
    for s, near in (("ɲ", "n"), ("β", "b"), ("ʎ", "l")):
        assert torch.allclose(W[new_symbols.index(s)], S[SYMBOLS.index(near)]), s
    assert torch.all(W[0] == 0)
    e = report.entry("encoder.word_emb.weight")
    assert e.action == "remapped" and "ɲ<n" in e.detail and "6 of 9" in e.detail
    # a symbol with no near sound starts at the mean of the checkpoint's (non-padding) rows
    other = tiny(n_symbols=3)
    init_from(other, path, ["_", "a", "ʔ"])
    assert torch.allclose(other.encoder.word_emb.weight.detach()[2], S[1:].mean(0))
    # everything else copied; pitch statistics kept for the new workspace
    for k, v in src.state_dict().items():
        if k in ("encoder.word_emb.weight", "pitch_mean", "pitch_std"):
            continue
        assert torch.equal(dst.state_dict()[k], v), k
    assert torch.equal(dst.pitch_mean, before["pitch_mean"])
    assert report.entry("pitch_mean").action == "kept"
    # every tensor of the model is accounted for
    assert {x.name for x in report.entries} >= set(dst.state_dict())
    assert report.counts()["loaded"] == len(dst.state_dict()) - 3


def test_init_from_reports_mismatches_and_extras(tmp_path):
    src = tiny(n_speakers=1)
    path = save_tiny(tmp_path / "src.pt", src)
    dst = tiny(encoder_ff=256, energy_conditioning=False, aligner=False)
    report = init_from(dst, path, SYMBOLS)
    ff = report.entry("encoder.layers.0.pos_ff.CoreNet.0.weight")
    assert ff.action == "skipped" and "(512, 128, 3)" in ff.detail and "(256, 128, 3)" in ff.detail
    assert report.entry("energy_emb.weight").action == "skipped"
    assert report.entry("attention.key_proj.0.conv.weight").action == "skipped"
    assert report.entry("decoder.layers.0.pos_ff.CoreNet.0.weight").action == "loaded"
    from rich.console import Console

    console = Console(record=True, width=200)
    report.print(console)
    text = console.export_text()
    assert "encoder.layers.0.pos_ff.CoreNet.0.weight" in text and "skipped" in text
    assert "decoder.*" in text  # loaded tensors grouped by module


def test_speaker_embedding_resize(tmp_path):
    torch.manual_seed(0)
    src = tiny(n_speakers=2)
    path = save_tiny(tmp_path / "src.pt", src, speakers={"ana": 0, "luis": 1})
    S = src.speaker_emb.weight.detach()

    dst = tiny(n_speakers=3)
    report = init_from(dst, path, SYMBOLS, new_speakers={"luis": 0, "maria": 1, "ana": 2})
    W = dst.speaker_emb.weight.detach()
    assert torch.equal(W[0], S[1]) and torch.equal(W[2], S[0])
    assert torch.allclose(W[1], S.mean(0))
    e = report.entry("speaker_emb.weight")
    assert e.action == "remapped" and "maria" in e.detail

    # from a single-speaker checkpoint: every speaker starts as the pretrained voice
    single = save_tiny(tmp_path / "single.pt", tiny())
    dst = tiny(n_speakers=2)
    report = init_from(dst, single, SYMBOLS, new_speakers=["x", "y"])
    assert torch.all(dst.speaker_emb.weight == 0)
    assert report.entry("speaker_emb.weight").action == "re-initialised"


def test_multi_to_single_speaker_folds_the_speaker_exactly(tmp_path):
    torch.manual_seed(0)
    src = tiny(n_speakers=2)
    path = save_tiny(tmp_path / "src.pt", src, speakers={"ana": 0, "luis": 1})
    dst = tiny(n_speakers=1)
    report = init_from(dst, path, SYMBOLS, new_speakers={"luis": 0})
    assert "folded" in report.entry("speaker_emb.weight").detail
    src.eval()
    dst.eval()
    sym = torch.tensor([[5, 10, 6, 11, 3, 0]])
    a = src.infer(sym, speakers=1)
    b = dst.infer(sym)
    assert torch.equal(a["durations"], b["durations"])
    assert torch.allclose(a["mel"], b["mel"], atol=1e-4)


# ----------------------------------------------------------------------------- NVIDIA

def nvidia_file(tmp_path, prefix="module."):
    """A checkpoint in NVIDIA's layout, from the reference's key/shape list, random values."""
    ref = json.loads(REFERENCE.read_text())
    g = torch.Generator().manual_seed(0)
    state = {prefix + k: torch.randn(*shape, generator=g) for k, shape in ref["state_dict"].items()}
    state[prefix + "pitch_mean"] = torch.tensor([214.72203])
    state[prefix + "pitch_std"] = torch.tensor([65.72038])
    for k in ("encoder.pos_emb.inv_freq", "decoder.pos_emb.inv_freq"):
        state[prefix + k] = 1.0 / (10000 ** (torch.arange(0.0, 384, 2.0) / 384))  # a buffer, not random
    obj = {"epoch": 1000, "iteration": 48000, "config": dict(ref["config"]),
           "train_setup": {"symbol_set": "english_basic", "sampling_rate": 22050, "hop_length": 256},
           "state_dict": state, "optimizer": {"state": {}, "param_groups": []}, "scaler": {}}
    path = tmp_path / "FastPitch_checkpoint_1000.pt"
    torch.save(obj, path)
    return path, {k[len(prefix):]: v for k, v in state.items()}


def test_nvidia_symbol_sets():
    eb = NVIDIA_SYMBOL_SETS["english_basic"]
    assert len(eb) == 148 and eb[0] == "_" and eb[1] == "-" and len(set(eb)) == 148
    assert eb[12:14] == ["A", "B"] and eb[-1] == "@ZH"
    assert len(NVIDIA_SYMBOL_SETS["english_basic_lowercase"]) == 123


def test_nvidia_checkpoint_converts_and_warm_starts(tmp_path):
    path, nv_state = nvidia_file(tmp_path)
    ck = load_checkpoint(path)
    assert ck["format_version"] == FORMAT_VERSION and ck["kind"] == "fastpitch"
    assert ck["config"] == PRESETS["base"].to_dict()  # shapes + NVIDIA config give the reference defaults
    assert ck["symbols"] == NVIDIA_SYMBOL_SETS["english_basic"]
    assert ck["step"] == 48000
    assert ck["pitch_stats"]["corpus"]["mean"] == pytest.approx(214.72203)
    assert set(ck["model"]) == set(nv_state)  # identity key mapping, prefix stripped

    # the converted checkpoint loads as is ...
    model = build_fastpitch(ck)
    for k, v in nv_state.items():
        assert torch.equal(model.state_dict()[k], v), k

    # ... and warm-starts a Spanish model with its own symbols and two speakers
    es = ["_", " ", ",", ".", "¿", "?", "a", "e", "ɲ", "ʎ", "β", "ð", "ɾ", "r"]
    dst = FastPitch(PRESETS["base"], n_symbols=len(es), n_speakers=2)
    report = init_from(dst, ck, es, new_speakers={"f1": 0, "m1": 1})
    W = dst.encoder.word_emb.weight.detach()
    src_emb = nv_state["encoder.word_emb.weight"]
    eb = NVIDIA_SYMBOL_SETS["english_basic"]
    for i, s in enumerate(es):
        if s == "_":
            assert torch.all(W[i] == 0)
        elif s in eb:
            assert torch.equal(W[i], src_emb[eb.index(s)]), s
        else:  # a new sound starts at its nearest known letters (ɲ at n); '¿' at the mean
            near = similar_symbols(s, eb)
            want = src_emb[[eb.index(x) for x in near]].mean(0) if near else src_emb[1:].mean(0)
            assert near or s == "¿", s
            assert torch.allclose(W[i], want), s
    counts = report.counts()
    assert report.entry("encoder.word_emb.weight").action == "remapped"
    assert report.entry("speaker_emb.weight").action == "re-initialised"
    assert report.entry("attention.key_proj.0.conv.weight").action == "loaded"
    assert counts["loaded"] == 185 - 1 - 2  # all but the embedding and the two pitch buffers
    assert counts["skipped"] == 0


def test_nvidia_ema_weights_and_unknown_symbol_set(tmp_path):
    # a small model in NVIDIA's file layout (the key names are the same at any size)
    nv_state = tiny(n_symbols=148).state_dict()
    path = tmp_path / "nv_small.pt"
    torch.save({"state_dict": nv_state, "ema_state_dict": {k: v + 1.0 for k, v in nv_state.items()},
                "train_setup": {"symbol_set": "english_basic"}, "iteration": 7}, path)
    plain = load_checkpoint(path)
    ema = load_checkpoint(path, prefer_ema=True)
    k = "proj.weight"
    assert torch.equal(plain["model"][k], nv_state[k])
    assert torch.equal(ema["model"][k], nv_state[k] + 1.0)
    assert ema["source"]["weights"] == "ema_state_dict"
    assert plain["config"]["d_model"] == 128 and plain["config"]["encoder_layers"] == 2
    build_fastpitch(plain)  # the shapes alone rebuild the architecture

    obj = torch.load(path, weights_only=True)
    obj["train_setup"]["symbol_set"] = "english_mandarin_basic"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="symbol"):
        load_checkpoint(path)
    custom = [f"s{i}" for i in range(148)]
    assert load_checkpoint(path, symbols=custom)["symbols"] == custom


def _batch():
    B, N, T = 1, 5, 15
    return {
        "symbols": torch.tensor([[5, 10, 6, 11, 3]]), "symbol_lens": torch.tensor([N]),
        "mels": torch.randn(B, 80, T), "mel_lens": torch.tensor([T]), "pitch": torch.randn(B, T),
        "energy": torch.rand(B, T), "speakers": torch.zeros(B, dtype=torch.long),
        "durations": torch.full((B, N), 3),
    }


def test_require_kind_names_the_place_and_hints_only_for_a_vocoder():
    from tts_cli.errors import CheckpointError
    from tts_cli.checkpoints.format import require_kind

    ckpt = {"kind": "fastpitch"}
    assert require_kind(ckpt, "fastpitch", "x.pt") is ckpt
    with pytest.raises(CheckpointError, match=r"^g\.pt: a 'hifigan' checkpoint, not FastPitch \(use --vocoder\)$"):
        require_kind({"kind": "hifigan"}, "fastpitch", "g.pt", "use --vocoder")
    with pytest.raises(CheckpointError, match=r"^y\.pt: a None checkpoint, not FastPitch$"):
        require_kind({}, "fastpitch", "y.pt", "use --vocoder")
