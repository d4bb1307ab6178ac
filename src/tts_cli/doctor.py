"""`tts doctor`: is everything the toolkit needs installed and working? One line per check."""
from __future__ import annotations

import platform
import sys

from tts_cli.config import RECIPES_DIR, find_recipe, load_config
from tts_cli.inference.voices import default_voice, list_voices, voices_dirs
from tts_cli.text import espeak_info, phonemize


def _checks():
    yield "python", lambda: platform.python_version() + ("" if sys.version_info >= (3, 10) else " (need >= 3.10)"), \
        "install Python 3.10 or newer"

    def torch_check():
        import torch

        return torch.__version__
    yield "torch", torch_check, "make install  (or: pip install torch==2.13.0)"

    def cuda_check():
        import torch

        if torch.cuda.is_available():
            return f"available: {torch.cuda.get_device_name(0)}"
        return "not available (CPU only; fine for preprocessing, small models and synthesis)"
    yield "cuda", cuda_check, "install a CUDA build of torch: make install TORCH='torch --index-url ...'"

    def espeak_check():
        info = espeak_info()
        return f"{info['version']} from {info['source']} ({info['library_path']})"
    yield "espeak-ng", espeak_check, "pip install espeakng-loader  (or apt install libespeak-ng1)"

    def phonemizer_check():
        import phonemizer

        return phonemizer.__version__
    yield "phonemizer", phonemizer_check, "pip install phonemizer"

    def librosa_check():
        import librosa

        return librosa.__version__
    yield "librosa", librosa_check, "pip install librosa"

    def phonemise_check():
        out = phonemize("¿Qué tal? Hola, mundo.", "es")
        if not out.strip():
            raise RuntimeError("empty phonemes")
        return f"'¿Qué tal? Hola, mundo.' -> {out}"
    yield "phonemise es", phonemise_check, "check espeak-ng above; run: tts doctor"

    def voices_check():
        from tts_cli.checkpoints.load import build_fastpitch, load_checkpoint

        errors: list = []
        found = list_voices(errors=errors)
        if errors:
            raise RuntimeError("; ".join(str(e) for e in errors))
        if not found:
            raise RuntimeError(f"no voice in {', '.join(str(d) for d in voices_dirs())}")
        voice = default_voice()
        build_fastpitch(load_checkpoint(voice.acoustic_path), aligner=False)  # loads, weights fit
        return f"{', '.join(v.name for v in found)} (default {voice.name} loads) in {voice.path.parent}"
    yield "voices", voices_check, "reinstall tts-cli: its wheel carries the bundled voice (tts_cli/resources/voices)"

    def recipes_check():
        names = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
        if not names:
            raise RuntimeError(f"no recipe in {RECIPES_DIR}")
        for name in names:
            find_recipe(name)
            load_config(name)
        return f"{', '.join(names)} in {RECIPES_DIR}"
    yield "recipes", recipes_check, "reinstall tts-cli: its wheel carries the recipes (tts_cli/resources/recipes)"


def run_doctor() -> bool:
    """Print each check as OK or FAIL with a one-line fix; True when all pass."""
    from rich.console import Console

    console = Console()
    ok_all = True
    for name, check, fix in _checks():
        try:
            detail = check()
            console.print(f"[green]OK  [/green] {name:<13} {detail}", highlight=False)
        except Exception as e:  # each check reports its own failure and the rest go on
            ok_all = False
            console.print(f"[red]FAIL[/red] {name:<13} {type(e).__name__}: {e}\n       fix: {fix}", highlight=False)
    return ok_all
