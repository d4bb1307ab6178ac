"""The workspace contract: where every stage reads and writes its artifacts.

Every artifact is written atomically (temp file in the same folder + os.replace), so a
killed run never leaves a half-written file behind; a re-run simply redoes it.
"""
from __future__ import annotations

import io
import json
import os
import tempfile

from tts_cli.errors import WorkspaceError

# mkstemp makes 0600 files; artifacts get the permissions an ordinary open() would give
_UMASK = os.umask(0)
os.umask(_UMASK)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return atomic_write_text(path, text)


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be created in `folder` (a probe, so read-only mounts count too)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _existing_parent(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_file(path: str | os.PathLike, option: str = "-o", error: type[Exception] = WorkspaceError) -> Path:
    """Refuse, before any work, an output file that cannot be written: `error` (the caller's own
    error type, so the command line reports it as one line) naming the option, the path and why."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{option} {path}: is a folder; give a file name (e.g. {path / ('out' + (path.suffix or '.wav'))})")
    where = _existing_parent(path.parent)
    if not where.is_dir():
        raise error(f"{option} {path}: {where} is a file, not a folder")
    if not _can_create_in(where):
        raise error(f"{option} {path}: cannot write in {where} (read-only or permission denied)")
    return path


def check_output_dir(path: str | os.PathLike, option: str = "--out", error: type[Exception] = WorkspaceError) -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be written (see check_output_file)."""
    path = Path(path)
    where = _existing_parent(path)
    if not where.is_dir():
        what = "is a file, not a folder" if where == path.absolute() else f"{where} is a file, not a folder"
        raise error(f"{option} {path}: {what}")
    if not _can_create_in(where):
        raise error(f"{option} {path}: cannot write in {where} (read-only or permission denied)")
    return path


def remove_stale_temp_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete `.NAME.*.tmp` files that atomic writes killed mid-way (kill -9, power loss) left in
    `folder`; call it only while no other process writes there (e.g. under a RunLock)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in (folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")):
        if p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace folder (see README, "Workspace layout")."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    # files
    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def symbols(self) -> Path:
        return self.root / "symbols.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected.jsonl"

    @property
    def aligner_ckpt(self) -> Path:
        return self.root / "aligner.pt"

    @property
    def align_report(self) -> Path:
        return self.root / "align_report.jsonl"

    @property
    def pitch_stats(self) -> Path:
        return self.root / "pitch_stats.json"

    @property
    def pitch_report(self) -> Path:
        return self.root / "pitch_report.jsonl"

    # folders
    def dir(self, name: str) -> Path:
        """A per-utterance artifact folder: wavs, mels, durations, alignments, pitch, energy, gta."""
        return self.root / name

    def wav_path(self, utt_id: str) -> Path:
        return self.root / "wavs" / f"{utt_id}.wav"

    def mel_path(self, utt_id: str) -> Path:
        return self.root / "mels" / f"{utt_id}.npy"

    def duration_path(self, utt_id: str) -> Path:
        return self.root / "durations" / f"{utt_id}.npy"

    def pitch_path(self, utt_id: str) -> Path:
        return self.root / "pitch" / f"{utt_id}.npy"

    def energy_path(self, utt_id: str) -> Path:
        return self.root / "energy" / f"{utt_id}.npy"

    def load_manifest(self, split: str | None = None) -> list[dict]:
        """Manifest rows (optionally one split); a clear error when the workspace is missing."""
        if not self.manifest.exists():
            raise WorkspaceError(
                f"{self.root}: no manifest.jsonl here; run `tts preprocess DATA --out {self.root}` first"
            )
        rows = read_jsonl(self.manifest)
        if split is not None:
            rows = [r for r in rows if r.get("split") == split]
        return rows

    def load_symbols(self) -> list[str]:
        if not self.symbols.exists():
            raise WorkspaceError(f"{self.root}: no symbols.json; run `tts preprocess` first")
        return json.loads(self.symbols.read_text(encoding="utf-8"))["symbols"]

    def load_config(self, missing_ok: bool = False) -> dict:
        """WORK/config.yaml; {} for a workspace without one when `missing_ok`."""
        import yaml

        if not self.config.exists():
            if missing_ok:
                return {}
            raise WorkspaceError(f"{self.root}: no config.yaml; run `tts preprocess` first")
        return yaml.safe_load(self.config.read_text(encoding="utf-8")) or {}

    def language(self) -> str | None:
        """The text language `tts preprocess` wrote into config.yaml (None without one)."""
        return (self.load_config(missing_ok=True).get("text") or {}).get("language")


class RunFolder:
    """A `tts train --out` folder, read side: which checkpoint the run offers.

    The rule, the same for synthesize, evaluate, export and export-voice: best.pt (the checkpoint
    the run chose by its `best_metric`), else last.pt (no evaluation has kept one yet); looked
    for in RUN/checkpoints/, then in RUN/ itself (a folder of copied checkpoint files)."""

    NAMES = ("best.pt", "last.pt")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.checkpoints_dir = self.path / "checkpoints"

    def candidates(self) -> list[Path]:
        return [folder / name for folder in (self.checkpoints_dir, self.path) for name in self.NAMES]

    def offered_checkpoint(self) -> Path | None:
        """The checkpoint the run offers, or None where it has saved none yet."""
        return next((p for p in self.candidates() if p.is_file()), None)


def resolve_checkpoint(path: str | os.PathLike, error: type[Exception] = WorkspaceError) -> Path:
    """A checkpoint file as given, or the one a run folder offers (RunFolder's rule); `error`
    (the caller's error class) names the path and the reason otherwise."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_dir():
        raise error(f"{p}: no such checkpoint file or run folder")
    found = RunFolder(p).offered_checkpoint()
    if found is None:
        raise error(f"{p}: no checkpoints/best.pt or checkpoints/last.pt; is it a `tts train --out` folder "
                    "and has the run saved a checkpoint yet?")
    return found
