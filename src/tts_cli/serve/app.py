"""The HTTP routes of `tts serve` (FastAPI).

    POST /v1/audio/speech   OpenAI's body: model, input, voice, response_format (wav | pcm | flac |
                            mp3; default wav), speed (0.25-4); extension: stream (default true)
    GET  /v1/models         the accepted `model` values (OpenAI's list shape)
    GET  /v1/voices         the voices, their speakers, language and sample rate
    GET  /health            liveness and the admission counters
    GET  /                  the web page (tts_cli/resources/web/index.html)

wav and pcm stream: a sentence's audio is sent as soon as it is made. A streamed WAV starts with a
header whose sizes say "unknown" (0xFFFFFFFF); text of a single sentence, or `"stream": false`,
gets an exact header. pcm is raw 16-bit mono little-endian at the voice's sample rate (header
X-Sample-Rate). flac and mp3 are encoded whole, after the last sentence.

Every error is JSON in OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with a 4xx
status for what the client got wrong; nothing raised in a handler reaches the client as a traceback.
"""
from __future__ import annotations

import hmac
import json
import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tts_cli.audio import audio_bytes, audio_format, pcm16_bytes, wav_bytes, wav_stream_header
from tts_cli.errors import AudioError, RequestError
from tts_cli.inference.controls import SPEED_RANGE
from tts_cli.serve.service import SpeechService

log = logging.getLogger(__name__)

MEDIA_TYPES = {"wav": "audio/wav", "pcm": "audio/pcm", "flac": "audio/flac", "mp3": "audio/mpeg"}
FILE_FORMATS = {"flac": ".flac", "mp3": ".mp3"}  # encoded whole by soundfile (tts_cli.audio.AUDIO_FORMATS)
BODY_OVERHEAD = 64 * 1024  # JSON besides `input`: a body beyond 4 bytes per character + this is refused unread


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI fields we do not use (instructions, ...)

    model: str = "tts-1"
    input: str
    voice: str | None = None
    response_format: str = "wav"
    speed: float = 1.0
    stream: bool = True


def error(status: int, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}},
                        status_code=status, headers=headers)


def _validation_message(e: ValidationError) -> tuple[str, str | None]:
    first = e.errors()[0]
    field = ".".join(str(x) for x in first.get("loc", ())) or None
    extra = f" ({len(e.errors()) - 1} more problem(s))" if len(e.errors()) > 1 else ""
    return f"{field or 'body'}: {first.get('msg')}{extra}", field


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) past `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body of {declared} bytes is larger than this server takes ({limit})",
                           status=413)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise RequestError(f"request body is larger than this server takes ({limit} bytes)", status=413)
    return bytes(body)


def _check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in MEDIA_TYPES:
        raise RequestError(f"response_format {fmt[:20]!r} is not supported; use {', '.join(MEDIA_TYPES)}",
                           param="response_format")
    if fmt in FILE_FORMATS:
        try:
            audio_format("x" + FILE_FORMATS[fmt])
        except AudioError:
            raise RequestError(f"response_format {fmt}: this installation's soundfile cannot write it; "
                               "use wav or pcm", param="response_format") from None
    return fmt


def _check_request(req: SpeechRequest, service: SpeechService) -> None:
    if req.model not in service.model_ids():
        raise RequestError(f"unknown model {req.model[:80]!r}; use one of {', '.join(service.model_ids())}",
                           param="model")
    if not req.input.strip():
        raise RequestError("input: empty; give the text to speak", param="input")
    limit = service.settings.max_chars
    if len(req.input) > limit:
        raise RequestError(f"input: {len(req.input)} characters, more than this server's limit of {limit} "
                           "(tts serve --max-chars)", param="input")
    lo, hi = SPEED_RANGE
    if not (math.isfinite(req.speed) and lo <= req.speed <= hi):
        raise RequestError(f"speed: {req.speed} is outside {lo:g}-{hi:g}", param="speed")


def create_app(service: SpeechService) -> FastAPI:
    app = FastAPI(title="tts-cli speech API", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    settings = service.settings
    _install_error_handlers(app)
    _install_auth(app, settings)

    @app.get("/health")
    async def health():
        return {"status": "ok", "default_voice": service.default_name, "active": service.active,
                "max_queue": settings.max_queue, "workers": settings.workers,
                "max_chars": settings.max_chars, "auth": bool(settings.api_key)}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "tts-cli"}
                                           for m in service.model_ids()]}

    @app.get("/v1/voices")
    async def voices():
        return {"default": service.default_name, "voices": service.voices()}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        from importlib.resources import files

        return HTMLResponse((files("tts_cli.resources") / "web" / "index.html").read_text(encoding="utf-8"))

    @app.post("/v1/audio/speech")
    async def speech(request: Request):
        body = await _read_body(request, settings.max_chars * 4 + BODY_OVERHEAD)
        req = _parse_speech_request(body)
        _check_request(req, service)
        fmt = _check_format(req.response_format)
        if not service.try_admit():  # before anything waits on the workers (a voice's first load too)
            return error(503, f"the server is busy ({settings.max_queue} requests in progress); retry shortly",
                         headers={"Retry-After": str(settings.retry_after_s)})
        try:
            spoken = await service.prepare(req.input, req.voice, req.speed)
            start, first = await service.first_audio(spoken)
        except BaseException:
            service.release()
            raise
        return _respond(service, spoken, fmt, req.stream, start, first)

    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every error, expected or not, leaves as the JSON error body OpenAI clients understand."""

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, e: RequestError):
        return error(e.status, str(e), e.param)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        first = e.errors()[0] if e.errors() else {}
        return error(400, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, e: StarletteHTTPException):
        return error(e.status_code, str(e.detail), headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):
        log.exception("request failed")  # the traceback stays in the server's log
        return error(500, f"internal error ({type(e).__name__}); the server is still running")


def _install_auth(app: FastAPI, settings) -> None:
    """With an API key set, /v1/ routes need `Authorization: Bearer KEY`; /health and the page stay open."""

    @app.middleware("http")
    async def _auth(request: Request, call_next):
        if settings.api_key and request.url.path.startswith("/v1/"):
            got = request.headers.get("authorization", "")
            token = got[7:] if got.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(token.encode(), settings.api_key.encode()):
                return error(401, "missing or wrong API key: send `Authorization: Bearer KEY`")
        return await call_next(request)


def _parse_speech_request(body: bytes) -> SpeechRequest:
    """The JSON body as a SpeechRequest; RequestError (400) naming the field that is wrong."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(f"the body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, not {type(data).__name__}")
    try:
        return SpeechRequest.model_validate(data)
    except ValidationError as e:
        message, field = _validation_message(e)
        raise RequestError(message, param=field) from None


class _AdmittedStream(StreamingResponse):
    """A streamed response that gives its admission slot back when it ends however it ends:
    finished, failed, or cancelled by a client that went away (even before the first byte)."""

    def __init__(self, content, release, **kw):
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _respond(service: SpeechService, spoken, fmt: str, stream: bool, start: int, first) -> Response:
    """The audio response: streamed sentence by sentence (wav, pcm) or encoded whole."""
    import numpy as np

    sr = spoken.synth.sample_rate
    headers = {"X-Sample-Rate": str(sr), "X-Voice": spoken.voice}
    released = False

    def release():
        nonlocal released
        if not released:
            released = True
            service.release()

    def encode(wav) -> bytes:
        if fmt == "wav":
            return wav_bytes(wav, sr)
        if fmt == "pcm":
            return pcm16_bytes(wav)
        return audio_bytes(wav, sr, *audio_format("x" + FILE_FORMATS[fmt]))

    if start == len(spoken.chunks) - 1:  # one sentence: all made already, an exact file
        release()
        return Response(encode(first), media_type=MEDIA_TYPES[fmt], headers=headers)

    if fmt in ("wav", "pcm") and stream:
        async def sentences():
            yield (wav_stream_header(sr) if fmt == "wav" else b"") + pcm16_bytes(first)
            async for wav in service.rest_audio(spoken, start + 1):
                yield pcm16_bytes(wav)
    else:
        async def sentences():  # all sentences, then one encoded file
            yield encode(np.concatenate([first] + [w async for w in service.rest_audio(spoken, start + 1)]))

    return _AdmittedStream(sentences(), release, media_type=MEDIA_TYPES[fmt], headers=headers)


__all__ = ["create_app", "SpeechRequest", "MEDIA_TYPES"]
