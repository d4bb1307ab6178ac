"""Bundled voices: a trained FastPitch (+ vocoder) shipped in the repository, ready to speak.

A voice is a folder `src/tts_cli/resources/voices/<name>/` holding `voice.json` and the files it lists:

    voice.json      format_version, name, language, speakers [names in id order], sample_rate,
                    licence (SPDX id), attribution, description,
                    files {"acoustic": "fastpitch.pt", "vocoder": "hifigan.pt" | null (the default
                           vocoder: the universal HiFi-GAN V1, `tts_cli.inference.vocoders`),
                           "notices": ["LICENSE", "NOTICE", ...],
                           "aligner": "aligner.pt" (optional)},
                    acoustic / vocoder (what the files hold), training (free-form summary), created
    fastpitch.pt    an inference-only tts-cli checkpoint (weights, config, symbols, text/audio
                    settings, pitch statistics, speakers; no optimizer, aligner, RNG ...)
    hifigan.pt      the HiFi-GAN generator with its weight norm folded in (no discriminators)
    aligner.pt      optional: a `tts align` aligner trained on the voice's corpus (weights, symbols,
                    settings; no optimizer), where `tts align` on new recordings starts by default
                    (`align: init_from: auto`): from scratch, 10 minutes of speech align poorly

Folders without voice.json (e.g. `src/tts_cli/resources/voices/kokoro/`, the teacher's style vectors) are not
voices and are skipped. `src/tts_cli/resources/voices/default.txt` (one line: a voice name) picks the default;
without it the only (or alphabetically first) voice is the default. `TTS_VOICES_DIR`
(os.pathsep-separated folders) is searched before the package's own `tts_cli/resources/voices/`
(`tts_cli.resources`: inside the wheel; `src/tts_cli/resources/voices/` in a checkout).

`export_voice` makes a voice from `tts train` checkpoints. With fp16 (the default) floating
tensors are stored as float16, halving the files; loaders cast them back to float32
(`tts_cli.checkpoints.load.build_fastpitch`, `tts_cli.checkpoints.hifigan.build_generator`), so synthesis runs in
float32 as before: fp16 keeps ~3 significant digits per weight, far below what changes the audio.
Scalars (the pitch mean/std buffers) stay float32.

Light at import (no torch): `tts voices` and `tts --help` import this module.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tts_cli.errors import VoiceError
from tts_cli.resources import VOICES, resource_dir

log = logging.getLogger(__name__)

VOICE_FORMAT_VERSION = 1
VOICE_FILE = "voice.json"
DEFAULT_FILE = "default.txt"
ACOUSTIC_FILE = "fastpitch.pt"
VOCODER_FILE = "hifigan.pt"
ALIGNER_FILE = "aligner.pt"
VOICES_DIRS: tuple[Path, ...] = (resource_dir(VOICES),)  # tts_cli/resources/voices, inside the package
ENV_DIRS = "TTS_VOICES_DIR"
BUNDLED = "bundled"  # `--init-from bundled` / `bundled:<name>`
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# Training-only state a voice never needs.
_TRAINING_KEYS = ("optimizer", "scheduler", "scaler", "rng", "sampler", "discriminator", "optimizer_d",
                  "scheduler_d", "scaler_d", "train", "hifigan_train", "best_val_loss", "best_metric",
                  "best_metric_value", "epoch", "ema", "ema_decay", "training_weights", "run_config")
HOW_TO_MAKE = ("make one from a training run: tts export-voice --model RUN --vocoder VOCODER_RUN --name NAME "
               "--out VOICES --licence SPDX-ID, then export TTS_VOICES_DIR=VOICES")


@dataclass
class Voice:
    name: str
    path: Path  # the voice folder
    metadata: dict  # voice.json
    size_bytes: int  # all files of the folder

    @property
    def files(self) -> dict:
        return self.metadata.get("files") or {}

    @property
    def acoustic_path(self) -> Path:
        return self.path / self.files["acoustic"]

    @property
    def vocoder_path(self) -> Path | None:
        """The HiFi-GAN checkpoint, or None: the voice speaks through the default vocoder (the
        universal HiFi-GAN V1, `tts_cli.inference.vocoders.load_default_vocoder`)."""
        v = self.files.get("vocoder")
        return self.path / v if v else None

    @property
    def aligner_path(self) -> Path | None:
        """The aligner trained on the voice's corpus (`tts align` starts there), or None."""
        a = self.files.get("aligner")
        return self.path / a if a else None

    @property
    def language(self) -> str:
        return str(self.metadata.get("language") or "")

    @property
    def speakers(self) -> list[str]:
        return [str(s) for s in self.metadata.get("speakers") or []]

    @property
    def sample_rate(self) -> int | None:
        sr = self.metadata.get("sample_rate")
        return int(sr) if sr else None

    @property
    def licence(self) -> str:
        return str(self.metadata.get("licence") or self.metadata.get("license") or "NOASSERTION")

    @property
    def vocoder_label(self) -> str:
        if self.vocoder_path is None:
            return "default (universal V1)"
        variant = (self.metadata.get("vocoder") or {}).get("variant")
        return f"HiFi-GAN {variant}" if variant else "HiFi-GAN"


# ----------------------------------------------------------------------------- finding voices

def voices_dirs() -> list[Path]:
    """Where voices are looked for, first match wins: $TTS_VOICES_DIR, then the package's tts_cli/resources/voices/."""
    env = [Path(p) for p in os.environ.get(ENV_DIRS, "").split(os.pathsep) if p.strip()]
    return env + list(VOICES_DIRS)


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _listed_file(folder: Path, rel: Any, what: str) -> str:
    where = folder / VOICE_FILE
    if not isinstance(rel, str) or not rel.strip():
        raise VoiceError(f"{where}: files.{what} must be a file name, got {rel!r}")
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise VoiceError(f"{where}: files.{what} {rel!r} must be a path inside the voice folder")
    if not (folder / p).is_file():
        raise VoiceError(f"{folder}: voice.json lists {what} file {rel!r}, which is missing")
    return rel


def load_voice(folder: str | os.PathLike) -> Voice:
    """The voice in `folder`; VoiceError naming the folder if voice.json is missing, malformed or
    lists a file that is not there."""
    folder = Path(folder)
    meta_path = folder / VOICE_FILE
    if not meta_path.is_file():
        raise VoiceError(f"{folder}: not a voice (no {VOICE_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise VoiceError(f"{meta_path}: unreadable ({e})") from None
    except json.JSONDecodeError as e:
        raise VoiceError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise VoiceError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise VoiceError(f"{meta_path}: unknown format_version {version!r}")
    if version > VOICE_FORMAT_VERSION:
        raise VoiceError(f"{meta_path}: written by a newer tts-cli (voice format {version}; this version reads up "
                         f"to {VOICE_FORMAT_VERSION}); upgrade tts-cli")
    if meta.get("name") not in (None, folder.name):
        raise VoiceError(f"{meta_path}: names the voice {meta['name']!r} but the folder is {folder.name!r}; "
                         "rename one so they agree")
    files = meta.get("files")
    if not isinstance(files, dict):
        raise VoiceError(f"{meta_path}: needs a `files` object with at least \"acoustic\"")
    _listed_file(folder, files.get("acoustic"), "acoustic")
    if files.get("vocoder") is not None:
        _listed_file(folder, files["vocoder"], "vocoder")
    notices = files.get("notices") or []
    if not isinstance(notices, list):
        raise VoiceError(f"{meta_path}: files.notices must be a list of file names")
    for n in notices:
        _listed_file(folder, n, "notice")
    for key in ("speakers",):
        if key in meta and not isinstance(meta[key], list):
            raise VoiceError(f"{meta_path}: {key} must be a list")
    return Voice(name=folder.name, path=folder, metadata=meta, size_bytes=_folder_size(folder))


def list_voices(errors: list | None = None) -> list[Voice]:
    """Every usable voice, sorted by name (a name in an earlier voices folder hides later ones).

    Folders without voice.json are not voices and are skipped silently; broken voices are skipped
    with their VoiceError appended to `errors` (logged as a warning when no list is given)."""
    found: dict[str, Voice] = {}
    for root in voices_dirs():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name in found or not (folder / VOICE_FILE).exists():
                continue
            try:
                found[folder.name] = load_voice(folder)
            except VoiceError as e:
                if errors is None:
                    log.warning("%s", e)
                else:
                    errors.append(e)
    return [found[n] for n in sorted(found)]


def _unknown(name: str) -> VoiceError:
    names = [v.name for v in list_voices(errors=[])]
    known = f"bundled voices: {', '.join(names)}" if names else f"no voice is bundled ({HOW_TO_MAKE})"
    return VoiceError(f"unknown voice {name!r}; {known} (see `tts voices`)")


def get_voice(name: str) -> Voice:
    """The voice called `name`; VoiceError listing the known voices if there is none."""
    for root in voices_dirs():
        folder = root / name
        if _NAME.match(name or "") and (folder / VOICE_FILE).is_file():
            return load_voice(folder)
    raise _unknown(name)


def default_voice_name() -> tuple[str | None, Path | None]:
    """(name, default.txt that named it) from the first voices folder with a default.txt."""
    for root in voices_dirs():
        f = root / DEFAULT_FILE
        if f.is_file():
            lines = [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines()]
            names = [ln for ln in lines if ln and not ln.startswith("#")]
            if names:
                return names[0], f
    return None, None


def same_language(a: str, b: str) -> int:
    """2 for the same language tag (en-us, en-US), 1 for the same language (en-us, en), else 0."""
    a, b = str(a or "").strip().lower().replace("_", "-"), str(b or "").strip().lower().replace("_", "-")
    if not a or not b:
        return 0
    return 2 if a == b else int(a.split("-")[0] == b.split("-")[0])


def default_voice(language: str | None = None) -> Voice | None:
    """The voice `default.txt` names, else the only / first voice, else None. With `language`
    (a workspace's, to fine-tune from): the bundled voice of that language when there is one
    (same tag first, then same language), else the default: a base voice that already speaks
    the language learns a new speaker from minutes of audio far better than one of another."""
    if language:
        ranked = sorted(((same_language(v.language, language), v.name, v) for v in list_voices(errors=[])),
                        key=lambda t: (-t[0], t[1]))
        if ranked and ranked[0][0] > 0:
            default = default_voice()
            if default is not None and same_language(default.language, language) == ranked[0][0]:
                return default
            return ranked[0][2]
    name, source = default_voice_name()
    if name is not None:
        try:
            return get_voice(name)
        except VoiceError as e:
            raise VoiceError(f"{source} names {name!r} as the default voice, but: {e}") from None
    voices = list_voices()
    return voices[0] if voices else None


def voice_of(path: str | os.PathLike | None) -> Voice | None:
    """The voice whose folder holds the file `path`, if it is one (else None; broken voices too)."""
    if path is None:
        return None
    folder = Path(path).resolve().parent
    if not (folder / VOICE_FILE).is_file():
        return None
    try:
        return load_voice(folder)
    except VoiceError:
        return None


def resolve_init_from(spec: str | os.PathLike | None, part: str = "acoustic",
                      language: str | None = None) -> Path | None:
    """`bundled` (the default voice; with `language`, the bundled voice of that language if there
    is one, `default_voice`) or `bundled:<name>` -> that voice's acoustic (or vocoder, or
    aligner) checkpoint; any other value is a path, returned as is. VoiceError when no voice fits."""
    if spec is None or str(spec).strip() == "":
        return None
    s = str(spec).strip()
    if s != BUNDLED and not s.startswith(BUNDLED + ":"):
        return Path(s)
    name = s.partition(":")[2].strip()
    hint = ("pass a checkpoint instead (--init-from path/to/fastpitch.pt, ours or NVIDIA's; in a recipe "
            "`train: {init_from: PATH}`)")
    if name:
        try:
            voice = get_voice(name)
        except VoiceError as e:
            raise VoiceError(f"--init-from {s}: {e}; or {hint}") from None
    else:
        voice = default_voice(language)
        if voice is None:
            where = ", ".join(str(d) for d in voices_dirs())
            raise VoiceError(f"--init-from {s}: no voice is bundled (none with a {VOICE_FILE} in {where}); {hint}, "
                             f"or {HOW_TO_MAKE}")
    if part == "aligner":
        if voice.aligner_path is None:
            raise VoiceError(f"init_from {s}: voice {voice.name!r} ships no aligner (aligner.pt)")
        return voice.aligner_path
    if part == "vocoder":
        if voice.vocoder_path is None:
            raise VoiceError(f"--init-from {s}: voice {voice.name!r} has no HiFi-GAN vocoder of its own "
                             "(it uses the default one: try --init-from universal)")
        return voice.vocoder_path
    return voice.acoustic_path


def print_voices(console=None) -> int:
    """`tts voices`: a table of the bundled voices and the default; 1 if some voice is broken."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    errors: list[VoiceError] = []
    voices = list_voices(errors=errors)
    where = ", ".join(str(d) for d in voices_dirs())
    if voices:
        table = Table(title="bundled voices")
        for col, justify in (("name", "left"), ("language", "left"), ("speakers", "left"), ("sample rate", "right"),
                             ("vocoder", "left"), ("size MB", "right"), ("licence", "left")):
            table.add_column(col, justify=justify)
        for v in voices:
            table.add_row(v.name, v.language, ", ".join(v.speakers), str(v.sample_rate or ""), v.vocoder_label,
                          f"{v.size_bytes / 1e6:.1f}", v.licence)
        console.print(table)
    else:
        console.print(f"no voices bundled in {where}; {HOW_TO_MAKE}", highlight=False)
    for e in errors:
        console.print(f"[red]broken voice:[/] {e}", highlight=False)
    try:
        default = default_voice()
    except VoiceError as e:
        console.print(f"[red]default voice:[/] {e}", highlight=False)
        return 1
    if default is not None:
        name, source = default_voice_name()
        why = f"named in {source}" if name else ("the only voice" if len(voices) == 1 else "the first by name; "
                                                 f"write a name to {default.path.parent / DEFAULT_FILE} to choose")
        console.print(f"default voice: [bold]{default.name}[/] ({why}); `tts synthesize \"Hola\"` uses it",
                      highlight=False)
    return 1 if errors else 0


# ----------------------------------------------------------------------------- export
