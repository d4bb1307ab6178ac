"""The bundled recipe hifigan_v3.yaml: `tts train --model hifigan --config hifigan_v3` finds it, and every value
in it is one that HiFi-GAN training reads (the V3 generator, the reference optimizer, keep_last 1)."""
from __future__ import annotations

import pytest
import yaml

from tts_cli.config import RECIPES_DIR

RECIPE = RECIPES_DIR / "hifigan_v3.yaml"


def test_the_recipe_resolves_by_name_and_every_train_key_is_read():
    from tts_cli.models.hifigan import PRESETS, HiFiGANConfig
    from tts_cli.training.hifigan_job import resolve_config, train_section
    from tts_cli.training.hifigan_task import HiFiGANTaskSettings
    from tts_cli.training.settings import TrainSettings

    cfg = resolve_config("hifigan_v3")
    assert cfg == yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    assert HiFiGANConfig.from_dict(cfg["model"]) == PRESETS["v3"]
    read = {f for f in HiFiGANTaskSettings.__dataclass_fields__} | {f for f in TrainSettings.__dataclass_fields__}
    assert set(cfg["train"]) <= read, set(cfg["train"]) - read  # no key the trainer ignores
    mels, task, loop = train_section(cfg)
    assert mels == "mels"
    assert (task.segment_size, task.batch_size, task.lr_decay) == (8192, 16, 0.999)
    assert (loop.optimizer, loop.lr, loop.betas, loop.keep_last) == ("adamw", 2e-4, (0.8, 0.99), 1)
    # the bare preset name is still the preset, not this recipe
    assert resolve_config("v3") == {"model": {"preset": "v3"}, "train": {}}


def test_a_train_key_nothing_reads_is_refused():
    from tts_cli.training.hifigan_job import train_section
    from tts_cli.errors import TrainConfigError

    with pytest.raises(TrainConfigError, match="unknown train setting.*segment_sise"):
        train_section({"model": {"preset": "v3"}, "train": {"segment_sise": 8192}})


def test_cli_train_hifigan_config_hifigan_v3_uses_the_recipe(tmp_path, monkeypatch):
    """The whole CLI path up to the training loop (the loop itself is replaced: a real V3 step
    with full discriminators is too slow for a CPU test)."""
    from typer.testing import CliRunner

    import tts_cli.training.skeleton as skeleton
    from tts_cli.cli import app
    from test_hifigan import _workspace_with_audio

    seen = {}

    def fake_fit(plan, ctx, *args, **kwargs):
        seen.update(task=plan.task, settings=plan.settings, sampler=plan.sampler)
        return {"stopped": "steps", "step": 0}

    monkeypatch.setattr(skeleton, "fit", fake_fit)
    work = _workspace_with_audio(tmp_path / "work")
    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(work), "--out", str(run), "--model", "hifigan",
                                   "--config", "hifigan_v3", "--workers", "0"], terminal_width=200)
    assert res.exit_code == 0, res.output
    settings, task = seen["settings"], seen["task"]
    assert settings.keep_last == 1 and settings.steps == 100000 and settings.lr == 2e-4
    assert task.settings.segment_size == 8192 and task.settings.batch_size == 16
    assert task.model.config.to_dict() == task.model.config.__class__.from_dict({"preset": "v3"}).to_dict()
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["model_type"] == "hifigan" and saved["model"]["upsample_rates"] == [8, 8, 4]
    assert saved["train"]["keep_last"] == 1 and saved["train"]["lr_decay"] == 0.999


@pytest.mark.parametrize("config", ["hifigan_v3", "v3"])
def test_a_vocoder_config_without_model_hifigan_says_what_to_add(config):
    from tts_cli.training.fastpitch_job import resolve_config
    from tts_cli.errors import TrainConfigError

    with pytest.raises(TrainConfigError, match="--model hifigan"):
        resolve_config(config)
    assert resolve_config("tiny")["model"]["preset"] == "tiny"  # FastPitch presets still resolve
