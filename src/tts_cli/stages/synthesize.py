"""`tts synthesize`: one text to a WAV (file or stdout), or a file of lines to a folder of WAVs.

Messages, warnings and the summary table go to stderr, so `-o -` leaves stdout holding only the
WAV bytes. Per utterance it reports the audio duration and the real-time factor
RTF = compute time / audio duration (lower is faster; 0.1 = ten times faster than real time).
"""
from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager
from pathlib import Path


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
    from tts_cli.workspace import atomic_save_npy, atomic_write_json

    written = []
    if save_mel:
        written.append(atomic_save_npy(stem.with_name(stem.name + ".mel.npy"), result.mel.astype("float32")))
    if save_durations:
        written.append(atomic_write_json(stem.with_name(stem.name + ".durations.json"), {
            "symbols": list(result.symbols), "durations": [int(d) for d in result.durations],
            "pitch_hz": [round(float(p), 2) for p in result.pitch_hz], "frame_s": result.frame_s,
        }))
    return written


def synthesize_command(
    text: str | None,
    output: str = "tts_output.wav",
    model: str | Path | None = None,
    run: str | Path | None = None,
    vocoder: str | None = None,
    speed: float = 1.0,
    pitch_shift: float = 0.0,
    pitch_scale: float = 1.0,
    energy_scale: float = 1.0,
    speaker: str | None = None,
    input_file: str | Path | None = None,
    output_dir: str | Path = "tts_output",
    text_type: str | None = None,
    save_mel: bool = False,
    save_durations: bool = False,
    device: str | None = "auto",
    precision: str = "auto",
    batch_size: int = 16,
    console=None,
) -> list:
    """Run the command; returns the Results. Raises SynthesisError / VocoderError with a message."""
    from rich.console import Console
    from rich.table import Table

    from tts_cli.synthesis import SynthesisError, Synthesizer, read_input_file, resolve_model
    from tts_cli.audio import save_wav as write_wav, wav_bytes

    console = console or Console(stderr=True)
    if input_file is None and (text is None or not text.strip()):
        raise SynthesisError("nothing to say: give a TEXT argument ('-' reads stdin) or -i/--input-file FILE")
    if input_file is not None and text:
        raise SynthesisError("give either a TEXT argument or -i/--input-file, not both")
    if text == "-":
        text = sys.stdin.read()
    with _plain_warnings(console):
        model_path = resolve_model(model, run)
        synth = Synthesizer(model_path, vocoder=vocoder, device=device, precision=precision, batch_size=batch_size)
        console.print(f"[bold]voice[/] {model_path} · vocoder {synth.vocoder.describe()}", highlight=False)
        if synth.vocoder.name == "griffin-lim" and vocoder is None:
            console.print("[dim]no --vocoder given: Griffin-Lim (robotic); train one with "
                          "`tts train --model hifigan WORK --out RUN`[/]", highlight=False)
        controls = dict(speaker=speaker, speed=speed, pitch_shift=pitch_shift, pitch_scale=pitch_scale,
                        energy_scale=energy_scale, text_type=text_type)
        rows: list[tuple[str, object, str]] = []
        results = []
        if input_file is None:
            result = synth.synthesize(text, **controls)
            results.append(result)
            if output == "-":
                sys.stdout.buffer.write(wav_bytes(result.wav, result.sample_rate))
                sys.stdout.buffer.flush()
                stem, where = Path("tts_output"), "stdout"
            else:
                out = Path(output)
                write_wav(out, result.wav, result.sample_rate)
                stem, where = out.with_suffix(""), str(out)
            extra = _save_extras(stem, result, save_mel, save_durations)
            rows.append(("1", result, where + "".join(f", {p}" for p in extra)))
        else:
            items = read_input_file(input_file)
            if not items:
                raise SynthesisError(f"{input_file}: no lines to synthesise")
            out_dir = Path(output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            from rich.progress import Progress

            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("synthesize", total=len(items))
                for b in range(0, len(items), batch_size):
                    batch = items[b:b + batch_size]
                    try:
                        res = synth.synthesize_many([t for _, t in batch], ids=[u for u, _ in batch], **controls)
                    except SynthesisError:  # one bad line must not sink the batch: go one by one
                        res = []
                        for uid, t in batch:
                            try:
                                res += synth.synthesize_many([t], ids=[uid], **controls)
                            except SynthesisError as e1:
                                console.print(f"[red]{input_file}: {uid}: {e1}[/]", highlight=False)
                        del e
                    for r in res:
                        path = write_wav(out_dir / f"{r.id}.wav", r.wav, r.sample_rate)
                        extra = _save_extras(out_dir / r.id, r, save_mel, save_durations)
                        rows.append((r.id, r, str(path) + "".join(f", {p}" for p in extra)))
                        results.append(r)
                    progress.advance(task, len(batch))
        table = Table(title="tts synthesize", caption="RTF = compute time / audio duration (lower is faster)")
        for col in ("utterance", "audio s", "compute s", "RTF", "written"):
            table.add_column(col, justify="right" if col in ("audio s", "compute s", "RTF") else "left")
        for uid, r, where in rows:
            table.add_row(uid, f"{r.seconds:.2f}", f"{r.compute_s:.3f}", f"{r.rtf:.3f}", where)
        console.print(table)
        if input_file is not None and len(results) < len(items):
            raise SynthesisError(f"{len(items) - len(results)} of {len(items)} lines failed (see above)")
    return results


__all__ = ["synthesize_command"]
