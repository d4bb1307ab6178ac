"""Every error tts-cli raises on purpose, under one root.

`TTSError` is what the command line catches (one handler in cli.py): its message is written for
the user and names the file, setting or step at fault and what to do. Anything else that escapes
is a bug and keeps its traceback. The classes below say which part of the pipeline refused, so
Python callers can catch one part; none of them carries more than its message (except
RequestError, whose field name and HTTP status the server reports).
"""
from __future__ import annotations


class TTSError(Exception):
    """The root: a refusal with a message for the user."""


# ----------------------------------------------------------------------------- settings and input

class ConfigError(TTSError):
    """A setting, option or recipe with a value that cannot be used."""


class TrainConfigError(ConfigError):
    """Bad train settings or run folder."""


class DatasetError(TTSError):
    """The path is not a readable dataset."""


class AudioError(TTSError):
    """An audio file that cannot be used (the message is a short reason)."""


class WorkspaceError(TTSError):
    """A workspace is missing or lacks the artifacts a stage needs."""


class PreprocessError(TTSError):
    """DATA is not a readable dataset, or nothing survived preprocessing."""


class AlignmentError(TTSError):
    """Durations cannot be made for this workspace (no usable aligner, teacher or clip)."""


class PitchError(TTSError):
    """Pitch cannot be extracted as asked (unknown method, bad range)."""


# ----------------------------------------------------------------------------- text

class PhonemizerError(TTSError):
    """espeak-ng is missing or the language is unknown."""


class EspeakError(PhonemizerError):
    """espeak-ng could not be loaded or refused a request."""


# ----------------------------------------------------------------------------- models and runs

class CheckpointError(TTSError):
    """A file is not a usable checkpoint (the message names the file and the reason)."""


class TrainingError(TTSError):
    """A run that cannot go on (e.g. K non-finite losses in a row)."""


# ----------------------------------------------------------------------------- speaking

class SynthesisError(TTSError):
    """Bad input or model for synthesis."""


class VocoderError(TTSError):
    """A vocoder that cannot be loaded or does not fit the acoustic model."""


class VoiceError(TTSError):
    """A voice that cannot be found or used (the message names the folder and the reason)."""


class OnnxError(TTSError):
    """An ONNX voice folder that cannot be used."""


class ExportError(TTSError):
    """An export that cannot be done."""


class ServeError(TTSError):
    """A server that must not or cannot start."""


class RequestError(TTSError):
    """A request the speech service cannot serve; `param` names the field at fault."""

    def __init__(self, message: str, param: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.status = param, status


# ----------------------------------------------------------------------------- evaluation and teacher

class EvaluateError(TTSError):
    """Nothing can be evaluated (no model, no utterances)."""


class ExtraUnavailable(TTSError):
    """An optional extra (its package or weights) is missing; the message says what to install."""


class ASRUnavailable(ExtraUnavailable):
    """The speech recogniser cannot be loaded."""


class DNSMOSUnavailable(ExtraUnavailable):
    """speechmos / onnxruntime missing or unusable."""


class TeacherUnavailable(ExtraUnavailable):
    """The [teacher] extra (or the vendored voices) is missing."""


class TeacherInputError(TTSError):
    """This text cannot be spoken by the teacher (nothing to say, or too long)."""


class CorpusError(TTSError):
    """The corpus cannot be made as asked (bad sentence file, clashing folder, missing teacher)."""
