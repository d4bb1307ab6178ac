"""`tts serve`: load the voice once, warm it up, and run the API under uvicorn.

Safe by default: it binds to 127.0.0.1; any other address needs an API key (--api-key or
$TTS_API_KEY), which every /v1/ request must then send as `Authorization: Bearer KEY`.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import time
from pathlib import Path

from tts_cli.errors import ServeError, SynthesisError
from tts_cli.inference.cpu import set_torch_threads
from tts_cli.inference.resolve import resolve_model
from tts_cli.inference.synthesizer import SynthesisWarning, Synthesizer
from tts_cli.inference.voices import voice_of
from tts_cli.serve.service import Settings, SpeechService

ENV_API_KEY = "TTS_API_KEY"
log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def check_bind(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ServeError(f"--host {host} is reachable from other machines: set an API key (--api-key KEY or "
                         f"${ENV_API_KEY}) that clients send as `Authorization: Bearer KEY`, or bind to 127.0.0.1")


def _served_name(model_path: Path, engine: str) -> str:
    """The voice id of the served model: a bundled voice's name, else the run or file name."""
    import re

    voice = voice_of(model_path) if engine == "torch" else None
    if voice is not None:
        return voice.name
    stem = model_path.name if model_path.is_dir() else (
        model_path.parent.parent.name if model_path.parent.name == "checkpoints" else model_path.stem)
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem).strip("._-")
    return name or "custom"


def build_service(model=None, run=None, voice=None, engine: str = "torch", vocoder: str | None = None,
                  settings: Settings | None = None, threads: int = 0, warm_up: bool = True) -> SpeechService:
    """The loaded, warmed-up service (no HTTP yet): what `tts serve` and the tests start."""
    import warnings

    import torch

    settings = settings or Settings()
    if engine == "onnx" and (model is None or run is not None or voice is not None):
        raise SynthesisError("--engine onnx serves an exported voice: give -m FOLDER (tts export --format onnx)")
    model_path = Path(model) if engine == "onnx" else resolve_model(model, run, voice)
    set_torch_threads(threads, "cpu")
    if not threads and settings.workers > 1:  # the idle cores, shared among the workers
        torch.set_num_threads(max(1, torch.get_num_threads() // settings.workers))
    synth = Synthesizer(model_path, vocoder=vocoder, device="cpu", engine=engine)
    # a dropped symbol is the client's text, not the server's problem: once in the log is enough
    warnings.filterwarnings("once", category=SynthesisWarning)
    exported = (synth.ckpt.get("onnx") or {}).get("voice") or {}  # an ONNX export keeps its voice's name
    name = exported.get("name") or _served_name(model_path, engine)
    service = SpeechService(name, synth, settings, bundled=engine == "torch")
    if warm_up:
        try:
            service.warm_up()
        except SynthesisError as e:  # a voice that cannot say "Hola." still serves its own language
            log.warning("warm-up skipped: %s", e)
    return service


def serve(host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None, log_level: str = "info",
          **build) -> None:
    """`tts serve`: check the bind, load, and serve until interrupted."""
    api_key = api_key or os.environ.get(ENV_API_KEY) or None
    check_bind(host, api_key)
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise ServeError(f"tts serve needs {e.name}: pip install -e '.[serve]'") from None
    t0 = time.perf_counter()
    settings = build.pop("settings", None) or Settings()
    settings.api_key = api_key
    service = build_service(settings=settings, **build)
    app = create_app(service)
    shown = f"[{host}]" if ":" in host else host
    print(f"tts serve: voice {service.default_name} loaded in {time.perf_counter() - t0:.1f} s; "
          f"http://{shown}:{port}/ (page), POST /v1/audio/speech; {settings.workers} worker(s), "
          f"max queue {settings.max_queue}, max {settings.max_chars} characters"
          + ("; API key required" if api_key else ""), flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            limit_concurrency=max(64, 4 * settings.max_queue), timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run()
    finally:
        service.close()


__all__ = ["serve", "build_service", "check_bind", "is_loopback", "ServeError", "ENV_API_KEY"]
