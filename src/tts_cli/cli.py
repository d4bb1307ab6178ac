"""The `tts` command line: a thin Typer layer over the stage functions in `tts_cli.stages`.

Heavy libraries (torch, librosa, phonemizer) are imported inside the commands so that
`tts --help` starts fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import __version__

app = typer.Typer(
    name="tts",
    help="Turn a folder of recordings and transcripts into a voice: "
    "preprocess -> align -> extract-pitch -> train -> synthesize.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tts-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    pass


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@app.command()
def preprocess(
    data: Path = typer.Argument(..., help="Dataset folder (LJSpeech, CSS10, audio+txt folder, JSONL manifest; sub-folders = speakers)."),
    out: Path = typer.Option(..., "--out", "-o", help="Workspace folder to write."),
    format: str = typer.Option("auto", "--format", "-f", help="auto | ljspeech | css10 | folder | manifest."),
    language: Optional[str] = typer.Option(None, "--language", "-l", help="espeak-ng language (default es)."),
    text_type: Optional[str] = typer.Option(None, "--text-type", help="text (normalise + espeak-ng) | characters | phonemes (input already IPA)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Recipe name or YAML path."),
    workers: int = typer.Option(0, "--workers", "-j", help="Worker processes (0 = all cores)."),
    sample_rate: Optional[int] = typer.Option(None, "--sample-rate", help="Target sample rate."),
    trim: Optional[bool] = typer.Option(None, "--trim/--no-trim", help="Trim leading/trailing silence."),
    trim_db: Optional[float] = typer.Option(None, "--trim-db", help="Silence threshold in dB below peak."),
    normalize_peak: Optional[bool] = typer.Option(None, "--peak-normalize/--no-peak-normalize", help="Peak-normalise audio."),
) -> None:
    """Read a dataset, normalise and phonemise its text, and write mels and a manifest to a workspace."""
    from .stages.preprocess import PreprocessError, preprocess as run

    overrides = {
        "audio": {"sample_rate": sample_rate, "trim_silence": trim, "trim_top_db": trim_db, "peak_normalize": normalize_peak},
        "text": {"language": language, "text_type": text_type},
        "data": {"format": format if format != "auto" else None},
    }
    try:
        run(data, out, config=config, overrides=overrides, workers=workers or None)
    except PreprocessError as e:
        _fail(str(e))


@app.command()
def align(
    work: Path = typer.Argument(..., help="Workspace written by `tts preprocess`."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Aligner training steps (total)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
    from_checkpoint: Optional[Path] = typer.Option(None, "--from-checkpoint", help="Use the aligner inside a trained FastPitch checkpoint; no training."),
    force: bool = typer.Option(False, "--force", help="Rewrite durations that already exist."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Recipe name or YAML path (section `align:`)."),
) -> None:
    """Learn phoneme durations with the FastPitch 1.1 aligner and monotonic alignment search."""
    from .stages.align import align as run
    from .workspace import WorkspaceError

    try:
        run(work, steps=steps, batch_size=batch_size, device=device, from_checkpoint=from_checkpoint, force=force, config=config)
    except (WorkspaceError, FileNotFoundError, ValueError) as e:
        _fail(str(e))


@app.command("extract-pitch")
def extract_pitch(
    work: Path = typer.Argument(..., help="Workspace written by `tts preprocess`."),
    method: Optional[str] = typer.Option(None, "--method", "-m", help="Pitch extractor (see README)."),
    workers: int = typer.Option(0, "--workers", "-j", help="Worker processes (0 = all cores)."),
    fmin: Optional[float] = typer.Option(None, "--fmin", help="Lowest F0 in Hz."),
    fmax: Optional[float] = typer.Option(None, "--fmax", help="Highest F0 in Hz."),
    force: bool = typer.Option(False, "--force", help="Redo files already extracted."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Recipe name or YAML path (section `pitch:`)."),
) -> None:
    """Extract frame-level F0 and energy, and per-speaker pitch statistics."""
    from .stages.pitch import extract_pitch as run
    from .workspace import WorkspaceError

    try:
        run(work, method=method, workers=workers or None, fmin=fmin, fmax=fmax, force=force, config=config)
    except (WorkspaceError, FileNotFoundError, ValueError) as e:
        _fail(str(e))


@app.command()
def train(
    work: Path = typer.Argument(..., help="Workspace with mels, durations and pitch."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (checkpoints, metrics, samples)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Preset (tiny, base) or recipe name/path."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimizer steps of the run."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Fine-tune: load weights only from a checkpoint (ours or NVIDIA's)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly where it stopped."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu | cuda | cuda:N (default: cuda if available)."),
    amp: Optional[bool] = typer.Option(None, "--amp/--no-amp", help="Mixed precision on CUDA (default: on, bf16 where supported)."),
    amp_dtype: Optional[str] = typer.Option(None, "--amp-dtype", help="bf16 | fp16 (fp16 uses a GradScaler)."),
    alignment: Optional[str] = typer.Option(None, "--alignment", help="external (durations from `tts align`) | learned (FastPitch 1.1 aligner)."),
    batch_frames: Optional[int] = typer.Option(None, "--batch-frames", help="Padded mel frames per batch (per GPU)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Skip clips longer than this many frames."),
    freeze: List[str] = typer.Option([], "--freeze", help="Freeze a named part (e.g. encoder); repeatable."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Base learning rate override."),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Data-loading worker processes."),
) -> None:
    """Train FastPitch on a workspace (multi-GPU: torchrun --nproc_per_node N -m tts_cli train ...)."""
    from .stages.train import TrainConfigError, train as run
    from .training.loop import TrainingError
    from .workspace import WorkspaceError

    amp_setting = None if amp is None else (amp_dtype or "auto") if amp else "none"
    if amp_setting is None and amp_dtype:
        amp_setting = amp_dtype
    try:
        summary = run(work, out, config=config, steps=steps, init_from=init_from, resume=resume, device=device,
                      amp=amp_setting, alignment=alignment, batch_frames=batch_frames, max_frames=max_frames,
                      freeze=tuple(freeze), lr=lr, compile=compile, num_workers=workers)
    except (TrainConfigError, TrainingError, WorkspaceError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if summary["stopped"] == "interrupted":
        raise typer.Exit(130)


@app.command()
def synthesize(
    text: str = typer.Argument(..., help="Text to speak."),
    output: Path = typer.Option(Path("tts_output.wav"), "--output", "-o", help="Output WAV ('-' for stdout)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="FastPitch checkpoint."),
) -> None:
    """Speak text with a trained voice."""
    _fail("`tts synthesize` is not implemented yet", 2)


@app.command()
def doctor() -> None:
    """Check the installation: Python, torch, espeak-ng, phonemizer, librosa, CUDA."""
    from .doctor import run_doctor

    raise typer.Exit(0 if run_doctor() else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
