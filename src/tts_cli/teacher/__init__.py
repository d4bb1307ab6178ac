"""Offline teacher voices that speak our sentences to make training corpora (`tts make-corpus`).

Importing this package is cheap: onnxruntime and the model load when a teacher is created.
Needs the optional extra `[teacher]`.
"""
from __future__ import annotations

from tts_cli.errors import ConfigError
from tts_cli.teacher.kokoro import KokoroTeacher
from tts_cli.teacher.kokoro import unavailable_reason as kokoro_reason

TEACHERS = ("kokoro",)


def unavailable_reason(teacher: str = "kokoro") -> str | None:
    """Why `teacher` cannot run on this machine, or None when it can."""
    if teacher not in TEACHERS:
        return f"unknown teacher {teacher!r}: use one of {', '.join(TEACHERS)}"

    return kokoro_reason()


def load_teacher(teacher: str = "kokoro", voice: str = "ef_dora", speed: float = 1.0, threads: int = 1,
                 sample_rate: int = 22050, language: str = "es"):
    """A ready teacher object with `.synthesize(text)` / `.synthesize_many(texts)`."""
    if teacher not in TEACHERS:
        raise ConfigError(f"unknown teacher {teacher!r}: use one of {', '.join(TEACHERS)}")

    return KokoroTeacher(voice=voice, language=language, speed=speed, threads=threads, sample_rate=sample_rate)


__all__ = ["TEACHERS", "load_teacher", "unavailable_reason"]
