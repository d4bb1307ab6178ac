"""What every `tts train` stage does around the Trainer, whatever the model: the recipe, the run
folder (start, resume or refuse), logging and DDP set-up, settings overrides and the closing summary.

Checkpoints of a run are written and read back through `write_training_checkpoint` /
`load_training_checkpoint` (our format, plus what resuming needs).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

from tts_cli.checkpoints.format import CheckpointHeader, save_checkpoint
from tts_cli.checkpoints.load import load_checkpoint
from tts_cli.config import dump_yaml, find_recipe
from tts_cli.errors import CheckpointError, ConfigError, TrainConfigError, TrainingError
from tts_cli.training.runtime import cleanup_distributed, setup_distributed
from tts_cli.training.settings import TrainSettings
from tts_cli.workers import usable_cores
from tts_cli.workspace import atomic_write_text, check_output_dir, remove_stale_temp_files

log = logging.getLogger("tts_cli.train")


# ----------------------------------------------------------------------------- config

def read_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def load_train_config(config: str | Path | dict | None, presets: Mapping, default: str,
                      presets_label: str = "presets") -> dict:
    """{model: {...}, train: {...}, ...} from a preset name of `presets`, a recipe or a dict."""
    if config is None:
        return {"model": {"preset": default}, "train": {}}
    if isinstance(config, dict):
        cfg = dict(config)
    elif str(config).lower() in presets:
        cfg = {"model": {"preset": str(config).lower()}}
    else:
        try:
            path = find_recipe(config)
        except ConfigError as e:
            raise TrainConfigError(f"{e}; {presets_label}: {', '.join(presets)}") from None
        cfg = read_yaml(path)
    cfg.setdefault("model", {})
    cfg.setdefault("train", {})
    return cfg


def from_recipe(cls, section: dict):
    """`cls.from_dict(section)` (a settings or model config class); a bad value is the recipe's
    mistake, reported as a TrainConfigError naming it, not a traceback."""
    try:
        return cls.from_dict(section)
    except (TypeError, ValueError, ConfigError) as e:
        raise TrainConfigError(str(e)) from None


def train_settings(train_dict: dict, **overrides):
    """TrainSettings from a `train:` section plus the command-line values given (None = not given)."""
    merged = {**train_dict, **{k: v for k, v in overrides.items() if v is not None}}
    settings = from_recipe(TrainSettings, merged)
    settings.num_workers = loader_workers(settings.num_workers)
    return settings


def loader_workers(requested: int) -> int:
    """Data-loading workers that leave the training process a core of its own: on a 2-core
    machine 4 workers only compete with the model (and torch warns on every run)."""
    cores = usable_cores()
    usable = max(0, cores - 1)
    if requested > usable:
        log.info("data-loading workers %d -> %d (%d CPU cores)", requested, usable, cores)
        return usable
    return requested


# ----------------------------------------------------------------------------- the run folder

def open_run(run: Path, kind: str, config, resolve: Callable[[object], dict], resume: bool,
             init_from, is_main: bool) -> tuple[dict, dict | None]:
    """(resolved config, checkpoint to resume from or None) for the run folder RUN.

    `--resume` with RUN/checkpoints/last.pt continues that run with its saved config; without
    `--resume` an existing run is refused rather than overwritten."""
    last = run / "checkpoints" / "last.pt"
    if resume and last.exists():
        ckpt = load_training_checkpoint(last)
        header = CheckpointHeader.of(ckpt)
        if header.kind != kind:
            raise TrainConfigError(f"{last}: a {header.kind} run; resume it with --model {header.kind}")
        if init_from:
            raise TrainConfigError("--resume and --init-from exclude each other: resume restores the run in --out")
        saved = run / "config.yaml"
        return resolve(read_yaml(saved) if saved.exists() else
                       {"model": header.config, "train": ckpt.get("train", {})}), ckpt
    if resume and is_main:
        log.warning("%s: nothing to resume yet; starting a new run", run)
    if last.exists():
        raise TrainConfigError(f"{run} already holds a run (checkpoints/last.pt); "
                               "add --resume to continue it or choose another --out")
    return resolve(config), None


LOCK_FILE = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextmanager
def run_lock(run: Path, is_main: bool = True, option: str = "--out") -> Iterator[None]:
    """Hold RUN/.lock for the whole run, so a second `tts train` (or `--resume`) into the same
    folder is refused instead of mixing two runs' files; then remove the `.*.tmp` files that
    interrupted atomic writes left there (no one else writes while we hold the lock).

    The lock is an flock (POSIX; released by the kernel when the holder dies, even by kill -9, so
    a stale file is simply taken over), and the file holds the holder's pid for the message; it
    is removed when the run ends. Without fcntl (Windows) a lock file whose pid is no longer
    running is taken over. Only the main DDP process locks (the ranks share one run).
    """
    if not is_main:
        yield
        return
    check_output_dir(run, option, TrainConfigError)
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    path = run / LOCK_FILE
    fd = _acquire(path, run, option)
    try:
        removed = remove_stale_temp_files(run)
        if removed:
            log.warning("%s: removed %d unfinished temporary file(s) of an interrupted run (%s)", run, len(removed),
                        ", ".join(p.name for p in removed[:3]) + (" ..." if len(removed) > 3 else ""))
        yield
    finally:
        path.unlink(missing_ok=True)  # before the flock goes: a waiting opener then sees a new file
        os.close(fd)
        if created and not any(run.iterdir()):  # a run refused before it wrote anything
            run.rmdir()


def _acquire(path: Path, run: Path, option: str) -> int:
    """An open, locked descriptor of `path` holding our pid; TrainConfigError when another live
    process holds it."""
    try:
        import fcntl
    except ImportError:  # no flock: trust the pid in the file
        fcntl = None
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        holder = os.read(fd, 64).decode("ascii", "replace").strip()
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                busy = False
            except BlockingIOError:
                busy = True
        else:
            busy = holder.isdigit() and int(holder) != os.getpid() and _pid_alive(int(holder))
        if busy:
            os.close(fd)
            raise TrainConfigError(f"{run} is in use by another training run (pid {holder or '?'}): wait for it "
                                   f"to finish, or choose another {option}")
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # its holder removed it as we opened it: lock the new file instead
            os.close(fd)
            continue
        if holder.isdigit() and int(holder) != os.getpid():
            log.info("%s: taking over the lock of pid %s, which is no longer running", run, holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd
    raise TrainConfigError(f"{path}: could not take the run lock (the file keeps changing)")


def write_run_config(run: Path, resolved: dict) -> None:
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / "config.yaml", dump_yaml(resolved))


# ----------------------------------------------------------------------------- process set-up

def setup_logging(is_main: bool) -> None:
    ours = logging.getLogger("tts_cli")
    if not ours.handlers and not logging.getLogger().handlers:  # the app's own logging config wins
        from rich.logging import RichHandler

        ours.addHandler(RichHandler(show_path=False, show_time=False))
    ours.setLevel(logging.INFO if is_main else logging.ERROR)


@contextmanager
def distributed_run(device: str | None) -> Iterator[tuple]:
    """(DistInfo, torch.device) for this process (DDP from torchrun's env vars); torn down on exit."""
    dist_info, dev = setup_distributed(device)
    setup_logging(dist_info.is_main)
    try:
        yield dist_info, dev
        if dist_info.enabled:
            # the ranks tear down together: gloo may abort a rank that destroys its group while
            # rank 0 is still busy (the held-out check); not on an error, where a barrier could hang
            import torch.distributed as dist

            dist.barrier()
    finally:
        cleanup_distributed()


def write_training_checkpoint(path: Path, payload: dict) -> None:
    """Through `tts_cli.checkpoints.format.save_checkpoint` (atomic, self-describing, weights_only-safe)."""
    p = dict(payload)
    p.pop("format_version", None)
    save_checkpoint(path, p.pop("model"), p.pop("config"), p.pop("symbols", None), p.pop("step"), **p)


def load_training_checkpoint(path: Path) -> dict:
    """A checkpoint written by the training loop (weights_only, format-checked by tts_cli.checkpoints)."""
    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as e:
        raise TrainingError(str(e)) from None
    for key in ("optimizer", "scheduler", "sampler"):
        if key not in ckpt:
            raise TrainingError(f"{path}: not a resumable training checkpoint (no {key!r}); "
                                "use --init-from to fine-tune from it")
    return ckpt
