"""What the HTTP layer calls: voices by name, admission, and audio made sentence by sentence.

Models are loaded once and shared by all requests: the served model at start-up, other bundled
voices (`tts voices`) on their first request, reusing the default vocoder when they have none of
their own. Synthesis runs on a fixed pool of `workers` threads; at most `max_queue` requests are
admitted at a time (synthesizing or waiting for a worker), and a request beyond that is refused at
once (the app answers 503 + Retry-After), so memory and latency stay bounded under overload.

A text is cut into sentences by the Synthesizer's own `split_text`; each sentence is one job on
the pool, so a long text yields its first audio after one sentence, and concurrent requests take
turns sentence by sentence instead of waiting for whole texts.

A client's voice string is only ever compared with the names `list_voices()` found (folder names in
the voices folders) and with speaker names of loaded models: it never becomes a path.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import AsyncIterator

import numpy as np

from tts_cli.errors import RequestError, SynthesisError
from tts_cli.inference.synthesizer import Synthesizer
from tts_cli.inference.voices import get_voice, list_voices
from tts_cli.text.chunking import pause_samples, split_text

log = logging.getLogger(__name__)

# Short, middle and long sentences: the vocoder's 128-, 192- and 256-frame windows, and several windows
WARM_UP_TEXT = ("Hola. Buenos días a todos, ¿cómo están hoy? El perro de San Roque no tiene rabo porque Ramón "
                "Ramírez se lo ha cortado, y ahora todos los vecinos del pueblo hablan de ello en la plaza mayor.")
# `model` values accepted besides the voice names (what OpenAI clients send)
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "tts-cli")


@dataclass
class Settings:
    max_chars: int = 4096  # longest `input` accepted
    max_queue: int = 32  # requests admitted at once (synthesizing or waiting)
    workers: int = 1  # synthesis threads
    api_key: str | None = None  # required as `Authorization: Bearer KEY` when set
    retry_after_s: int = 2


@dataclass
class Speech:
    """One request's resolved voice and controls."""

    synth: object
    voice: str
    speaker: str | None
    speed: float = 1.0
    chunks: list = field(default_factory=list)


class SpeechService:
    def __init__(self, default_name: str, default_synth, settings: Settings, bundled: bool = True):
        self.settings = settings
        self.default_name = default_name
        self._synths = {default_name: default_synth}
        self._bundled = bundled  # also serve the other bundled voices (off for an ONNX export)
        self._load_lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=max(1, settings.workers), thread_name_prefix="tts-synth")
        self.active = 0  # admitted requests; touched only on the event loop thread

    # ------------------------------------------------------------------ voices
    def voice_names(self) -> list[str]:
        names = {self.default_name}
        if self._bundled:
            names |= {v.name for v in list_voices(errors=[])}
        return sorted(names)

    def voices(self) -> list[dict]:
        """The /v1/voices listing: loaded models first-hand, bundled ones from voice.json."""
        meta = {v.name: v for v in list_voices(errors=[])} if self._bundled else {}
        out = []
        for name in self.voice_names():
            synth = self._synths.get(name)
            if synth is not None:
                info = {"language": synth.language, "speakers": synth.speaker_names(),
                        "sample_rate": synth.sample_rate}
            else:
                v = meta[name]
                info = {"language": v.language, "speakers": v.speakers, "sample_rate": v.sample_rate}
            if name in meta:
                info["licence"] = meta[name].licence
            out.append({"id": name, **info, "default": name == self.default_name, "loaded": synth is not None})
        return out

    def model_ids(self) -> list[str]:
        return list(MODEL_ALIASES) + self.voice_names()

    def _load(self, name: str):
        """The Synthesizer of voice `name` (a name from `voice_names()`), loaded once."""
        with self._load_lock:
            if name not in self._synths:
                voice = get_voice(name)
                default = self._synths[self.default_name]
                shared = default.vocoder if voice.vocoder_path is None and default.vocoder.is_default else None
                log.info("loading voice %s", name)
                self._synths[name] = Synthesizer(voice.acoustic_path, vocoder=shared, device="cpu")
            return self._synths[name]

    def _split(self, voice: str | None) -> tuple[str, str | None]:
        """`NAME`, `NAME:SPEAKER` or a speaker of the default voice -> (voice name, speaker)."""
        if voice is None or voice == "":
            return self.default_name, None
        name, _, speaker = voice.partition(":")
        names = self.voice_names()
        if name in names:
            return name, speaker or None
        if not speaker and name in self._synths[self.default_name].speakers:
            return self.default_name, name
        speakers = ", ".join(self._synths[self.default_name].speaker_names())
        raise RequestError(f"unknown voice {voice[:80]!r}: use one of {', '.join(names)} (GET /v1/voices), "
                           f"NAME:SPEAKER, or a speaker of {self.default_name} ({speakers})", param="voice")

    async def prepare(self, text: str, voice: str | None, speed: float) -> Speech:
        """Resolve the voice and speaker and split the text; RequestError for what is wrong."""
        name, speaker = self._split(voice)
        synth = self._synths.get(name)
        if synth is None:
            synth = await asyncio.get_running_loop().run_in_executor(self.pool, self._load, name)
        try:
            synth.resolve_speaker(speaker)
        except SynthesisError as e:
            raise RequestError(str(e), param="voice") from None
        chunks = split_text(text, synth.max_chunk_chars)
        if not chunks:
            raise RequestError("input: nothing to say (only spaces or empty [[ ]] blocks)", param="input")
        return Speech(synth=synth, voice=name, speaker=speaker, speed=speed, chunks=chunks)

    # ------------------------------------------------------------------ admission
    def try_admit(self) -> bool:
        if self.active >= self.settings.max_queue:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        self.active = max(0, self.active - 1)

    # ------------------------------------------------------------------ synthesis
    def _speak(self, speech: Speech, i: int) -> np.ndarray:
        """Chunk i's samples followed by its pause (none after the last chunk)."""
        synth, chunk = speech.synth, speech.chunks[i]
        wav = synth.synthesize(chunk.text, speaker=speech.speaker, speed=speech.speed).wav
        if i == len(speech.chunks) - 1:
            return wav
        return np.concatenate([wav, np.zeros(pause_samples(chunk, speech.speed, synth.sample_rate), np.float32)])

    async def first_audio(self, speech: Speech) -> tuple[int, np.ndarray]:
        """(index, samples) of the first chunk that can be spoken, made before any byte is sent, so
        a text with nothing speakable is a 400, not a broken stream. Chunks before it are skipped."""
        loop = asyncio.get_running_loop()
        first_error = None
        for i in range(len(speech.chunks)):
            try:
                return i, await loop.run_in_executor(self.pool, self._speak, speech, i)
            except SynthesisError as e:
                first_error = first_error or e
        raise RequestError(f"input: {first_error}", param="input")

    async def rest_audio(self, speech: Speech, start: int) -> AsyncIterator[np.ndarray]:
        """Samples of chunks start.. one at a time; an unspeakable chunk is skipped (logged)."""
        loop = asyncio.get_running_loop()
        for i in range(start, len(speech.chunks)):
            try:
                yield await loop.run_in_executor(self.pool, self._speak, speech, i)
            except SynthesisError as e:
                log.warning("skipped a sentence: %s", e)

    def warm_up(self, text: str = WARM_UP_TEXT) -> None:
        """Sentences of each vocoder window size through the default voice, as requests run them,
        before the first request: the kernels for every window are built, and the heap grows to its
        working size (glibc keeps freed activations for reuse, `tune_malloc_for_inference`), so
        neither the first long sentence's latency nor the memory after it is a surprise."""
        synth = self._synths[self.default_name]
        speech = Speech(synth=synth, voice=self.default_name, speaker=None, chunks=split_text(text, synth.max_chunk_chars))
        for i in range(len(speech.chunks)):  # on the pool: a worker thread's malloc arena is the one requests use
            self.pool.submit(self._speak, speech, i).result()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["SpeechService", "Settings", "RequestError", "Speech", "MODEL_ALIASES"]
