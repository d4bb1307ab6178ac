"""Which model and which vocoder speak: -m, --run, --voice or the default bundled voice."""
from __future__ import annotations

import os
from pathlib import Path

from tts_cli.errors import SynthesisError, VoiceError
from tts_cli.inference.voices import default_voice, get_voice, voice_of
from tts_cli.workspace import resolve_checkpoint


def find_bundled_voice() -> Path | None:
    """The default bundled voice's FastPitch file (`tts_cli.inference.voices.default_voice`), if any."""
    try:
        voice = default_voice()
    except VoiceError as e:
        raise SynthesisError(str(e)) from None
    return voice.acoustic_path if voice is not None else None


def resolve_model(model: str | os.PathLike | None = None, run: str | os.PathLike | None = None,
                  voice: str | None = None) -> Path:
    """`-m` path (a run folder too) > the checkpoint `--run` offers (`tts_cli.workspace.RunFolder`:
    best.pt, else last.pt) > `--voice NAME` > the default bundled voice > error. `--voice`
    excludes -m and --run."""
    if voice is not None:
        if model is not None or run is not None:
            raise SynthesisError("--voice and -m/--run exclude each other: give a bundled voice or a checkpoint")
        try:
            return get_voice(voice).acoustic_path
        except VoiceError as e:
            raise SynthesisError(str(e)) from None
    if model is not None and not Path(model).is_dir():
        if not Path(model).is_file():
            raise SynthesisError(f"{Path(model)}: no such model checkpoint")
        return Path(model)
    if model is not None or run is not None:  # a run folder given as -m: same rule as --run
        return resolve_checkpoint(model if model is not None else run, error=SynthesisError)
    bundled = find_bundled_voice()
    if bundled is not None:
        return bundled
    raise SynthesisError(
        "no voice given and none is bundled (see `tts voices`). Pass -m CKPT (a FastPitch checkpoint) or --run RUN "
        "(a `tts train` folder), or make one: tts preprocess DATA --out WORK && tts align WORK && "
        "tts extract-pitch WORK && tts train WORK --out RUN --config tiny")


def find_vocoder_beside(model_path: str | os.PathLike | None) -> Path | None:
    """The vocoder that goes with a model file: a bundled voice's own (None when it has no
    HiFi-GAN), else `vocoder.pt` / `hifigan.pt` next to the file; None = the default vocoder."""
    if model_path is None:
        return None
    voice = voice_of(model_path)
    if voice is not None:
        return voice.vocoder_path
    folder = Path(model_path).parent
    for name in ("vocoder.pt", "hifigan.pt"):
        if (folder / name).is_file():
            return folder / name
    return None
