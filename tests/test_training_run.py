"""The run-folder rules every `tts train` model shares (tts_cli.training.run)."""
import pytest
import torch

from tts_cli.checkpoints.format import save_checkpoint
from tts_cli.errors import TrainConfigError
from tts_cli.training.run import open_run, train_settings
from tts_cli.training.skeleton import print_summary


def resolve(cfg):
    return {"model": {}, "train": {}, **(cfg or {})}


def write_run(run, kind: str, train: dict | None = None):
    save_checkpoint(run / "checkpoints" / "last.pt", {"w": torch.zeros(1)}, {"preset": "x"}, None, 7, kind=kind,
                    optimizer={}, scheduler={}, sampler={}, train=train or {})


def test_new_run_existing_run_and_resume(tmp_path):
    run = tmp_path / "run"
    cfg, ckpt = open_run(run, "fastpitch", {"train": {"lr": 1}}, resolve, resume=True, init_from=None, is_main=True)
    assert ckpt is None and cfg["train"] == {"lr": 1}  # nothing to resume yet: a new run

    write_run(run, "fastpitch", train={"steps": 9})
    with pytest.raises(TrainConfigError, match="already holds a run"):
        open_run(run, "fastpitch", None, resolve, resume=False, init_from=None, is_main=True)
    with pytest.raises(TrainConfigError, match="--init-from"):
        open_run(run, "fastpitch", None, resolve, resume=True, init_from="x.pt", is_main=True)

    cfg, ckpt = open_run(run, "fastpitch", {"train": {"lr": 1}}, resolve, resume=True, init_from=None, is_main=True)
    assert ckpt["step"] == 7 and cfg["model"] == {"preset": "x"} and cfg["train"] == {"steps": 9}


def test_resume_of_another_model_kind_names_the_right_model(tmp_path):
    write_run(tmp_path, "hifigan")
    with pytest.raises(TrainConfigError, match="resume it with --model hifigan"):
        open_run(tmp_path, "fastpitch", None, resolve, resume=True, init_from=None, is_main=True)


def test_settings_overrides_and_bad_values():
    s = train_settings({"steps": 5, "lr": 0.5}, steps=None, lr=0.25, amp=None)
    assert s.steps == 5 and s.lr == 0.25
    with pytest.raises(TrainConfigError):
        train_settings({"no_such_setting": 1})


@pytest.mark.parametrize("model, hint", [("fastpitch", "tts train WORK --out"),
                                         ("hifigan", "tts train WORK --model hifigan --out")])
def test_interrupted_summary_says_how_to_continue(model, hint):
    from rich.console import Console

    console = Console(record=True, width=200)
    summary = {"run": "R", "step": 3, "steps": 10, "epoch": 0, "stopped": "interrupted", "losses": {"loss": 1.0},
               "best_val_loss": None, "frames_per_s": None, "skipped_steps": 0, "last_checkpoint": "R/last.pt",
               "best_checkpoint": None}
    print_summary(console, summary, model)
    assert hint in console.export_text()
