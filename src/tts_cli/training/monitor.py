"""What a run shows and leaves behind while it trains: RUN/metrics.jsonl (+ TensorBoard when
installed), the progress bar, and Ctrl-C / SIGTERM turned into "save and stop"."""
from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

from tts_cli.workspace import atomic_write_jsonl, read_jsonl

log = logging.getLogger(__name__)


class MetricsLog:
    """RUN/metrics.jsonl (one JSON object per logged step) + TensorBoard when installed.

    JSONL is appended line by line (a log, not an artifact); on resume the lines past the resumed
    step are dropped so the file always describes the run that the checkpoints continue.
    """

    def __init__(self, run_dir: Path, resume_step: int | None):
        self.path = run_dir / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            try:
                rows = read_jsonl(self.path)
            except json.JSONDecodeError:  # a torn last line from a kill: keep the readable ones
                rows = []
                for line in self.path.read_text(encoding="utf-8").splitlines():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        break
            atomic_write_jsonl(self.path, [r for r in rows if int(r.get("step", 0)) <= resume_step])
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self.file = self.path.open("a", encoding="utf-8")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        except Exception:  # tensorboard not installed: JSONL only
            self.tb = None

    def write(self, row: dict) -> None:
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.tb is not None:
            prefix = {"val": "val/", "eval": "eval/"}.get(row.get("kind"), "train/")
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self.tb.add_scalar(prefix + k, v, row["step"])

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


class StopFlag:
    """Ctrl-C / SIGTERM set a flag; the loop saves and exits after the current step.
    A second Ctrl-C restores the default handler so a stuck run can still be killed."""

    def __init__(self):
        self.requested = False
        self._old: dict = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self.requested = True
        log.warning("received %s: saving a checkpoint after this step", signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


class TrainProgress:
    """A rich progress bar: step, each loss term, lr, frames/s (no-op when disabled)."""

    def __init__(self, enabled: bool, total: int, start: int):
        self.enabled, self.total, self.start = enabled, total, start
        self.bar = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
            )
            self.bar.__enter__()
            self.task_id = self.bar.add_task("train", total=self.total, completed=self.start, info="")
        return self

    def advance(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task_id, completed=step)

    def update(self, step: int, terms: dict, lr: float, fps: float | None) -> None:
        if self.bar is None:
            return
        info = " ".join(f"{k} {v:.3f}" for k, v in terms.items())
        info += f" lr {lr:.2e}" + (f" {fps / 1000:.1f}k fr/s" if fps else "")
        self.bar.update(self.task_id, completed=step, info=info)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False
