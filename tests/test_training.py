"""`tts train`: bucketing, LAMB, LR schedule, resume, NaN guard, DDP, checkpoints, fine-tuning."""
from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers_workspace import DEFAULT_SYMBOLS, make_workspace, read_metrics  # noqa: E402

from tts_cli.workspace import Workspace, atomic_write_jsonl
from tts_cli.errors import WorkspaceError

# smaller than the `tiny` preset: every run here takes a second or two on one CPU core
MICRO = {"preset": "tiny", "d_model": 48, "encoder_layers": 1, "decoder_layers": 1, "encoder_ff": 96,
         "decoder_ff": 96, "duration_predictor_filters": 32, "pitch_predictor_filters": 32,
         "energy_predictor_filters": 32, "aligner_channels": 16}


def cfg(steps: int, **train) -> dict:
    t = {"steps": steps, "lr": 0.05, "warmup": 3, "batch_frames": 120, "log_every": 1, "val_every": 0,
         "checkpoint_every": 100, "num_workers": 0, "keep_last": 2, **train}
    return {"model": dict(MICRO), "train": t}


def run_train(work, out, config, **kw):
    from tts_cli.stages.train import train

    return train(work, out, config=config, progress=False, **kw)


@pytest.fixture()
def work(tmp_path):
    return make_workspace(tmp_path / "work", n_utts=10, n_val=2)


# ----------------------------------------------------------------------------- bucketing

def test_bucketing_respects_frame_budget_and_skips_long_clips(caplog):
    from tts_cli.training.data import BucketBatchSampler, padded_frames

    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 300, size=200).tolist()
    lengths[5], lengths[77] = 900, 1200  # longer than max_frames
    ids = [f"u{i}" for i in range(len(lengths))]
    with caplog.at_level(logging.WARNING, logger="tts_cli.training.data"):
        s = BucketBatchSampler(lengths, batch_frames=1000, max_frames=800, seed=1, ids=ids)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "u5 (900 frames)" in warnings[0] and "u77 (1200 frames)" in warnings[0]

    batches = list(s)
    assert all(padded_frames(b, lengths) <= 1000 for b in batches)
    flat = sorted(i for b in batches for i in b)
    assert flat == sorted(set(range(200)) - {5, 77})  # every kept clip once per epoch
    # bucketing packs tightly: far fewer batches than one clip per batch
    assert len(batches) < 200 / 3
    # order is a function of (seed, epoch) only
    again = BucketBatchSampler(lengths, batch_frames=1000, max_frames=800, seed=1, warn=False)
    assert list(again) == batches
    again.set_epoch(1)
    assert list(again) != batches


def test_bucketing_ddp_slices_and_resume_position():
    from tts_cli.training.data import BucketBatchSampler

    lengths = list(np.random.default_rng(3).integers(10, 100, size=57))
    whole = BucketBatchSampler(lengths, 300, seed=7, warn=False).all_batches(epoch=2)
    ranks = [BucketBatchSampler(lengths, 300, seed=7, num_replicas=2, rank=r, warn=False) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    got = [list(r) for r in ranks]
    assert len(got[0]) == len(got[1])  # equal step counts: no DDP hang at the epoch end
    assert {tuple(b) for g in got for b in g} == {tuple(b) for b in whole}
    ranks[0].set_start(3)
    assert list(ranks[0]) == got[0][3:]


def test_collate_pads_with_zeros(work):
    from tts_cli.training.data import TTSDataset, collate

    ds = TTSDataset(work, "train")
    items = [ds[0], ds[1]]
    b = collate(items)
    N = max(len(it["symbols"]) for it in items)
    T = max(it["mel"].shape[1] for it in items)
    assert b["symbols"].shape == (2, N) and b["mels"].shape == (2, 80, T) and b["durations"].shape == (2, N)
    assert b["durations"].sum(1).tolist() == b["mel_lens"].tolist()
    short = int(np.argmin([it["mel"].shape[1] for it in items]))
    t = items[short]["mel"].shape[1]
    assert torch.all(b["mels"][short, :, t:] == 0) and torch.all(b["pitch"][short, t:] == 0)
    assert "mel_bins" not in b  # wideband clips: every bin is in the loss
    ds.rows[0] = {**ds.rows[0], "source_sr": 8000}  # a telephone recording fills 63 of 80 bins
    assert collate([ds[0], ds[1]])["mel_bins"].tolist() == [63, 80]
    # pitch is normalised per speaker: voiced frames have ~zero mean, unvoiced stay exactly 0
    p = torch.cat([ds[i]["pitch"] for i in range(len(ds))])
    raw = np.concatenate([np.load(work / "pitch" / f"{r}.npy") for r in ds.ids])
    assert torch.all(p[torch.from_numpy(raw == 0)] == 0)
    assert abs(float(p[torch.from_numpy(raw > 0)].mean())) < 0.5


# ----------------------------------------------------------------------------- optimizer and schedule

def _naive_lamb(params, grads, lr, b1=0.9, b2=0.98, eps=1e-9, wd=1e-6, max_norm=1.0):
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    clip = max_norm / max(norm, max_norm)
    out = []
    for p, g in zip(params, grads):
        g = g * clip
        m, v = (1 - b1) * g, (1 - b2) * g * g  # first step from zero state
        u = (m / (1 - b1)) / ((v / (1 - b2)).sqrt() + eps) + wd * p
        ratio = float(p.norm() / u.norm())
        out.append(p - lr * ratio * u)
    return out


def test_lamb_step_matches_the_algorithm_and_clips_global_norm():
    from tts_cli.training.optim import Lamb

    torch.manual_seed(0)
    w = [torch.randn(5, 3), torch.randn(7)]
    g = [torch.randn(5, 3) * 10, torch.randn(7) * 10]  # global norm >> 1: clipping active
    params = [torch.nn.Parameter(x.clone()) for x in w]
    for p, x in zip(params, g):
        p.grad = x.clone()
    opt = Lamb(params, lr=0.01)
    opt.step()
    for got, want in zip(params, _naive_lamb(w, g, 0.01)):
        torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-7)
    # the norm-1.0 clip: Adam's per-element normalisation would hide plain grad scaling, so check
    # the clip through eps-dominated tiny grads instead: scaling grads by 1000 above the threshold
    # must give exactly the same step as grads clipped to norm 1
    a = torch.nn.Parameter(torch.ones(4))
    b = torch.nn.Parameter(torch.ones(4))
    a.grad = torch.tensor([3.0, 4.0, 0.0, 0.0]) * 1000
    b.grad = torch.tensor([0.6, 0.8, 0.0, 0.0])
    oa, ob = Lamb([a], lr=0.1, eps=1.0), Lamb([b], lr=0.1, eps=1.0)
    oa.step()
    ob.step()
    torch.testing.assert_close(a.detach(), b.detach())
    assert float(oa.global_grad_norm()) == pytest.approx(5000.0)


def test_lamb_trust_ratio_scales_step_with_weight_norm():
    from tts_cli.training.optim import Lamb

    small, big = torch.nn.Parameter(torch.full((10,), 0.01)), torch.nn.Parameter(torch.full((10,), 10.0))
    for p in (small, big):
        p.grad = torch.full((10,), 0.05)
    before = [small.detach().clone(), big.detach().clone()]
    Lamb([small, big], lr=0.1).step()
    rel = [float((p.detach() - b).norm() / b.norm()) for p, b in zip((small, big), before)]
    assert rel[0] == pytest.approx(0.1, rel=1e-3) and rel[1] == pytest.approx(0.1, rel=1e-3)


def test_noam_schedule_values_and_resume():
    from tts_cli.training.optim import build_optimizer, build_scheduler

    p = [torch.nn.Parameter(torch.zeros(2))]
    opt = build_optimizer(p, "lamb", lr=0.1)
    sch = build_scheduler(opt, "noam", warmup=1000)
    lrs = []
    for _ in range(1200):
        lrs.append(opt.param_groups[0]["lr"])  # lr used by optimizer step len(lrs)
        opt.step()
        sch.step()
    assert lrs[0] == pytest.approx(0.1 * 1 / 1000 ** 1.5)
    assert int(np.argmax(lrs)) + 1 == 1000
    assert max(lrs) == pytest.approx(0.1 / math.sqrt(1000))  # 3.16e-3 at the end of warm-up
    assert lrs[1099] == pytest.approx(0.1 / math.sqrt(1100))
    state = sch.state_dict()
    opt2 = build_optimizer([torch.nn.Parameter(torch.zeros(2))], "lamb", lr=0.1)
    sch2 = build_scheduler(opt2, "noam", warmup=1000)
    sch2.load_state_dict(state)
    opt2.step()
    sch2.step()
    opt.step()
    sch.step()
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == pytest.approx(0.1 / math.sqrt(1202))


# ----------------------------------------------------------------------------- the loop

def test_training_learns_and_writes_run_folder(work, tmp_path):
    s = run_train(work, tmp_path / "run", cfg(24, lr=0.1, val_every=12, checkpoint_every=8))
    assert s["stopped"] == "finished" and s["step"] == 24
    losses = [r["total"] for r in read_metrics(tmp_path / "run")]
    assert len(losses) == 24 and losses[-1] < losses[0] / 3  # it learns
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == ["best.pt", "last.pt", "step_16.pt", "step_24.pt"]  # keep_last 2
    val = read_metrics(tmp_path / "run", "val")
    assert [r["step"] for r in val] == [12, 24] and all("loss" in r for r in val)
    samples = tmp_path / "run" / "samples" / "step_24"
    assert any(p.suffix == ".png" for p in samples.iterdir()) and any(p.suffix == ".wav" for p in samples.iterdir())
    assert (tmp_path / "run" / "config.yaml").exists()
    row = read_metrics(tmp_path / "run")[-1]
    assert row["frames_per_s"] > 0 and row["lr"] > 0 and set(row) >= {"mel", "duration", "pitch", "energy"}

    # self-describing, weights_only-loadable checkpoint
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ck["step"] == 24 and ck["kind"] == "fastpitch" and ck["symbols"] == DEFAULT_SYMBOLS
    assert ck["speakers"] == {"default": 0} and ck["audio"]["hop_length"] == 256 and ck["text"]["language"] == "es"
    assert ck["pitch_stats"]["corpus"]["mean"] > 0
    for key in ("optimizer", "scheduler", "rng", "sampler", "epoch", "format_version"):
        assert key in ck
    from tts_cli.checkpoints.load import build_fastpitch

    model = build_fastpitch(ck)
    assert float(model.pitch_mean) == pytest.approx(ck["pitch_stats"]["corpus"]["mean"])

    # a second start into the same folder without --resume is refused
    from tts_cli.errors import TrainConfigError

    with pytest.raises(TrainConfigError, match="--resume"):
        run_train(work, tmp_path / "run", cfg(30))


def test_resume_after_interrupt_equals_uninterrupted_run(work, tmp_path, monkeypatch):
    """Ctrl-C at step 5 (mid-epoch), resume to 11: the loss curve equals a direct 11-step run.
    Dropout is on, so this needs the RNG states and the sampler position restored exactly."""
    from tts_cli.evaluation import asr

    def no_recogniser(*args, **kwargs):
        raise asr.ASRUnavailable("not in this test")

    # The held-out check after the direct run loads Whisper where the [eval] extra is installed.
    # Under pytest the resumed run then ended ~1e-4 away in a few weights whose gradients are only
    # rounding noise (attention key biases; Adam scales noise up), loss curves still equal; the
    # same runs in a plain script match bit for bit. This test is about RNG and sampler restore.
    monkeypatch.setattr(asr, "load_asr", no_recogniser)
    config = cfg(11, val_every=4, val_samples=0)  # validation must not disturb the RNG streams
    direct = run_train(work, tmp_path / "direct", config)

    def interrupt_at_5(step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    first = run_train(work, tmp_path / "resumed", config, _hooks={"after_loss": interrupt_at_5})
    assert first["stopped"] == "interrupted" and first["step"] == 5
    assert (tmp_path / "resumed" / "checkpoints" / "step_5.pt").exists()
    second = run_train(work, tmp_path / "resumed", None, resume=True)
    assert second["stopped"] == "finished" and second["step"] == direct["step"] == 11

    a, b = read_metrics(tmp_path / "direct"), read_metrics(tmp_path / "resumed")
    assert [r["step"] for r in b] == list(range(1, 12))
    assert len({r["epoch"] for r in a}) > 2  # the run crossed epoch boundaries
    for ra, rb in zip(a, b):
        assert rb["total"] == pytest.approx(ra["total"], abs=1e-6), ra["step"]
        assert rb["lr"] == pytest.approx(ra["lr"], rel=1e-12)
    wa = torch.load(tmp_path / "direct/checkpoints/last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)
    # resuming a finished run to a larger --steps continues it
    third = run_train(work, tmp_path / "resumed", None, resume=True, steps=13)
    assert third["step"] == 13 and [r["step"] for r in read_metrics(tmp_path / "resumed")][-3:] == [11, 12, 13]


def test_weight_average_follows_the_weights_and_swaps_back():
    from tts_cli.training.ema import WeightAverage

    model = torch.nn.Linear(3, 2)
    model.register_buffer("stat", torch.zeros(2))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ema = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
        model.stat.fill_(5.0)
    ema.update(model, step=100)  # past the ramp: decay 0.9
    torch.testing.assert_close(ema.averaged["weight"], start["weight"] + 0.1)
    assert ema.averaged["stat"].tolist() == [5.0, 5.0]  # buffers are copied, not averaged
    assert ema.decay_at(0) == pytest.approx(0.1)  # the first steps weigh in fully
    own = model.weight.detach().clone()
    with ema.applied(model):
        torch.testing.assert_close(model.weight.detach(), start["weight"] + 0.1)
    torch.testing.assert_close(model.weight.detach(), own)


def test_ema_checkpoints_hold_the_average_and_resume_exactly(work, tmp_path):
    """ema_decay: "model" is the averaged weights (what validation measured and synthesis loads),
    "training_weights" the raw ones; an interrupted run resumes both bit-exactly."""
    config = cfg(9, ema_decay=0.9, val_every=3, val_samples=0)
    run_train(work, tmp_path / "direct", config)
    ck = torch.load(tmp_path / "direct/checkpoints/last.pt", weights_only=True)
    assert ck["ema_decay"] == 0.9 and set(ck["training_weights"]) == set(ck["model"])
    moved = [k for k in ck["model"] if not torch.equal(ck["model"][k], ck["training_weights"][k])]
    assert moved  # the average lags the raw weights

    def interrupt_at_5(step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    run_train(work, tmp_path / "resumed", config, _hooks={"after_loss": interrupt_at_5})
    run_train(work, tmp_path / "resumed", None, resume=True)
    resumed = torch.load(tmp_path / "resumed/checkpoints/last.pt", weights_only=True)
    for part in ("model", "training_weights"):
        for k in ck[part]:
            torch.testing.assert_close(resumed[part][k], ck[part][k], rtol=0, atol=1e-6)
    a = read_metrics(tmp_path / "direct", "val")
    b = read_metrics(tmp_path / "resumed", "val")
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], abs=1e-6)

    from tts_cli.checkpoints.load import build_fastpitch

    model = build_fastpitch(ck)  # synthesis loads the averaged weights
    torch.testing.assert_close(model.state_dict()["encoder.word_emb.weight"], ck["model"]["encoder.word_emb.weight"])


def test_nan_guard_skips_steps_and_stops_naming_utterances(work, tmp_path, caplog):
    from tts_cli.errors import TrainingError

    calls = []

    def nan_at_3(step, loss):  # only the third batch: the step is retried with the next batch
        calls.append(step)
        return loss * float("nan") if len(calls) == 3 else loss

    with caplog.at_level(logging.WARNING):
        s = run_train(work, tmp_path / "once", cfg(6), _hooks={"after_loss": nan_at_3})
    assert s["step"] == 6 and s["skipped_steps"] == 1
    assert any("non-finite" in r.getMessage() and "utt" in r.getMessage() for r in caplog.records)
    assert all(math.isfinite(r["total"]) for r in read_metrics(tmp_path / "once"))

    with pytest.raises(TrainingError) as err:
        run_train(work, tmp_path / "always", cfg(6, max_nonfinite=3),
                  _hooks={"after_loss": lambda step, loss: loss + float("inf")})
    msg = str(err.value)
    assert "3 non-finite" in msg and "utt0" in msg


def test_utterances_the_aligner_flagged_are_left_out_and_named(work, tmp_path, caplog):
    ws = Workspace(work)
    bad = next(r["id"] for r in ws.load_manifest() if r["split"] == "train")
    ws.duration_path(bad).unlink()  # a flagged clip is not read at all: no durations needed
    atomic_write_jsonl(ws.align_report, [{"id": bad, "confidence": 0.3, "reasons": ["low attention confidence 0.30 < 0.5"]}])
    with caplog.at_level(logging.WARNING):
        s = run_train(work, tmp_path / "run", cfg(2))
    assert s["step"] == 2
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "left out 1 of" in text and bad in text and "low attention confidence" in text
    with pytest.raises(WorkspaceError, match="no durations"):  # kept, it would need them
        run_train(work, tmp_path / "kept", cfg(2, skip_flagged=False))


def test_init_from_other_symbol_set_and_freeze(work, tmp_path):
    run_train(work, tmp_path / "pre", cfg(3))
    # a new voice: other symbols (some shared, some new, other order), two speakers
    new_symbols = ["_", "a", "o", "x", "y", "z", "s", "t", "ñ", "e"]
    work2 = make_workspace(tmp_path / "work2", n_utts=8, n_val=1, symbols=new_symbols, speakers=("ana", "luis"),
                           seed=5)
    s = run_train(work2, tmp_path / "ft", cfg(2, lr=1e-3), init_from=tmp_path / "pre/checkpoints/last.pt",
                  freeze=("encoder",))
    assert s["step"] == 2 and read_metrics(tmp_path / "ft")[0]["step"] == 1  # fresh run from step 0
    actions = {r["name"]: r["action"] for r in s["load_report"]}
    assert actions["encoder.word_emb.weight"] == "remapped"
    assert actions["decoder.layers.0.pos_ff.CoreNet.0.weight"] == "loaded"
    pre = torch.load(tmp_path / "pre/checkpoints/last.pt", weights_only=True)
    ft = torch.load(tmp_path / "ft/checkpoints/last.pt", weights_only=True)
    # the workspace's symbols first, then the base's it lacks: the voice still says those sounds
    kept = [x for x in DEFAULT_SYMBOLS if x not in new_symbols]
    assert ft["symbols"] == new_symbols + kept and ft["speakers"] == {"ana": 0, "luis": 1}
    emb_pre, emb_ft = pre["model"]["encoder.word_emb.weight"], ft["model"]["encoder.word_emb.weight"]
    assert emb_ft.shape[0] == len(new_symbols) + len(kept)
    for sym in ("a", "o", "s", "t", "e", *kept):  # the base's rows copied by symbol string, frozen since
        torch.testing.assert_close(emb_ft[ft["symbols"].index(sym)], emb_pre[DEFAULT_SYMBOLS.index(sym)])
    # the decoder was not frozen: it moved
    k = "decoder.layers.0.pos_ff.CoreNet.0.weight"
    assert not torch.equal(pre["model"][k], ft["model"][k])
    assert ft["pitch_stats"]["speakers"].keys() == {"ana", "luis"}
    # --resume keeps the run's table (the base's extra symbols included)
    run_train(work2, tmp_path / "ft", None, resume=True, steps=3)
    resumed = torch.load(tmp_path / "ft/checkpoints/last.pt", weights_only=True)
    assert resumed["step"] == 3 and resumed["symbols"] == ft["symbols"]


def test_steps_per_minute_in_language_when_the_init_voice_speaks_it(work, tmp_path):
    """Fine-tuning from a base in the workspace's language takes the recipe's in-language rate;
    from a base of another language (or training from scratch), the plain one."""
    run_train(work, tmp_path / "pre", cfg(2))  # its checkpoint says `language: es`, as the workspace
    rows = [r for r in Workspace(work).load_manifest() if r["split"] == "train"]
    minutes = sum(r["duration_s"] for r in rows) / 60
    config = cfg(1, steps_per_minute=3 / minutes, steps_per_minute_in_language=2 / minutes)
    del config["train"]["steps"]
    base = tmp_path / "pre/checkpoints/last.pt"
    assert run_train(work, tmp_path / "same", config, init_from=base)["step"] == 2
    assert run_train(work, tmp_path / "scratch", config)["step"] == 3
    other = make_workspace(tmp_path / "work_it", n_utts=10, n_val=2, language="it")
    assert run_train(other, tmp_path / "other", config, init_from=base)["step"] == 3


def test_ddp_two_gloo_processes(work, tmp_path):
    """torchrun --nproc_per_node 2 -m tts_cli train ... on CPU: gloo, rank 0 writes everything."""
    import yaml

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(cfg(4, checkpoint_every=2)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tts_cli", "train", str(work), "--out", str(tmp_path / "ddp"), "--config", str(recipe),
           "--device", "cpu"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ck = torch.load(tmp_path / "ddp/checkpoints/last.pt", weights_only=True)
    assert ck["step"] == 4 and ck["sampler"]["world_size"] == 2 and len(ck["rng"]["ranks"]) == 2
    rows = read_metrics(tmp_path / "ddp")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # one writer: rank 0
    assert sorted(p.name for p in (tmp_path / "ddp/checkpoints").iterdir()) == ["last.pt", "step_2.pt", "step_4.pt"]


# ----------------------------------------------------------------------------- Griffin-Lim and recipes

def test_griffin_lim_reconstructs_a_tone():
    from tts_cli.audio import mel_spectrogram
    from tts_cli.config import AudioConfig
    from tts_cli.inference.vocoders import griffin_lim

    a = AudioConfig()
    t = torch.arange(a.sample_rate // 2) / a.sample_rate
    wav = 0.5 * torch.sin(2 * math.pi * 220 * t) + 0.2 * torch.sin(2 * math.pi * 660 * t)
    mel = mel_spectrogram(wav, a)
    out = griffin_lim(mel, a, n_iter=32)
    assert out.shape[0] == (mel.shape[1] - 1) * a.hop_length
    back = mel_spectrogram(out, a)
    assert float((back - mel)[:, 4:-4].abs().mean()) < 0.5  # log-mel within ~0.5 nat on average
    noise = mel_spectrogram(torch.randn_like(wav) * 0.1, a)
    assert float((noise - mel).abs().mean()) > 1.5


@pytest.mark.parametrize("name", ["demo_es", "base", "finetune_es"])
def test_recipes_resolve(name):
    from tts_cli.models.fastpitch import FastPitchConfig
    from tts_cli.training.fastpitch_job import _resolve_auto_eval, resolve_config
    from tts_cli.training.fastpitch_task import FastPitchTaskSettings
    from tts_cli.training.settings import TrainSettings

    c = resolve_config(name)
    train = dict(c["train"])
    FastPitchTaskSettings.pop_from(train)
    train.pop("freeze", None)
    train.pop("init_from", None)  # resolved by the train stage (a checkpoint or `bundled`)
    eval_asr, best = _resolve_auto_eval(train, None, None)  # `auto`: resolved by the train stage too
    TrainSettings.from_dict({**train, **{k: v for k, v in (("eval_asr", eval_asr), ("best_metric", best)) if v}})
    FastPitchConfig.from_dict(c["model"])


def test_replay_trains_the_base_voice_beside_the_new_one(work, tmp_path):
    """train.replay: the init checkpoint speaks sentences into RUN/replay/ (never WORK), its speakers
    follow the new voice's, and the run trains on both."""
    from tts_cli.training.replay import plan_replay
    from tts_cli.errors import TrainConfigError

    run_train(work, tmp_path / "pre", cfg(3))
    pre_path = tmp_path / "pre/checkpoints/last.pt"
    pre = torch.load(pre_path, weights_only=True)
    pre["model"]["duration_predictor.fc.bias"].fill_(math.log(6.0))  # ~5 frames per symbol: audible replay
    torch.save(pre, pre_path)
    sentences = tmp_path / "sentences.txt"
    rng = np.random.default_rng(3)
    sentences.write_text("\n".join("".join(rng.choice(DEFAULT_SYMBOLS[1:], size=8)) for _ in range(40)), "utf-8")
    work2 = make_workspace(tmp_path / "work2", n_utts=8, n_val=1, speakers=("ana",), seed=5)
    manifest_before = (work2 / "manifest.jsonl").read_bytes()
    config = cfg(2, lr=1e-3, replay={"ratio": 1.0, "sentences": str(sentences)})
    s = run_train(work2, tmp_path / "ft", config, init_from=pre_path)
    replay = Workspace(tmp_path / "ft/replay")
    rows = replay.load_manifest()
    assert rows and {r["speaker"] for r in rows} == {"default"}
    mine = sum(r["duration_s"] for r in Workspace(work2).load_manifest("train"))
    theirs = sum(r["duration_s"] for r in rows)
    assert mine <= theirs <= mine + max(r["duration_s"] for r in rows)  # ratio 1: as much as yours, one clip over
    assert all(replay.mel_path(r["id"]).exists() and replay.duration_path(r["id"]).exists() for r in rows)
    assert (work2 / "manifest.jsonl").read_bytes() == manifest_before  # the user's workspace untouched
    ft = torch.load(tmp_path / "ft/checkpoints/last.pt", weights_only=True)
    assert ft["speakers"] == {"ana": 0, "default": 1}  # the new voice stays speaker 0 (synthesize's default)
    assert ft["pitch_stats"]["speakers"].keys() == {"ana", "default"}
    torch.testing.assert_close(ft["model"]["speaker_emb.weight"].shape[0], 2)
    first = {r["id"]: replay.mel_path(r["id"]).stat().st_mtime_ns for r in rows}
    s = run_train(work2, tmp_path / "ft", None, resume=True, steps=4)  # resume: the same replay set, reused
    assert s["step"] == 4
    assert {r["id"]: replay.mel_path(r["id"]).stat().st_mtime_ns for r in rows} == first
    # recipe errors are named
    assert plan_replay({"ratio": 0}, "es") is None and plan_replay(None, "es") is None
    with pytest.raises(TrainConfigError, match="unknown setting"):
        plan_replay({"minutes": 3}, "es")
    with pytest.raises(TrainConfigError, match="no such file"):
        plan_replay({"ratio": 1, "sentences": str(tmp_path / "nope.txt")}, "es")
    assert plan_replay({"ratio": 1}, "xx") is None  # no sentences in that language: off, with a warning
    assert len(plan_replay({"ratio": 1}, "es").sentences) > 1000  # the bundled voice's own sentences


def test_timing_gap_counts_the_base_frames_on_symbols_the_workspace_leaves_empty(work, tmp_path, monkeypatch):
    """A base trained on a teacher's token timing gives stress marks and word spaces ~5 frames each,
    `tts align` none: the share of the base's predicted frames that fall on symbols with no frames
    in WORK's durations."""
    import tts_cli.evaluation.scoring as scoring
    from tts_cli.training.timing_check import timing_gap

    class TwoFramesEach:  # a base that predicts 2 frames for every symbol
        def eval(self):
            return self

        def to(self, device):
            return self

        def infer(self, ids, speakers=None):
            return {"durations": torch.full(ids.shape, 2, dtype=torch.long)}

    monkeypatch.setattr(scoring, "build_fastpitch", lambda ckpt, **kw: TwoFramesEach())
    ws = Workspace(work)
    rows = ws.load_manifest()
    base = {"symbols": list(ws.load_symbols()), "speakers": {"default": 0}}
    for r in rows:  # every symbol timed
        np.save(ws.duration_path(r["id"]), np.full(len(r["symbols"]), 3, dtype=np.int64))
    assert timing_gap(base, ws, rows) == 0.0
    empty = total = 0
    for r in rows:  # every third symbol left without frames, as the aligner leaves stress marks
        d = np.full(len(r["symbols"]), 3, dtype=np.int64)
        d[::3] = 0
        np.save(ws.duration_path(r["id"]), d)
        if r["split"] == "train":
            empty, total = empty + int((d == 0).sum()), total + len(d)
    assert timing_gap(base, ws, rows) == pytest.approx(empty / total)
    assert timing_gap({**base, "symbols": ["_", "a"]}, ws, rows) is None  # no clip it can read


@pytest.mark.parametrize("gap, steps", [(0.05, 2), (0.3, 3), (None, 2)])
def test_in_language_base_with_other_timing_takes_the_plain_rate(work, tmp_path, monkeypatch, gap, steps):
    """A base of the workspace's language whose frames fall on symbols WORK's durations leave empty
    (timing_gap above TIMING_GAP_LIMIT) relearns its timing: the plain steps_per_minute."""
    import tts_cli.training.fastpitch_job as job

    run_train(work, tmp_path / "pre", cfg(2))
    monkeypatch.setattr(job, "timing_gap", lambda *a, **k: gap)
    rows = [r for r in Workspace(work).load_manifest() if r["split"] == "train"]
    minutes = sum(r["duration_s"] for r in rows) / 60
    config = cfg(1, steps_per_minute=3 / minutes, steps_per_minute_in_language=2 / minutes)
    del config["train"]["steps"]
    assert run_train(work, tmp_path / "same", config, init_from=tmp_path / "pre/checkpoints/last.pt")["step"] == steps
