"""`tts synthesize`: one text to an audio file (WAV, FLAC, Ogg Vorbis or MP3 by the -o extension) or a
WAV on stdout, or a file of lines to a folder of WAVs.

Messages, warnings and the summary table go to stderr, so `-o -` leaves stdout holding only the
WAV bytes. Per utterance it reports the audio duration and the real-time factor
RTF = compute time / audio duration (lower is faster; 0.1 = ten times faster than real time).

With -i FILE a line that cannot be spoken (no symbol the voice knows, or a model that predicts no
frames for it) is skipped with a message naming its line, id and reason; the other lines are
written (a failed batch is redone line by line) and the summary counts the skipped ones. The exit
code is non-zero only when no line at all could be written.
"""
from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from tts_cli.audio import audio_format, save_audio, wav_bytes
from tts_cli.audio import save_wav as write_wav

# light (numpy only); torch comes with tts_cli.inference.synthesizer, imported where a voice is opened
from tts_cli.errors import AudioError, SynthesisError
from tts_cli.inference.controls import check_controls
from tts_cli.inference.cpu import set_torch_threads
from tts_cli.inference.resolve import resolve_model
from tts_cli.inference.synthesizer import Synthesizer
from tts_cli.inference.voices import voice_of
from tts_cli.text.input_file import read_input_file
from tts_cli.workspace import atomic_save_npy, atomic_write_json, check_output_dir, check_output_file


@contextmanager
def _plain_warnings(console):
    """Warnings as one 'warning: ...' line on stderr instead of Python's file:line format."""
    old = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        console.print(f"[yellow]warning:[/] {message}", highlight=False)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            yield
    finally:
        warnings.showwarning = old


def _save_extras(stem: Path, result, save_mel: bool, save_durations: bool) -> list[Path]:
    written = []
    if save_mel:
        written.append(atomic_save_npy(stem.with_name(stem.name + ".mel.npy"), result.mel.astype("float32")))
    if save_durations:
        written.append(atomic_write_json(stem.with_name(stem.name + ".durations.json"), {
            "symbols": list(result.symbols), "durations": [int(d) for d in result.durations],
            "pitch_hz": [round(float(p), 2) for p in result.pitch_hz], "frame_s": result.frame_s,
        }))
    return written


def _synthesize_batch(synth, batch: list[tuple[str, str, int]], controls: dict):
    """(results, [(id, line, reason)]) for one batch of (id, text, line) items.

    The batch runs as one call; if it raises SynthesisError (a line with nothing speakable, or one
    for which the model predicts no frames), its items are redone one by one, so only the bad
    lines are lost. The warnings of a failed batch attempt are dropped: each retry warns for its line."""
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = synth.synthesize_many([t for _, t, _ in batch], ids=[u for u, _, _ in batch], **controls)
        except SynthesisError as e:
            error = e
    if error is None or len(batch) == 1:
        for w in caught:  # replay through whatever shows warnings out here (one line on stderr)
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        if error is None:
            return res, []
        (uid, _, line), = batch
        return [], [(uid, line, str(error))]
    results, failed = [], []
    for uid, text, line in batch:
        try:
            results += synth.synthesize_many([text], ids=[uid], **controls)
        except SynthesisError as e:
            failed.append((uid, line, str(e)))
    return results, failed


DEFAULT_OUTPUT = "tts_output.wav"  # -o not given (the CLI passes None: "not given" must stay visible)
DEFAULT_OUTPUT_DIR = "tts_output"  # --output-dir not given, with -i


def synthesize_command(
    text: str | None,
    output: str | None = None,
    model: str | Path | None = None,
    run: str | Path | None = None,
    vocoder: str | None = None,
    speed: float = 1.0,
    pitch_shift: float = 0.0,
    pitch_scale: float = 1.0,
    energy_scale: float = 1.0,
    speaker: str | None = None,
    input_file: str | Path | None = None,
    output_dir: str | Path | None = None,
    text_type: str | None = None,
    save_mel: bool = False,
    save_durations: bool = False,
    device: str | None = "auto",
    precision: str = "auto",
    batch_size: int = 16,
    voice: str | None = None,
    threads: int = 0,
    mel_contrast: float | None = None,
    engine: str = "torch",
    console=None,
) -> list:
    """Run the command; returns the Results. Raises SynthesisError / VocoderError with a message.
    output (one TEXT) and output_dir (-i) default to DEFAULT_OUTPUT / DEFAULT_OUTPUT_DIR."""
    from rich.console import Console

    console = console or Console(stderr=True)
    output, output_dir = _check_request(text, input_file, output, output_dir,
                                        dict(speed=speed, pitch_shift=pitch_shift, pitch_scale=pitch_scale,
                                             energy_scale=energy_scale))
    if text == "-":
        text = sys.stdin.read()
    with _plain_warnings(console):
        synth = _open_voice(model, run, voice, engine, vocoder=vocoder, device=device, precision=precision,
                            batch_size=batch_size, threads=threads, mel_contrast=mel_contrast, console=console)
        controls = dict(speaker=speaker, speed=speed, pitch_shift=pitch_shift, pitch_scale=pitch_scale,
                        energy_scale=energy_scale, text_type=text_type)
        extras = dict(save_mel=save_mel, save_durations=save_durations)
        if input_file is None:
            results, rows = _speak_text(synth, text, controls, output, extras)
            _print_table(console, rows)
        else:
            results, rows = _speak_file(synth, input_file, output_dir, controls, batch_size, extras, console)
    return results


def _check_request(text: str | None, input_file, output: str | None, output_dir, controls: dict) -> tuple:
    """The text, the controls and where the audio goes, checked before any model is loaded or text spoken
    (output / output_dir None: not given); returns (output, output_dir) with their defaults."""
    if input_file is None and (text is None or not text.strip()):
        raise SynthesisError("nothing to say: give a TEXT argument ('-' reads stdin) or -i/--input-file FILE")
    if input_file is not None and text:
        raise SynthesisError("give either a TEXT argument or -i/--input-file, not both")
    check_controls(**controls)
    if input_file is not None and output is not None:
        # it used to be ignored without a word, and the files landed in ./tts_output
        raise SynthesisError(f"-o {output}: with -i/--input-file every line is written to --output-dir "
                             f"(<id>.wav), not to one file; give --output-dir FOLDER instead")
    if input_file is None and output_dir is not None:
        raise SynthesisError(f"--output-dir {output_dir}: it is where -i/--input-file writes its lines; "
                             f"for one TEXT give -o FILE")
    output, output_dir = output or DEFAULT_OUTPUT, output_dir or DEFAULT_OUTPUT_DIR
    if input_file is not None:
        check_output_dir(output_dir, "--output-dir", SynthesisError)
    elif output != "-":
        check_output_file(output, "-o", SynthesisError)
        try:
            audio_format(output)
        except AudioError as e:
            raise SynthesisError(f"-o {e}") from None
    return output, output_dir


def _open_voice(model, run, voice, engine: str, *, vocoder, device, precision, batch_size: int, threads: int,
                mel_contrast, console):
    """The Synthesizer, after a header line naming voice and vocoder (and a hint when the vocoder
    is a fallback rather than one matched to the voice)."""
    if engine == "onnx" and (model is None or run is not None or voice is not None):
        raise SynthesisError("--engine onnx speaks an exported voice: give -m FOLDER (made by "
                             "`tts export --format onnx --out FOLDER`), not --run/--voice")
    model_path = Path(model) if engine == "onnx" else resolve_model(model, run, voice)
    thread_note = set_torch_threads(threads, device)
    synth = Synthesizer(model_path, vocoder=vocoder, device=device, precision=precision, batch_size=batch_size,
                        contrast=mel_contrast, engine=engine)
    bundled = voice_of(model_path)
    shown = f"{bundled.name} ({model_path}, licence {bundled.licence})" if bundled else str(model_path)
    contrast = f" · mel contrast ×{synth.mel_contrast:g}" if synth.mel_contrast != 1.0 else ""
    console.print(f"[bold]voice[/] {shown} · vocoder {synth.vocoder.describe()}{contrast}{thread_note}",
                  highlight=False)
    if synth.vocoder.is_default:
        why = f"voice {bundled.name} ships without a HiFi-GAN of its own" if bundled else "no --vocoder given"
        what = ("the universal HiFi-GAN V1 (not matched to this voice)" if synth.vocoder.name == "hifigan"
                else "Griffin-Lim (robotic)")
        console.print(f"[dim]{why}: {what}; match one with `tts train WORK --model hifigan --init-from universal "
                      "--gta CKPT --out RUN`[/]", highlight=False)
    return synth


def _speak_text(synth, text: str, controls: dict, output: str, extras: dict) -> tuple[list, list]:
    """One text to `output` (a file, or WAV bytes on stdout for '-'); (results, table rows)."""
    result = synth.synthesize(text, **controls)
    if output == "-":
        sys.stdout.buffer.write(wav_bytes(result.wav, result.sample_rate))
        sys.stdout.buffer.flush()
        stem, where = Path(DEFAULT_OUTPUT).with_suffix(""), "stdout"
    else:
        out = Path(output)
        save_audio(out, result.wav, result.sample_rate)
        stem, where = out.with_suffix(""), str(out)
    extra = _save_extras(stem, result, extras["save_mel"], extras["save_durations"])
    return [result], [("1", result, where + "".join(f", {p}" for p in extra))]


def _speak_file(synth, input_file, output_dir, controls: dict, batch_size: int, extras: dict,
                console) -> tuple[list, list]:
    """Every line of `input_file` to OUTPUT_DIR/<id>.wav in batches, skipping lines that cannot be
    spoken; prints the table and a summary line. (results, table rows)."""
    from rich.markup import escape
    from rich.progress import Progress

    items = read_input_file(input_file, with_lines=True)
    if not items:
        raise SynthesisError(f"{input_file}: no lines to synthesise")
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    synth.synthesize_many([], **controls)  # bad controls (speaker, speed, text type) fail once, here

    rows: list[tuple[str, object, str]] = []
    results = []
    skipped: list[tuple[str, int, str]] = []  # (id, line, reason)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("synthesize", total=len(items))
        for b in range(0, len(items), max(1, batch_size)):
            batch = items[b:b + max(1, batch_size)]
            res, failed = _synthesize_batch(synth, batch, controls)
            for uid, line, reason in failed:
                console.print(f"[red]skipped[/] {escape(f'{input_file}:{line} ({uid}): {reason}')}",
                              highlight=False)
            skipped += failed
            for r in res:
                path = write_wav(out_dir / f"{r.id}.wav", r.wav, r.sample_rate)
                extra = _save_extras(out_dir / r.id, r, extras["save_mel"], extras["save_durations"])
                rows.append((r.id, r, str(path) + "".join(f", {p}" for p in extra)))
                results.append(r)
            progress.advance(task, len(batch))
    _print_table(console, rows)
    console.print(escape(f"{len(results)} of {len(items)} lines written to {out_dir}"
                         + (f", {len(skipped)} skipped: " + ", ".join(f"{u} (line {n})" for u, n, _ in skipped)
                            if skipped else "")), highlight=False)
    if not results:  # skipped lines are reported above; only an all-failed file is an error
        raise SynthesisError(f"all {len(items)} lines of {input_file} failed (reasons above)")
    return results, rows


def _print_table(console, rows: list[tuple[str, object, str]]) -> None:
    from rich.table import Table

    table = Table(title="tts synthesize", caption="RTF = compute time / audio duration (lower is faster)")
    for col in ("utterance", "audio s", "compute s", "RTF", "written"):
        table.add_column(col, justify="right" if col in ("audio s", "compute s", "RTF") else "left")
    for uid, r, where in rows:
        table.add_row(uid, f"{r.seconds:.2f}", f"{r.compute_s:.3f}", f"{r.rtf:.3f}", where)
    if rows:
        console.print(table)


__all__ = ["synthesize_command"]
