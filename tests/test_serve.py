"""`tts serve`: the OpenAI-compatible speech API on a real loopback server (conftest.speech_server).

Behaviour only, never wall-clock time: valid WAV/PCM, streaming framing, 4xx JSON errors that
name the problem (and the next good request still works), 503 + Retry-After when the admission
queue is full, API keys, and the bind-safety rule."""
from __future__ import annotations

import io
import json
import struct
import threading
import time
import wave
from urllib.parse import urlsplit

import pytest

# text with characters the voice cannot speak warns on the server side; the tests check the 400
pytestmark = pytest.mark.filterwarnings("ignore::tts_cli.inference.synthesizer.SynthesisWarning")

SPEECH = "/v1/audio/speech"
THREE_SENTENCES = "Hola, ¿qué tal? Hoy hace un día muy bonito en la ciudad. Mañana iremos al parque."


def request(base: str, method: str, path: str, body=None, headers: dict | None = None):
    """(status, headers dict (lower-case), body bytes) over http.client; body: dict -> JSON, str/bytes raw."""
    import http.client

    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def speak(base, **body):
    return request(base, "POST", SPEECH, {"model": "tts-1", **body})


def read_wav(data: bytes):
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), w.readframes(10 ** 9)


def test_curl_example_gives_a_valid_wav(speech_server):
    base, _ = speech_server
    status, headers, data = speak(base, input="Hola, ¿qué tal?", voice="es_base")
    assert status == 200 and headers["content-type"] == "audio/wav"
    sr, frames = read_wav(data)
    assert sr == 22050 and len(frames) // 2 > 0.3 * sr  # at least 0.3 s of audio
    # one sentence: an exact header whose sizes match the file
    assert struct.unpack("<I", data[4:8])[0] == len(data) - 8 and "content-length" in headers
    import numpy as np

    assert np.abs(np.frombuffer(frames, "<i2")).max() > 1000  # speech, not silence


def test_long_input_streams_sentence_by_sentence(speech_server):
    base, _ = speech_server
    status, headers, data = speak(base, input=THREE_SENTENCES, voice="es_base:em_alex")
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[4:8])[0] == 0xFFFFFFFF  # length unknown
    assert struct.unpack("<I", data[40:44])[0] == 0xFFFFFFFF
    import soundfile as sf

    wav, sr = sf.read(io.BytesIO(data), dtype="float32")  # readers take the samples to the end
    assert sr == 22050 and len(wav) == (len(data) - 44) // 2 and len(wav) > 2 * sr
    # pcm: the same stream without the header; "stream": false gives an exact WAV of the same audio
    status, headers, pcm = speak(base, input=THREE_SENTENCES, voice="es_base:em_alex", response_format="pcm")
    assert status == 200 and headers["content-type"] == "audio/pcm" and headers["x-sample-rate"] == "22050"
    assert pcm == data[44:]
    status, headers, whole = speak(base, input=THREE_SENTENCES, voice="es_base:em_alex", stream=False)
    assert status == 200 and "transfer-encoding" in headers and read_wav(whole)[1] == pcm


def test_flac_and_speed(speech_server):
    base, _ = speech_server
    import soundfile as sf

    status, headers, data = speak(base, input="Buenos días.", response_format="flac")
    assert status == 200 and headers["content-type"] == "audio/flac"
    normal, sr = sf.read(io.BytesIO(data))
    status, _, fast = speak(base, input="Buenos días.", response_format="wav", speed=2.0)
    assert status == 200 and sr == 22050
    assert len(read_wav(fast)[1]) // 2 < 0.7 * len(normal)


def test_models_voices_health_and_page(speech_server):
    base, _ = speech_server
    status, _, data = request(base, "GET", "/v1/models")
    ids = [m["id"] for m in json.loads(data)["data"]]
    assert status == 200 and "tts-1" in ids and "es_base" in ids
    status, _, data = request(base, "GET", "/v1/voices")
    voices = json.loads(data)
    assert voices["default"] == "es_base"
    es = {v["id"]: v for v in voices["voices"]}["es_base"]  # en_base is listed too
    assert es["speakers"] == ["ef_dora", "em_alex"] and es["sample_rate"] == 22050
    status, _, data = request(base, "GET", "/health")
    assert status == 200 and json.loads(data)["status"] == "ok"
    status, headers, data = request(base, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b'id="speak"' in data


BAD = [  # (body, status, words the message must contain, param)
    ("{not json", 400, "not valid JSON", None),
    ("[1, 2]", 400, "JSON object", None),
    ({"input": 5}, 400, "input", "input"),
    ({"model": "tts-1"}, 400, "input: Field required", "input"),
    ({"input": "   "}, 400, "empty", "input"),
    ({"input": "hola " * 100}, 400, "limit of 400", "input"),
    ({"input": "hola", "voice": "../../etc/passwd"}, 400, "unknown voice", "voice"),
    ({"input": "hola", "voice": "es_base/../../x"}, 400, "unknown voice", "voice"),
    ({"input": "hola", "voice": "es_base:nobody"}, 400, "unknown speaker", "voice"),
    ({"input": "hola", "response_format": "opus"}, 400, "not supported", "response_format"),
    ({"input": "hola", "speed": 9}, 400, "outside", "speed"),
    ({"input": "hola", "speed": "fast"}, 400, "valid number", "speed"),
    ({"input": "hola", "model": "whisper-1"}, 400, "unknown model", "model"),
    ({"input": "😀 ☃"}, 400, "nothing to say", "input"),
]


@pytest.mark.parametrize("body,status,words,param", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests_get_a_4xx_json_message_and_the_server_keeps_serving(speech_server, body, status, words, param):
    base, _ = speech_server
    got, headers, data = request(base, "POST", SPEECH, body)
    assert got == status and headers["content-type"] == "application/json"
    err = json.loads(data)["error"]
    assert words in err["message"] and err["param"] == param and "Traceback" not in err["message"]
    assert speak(base, input="Sí.")[0] == 200


def test_oversize_body_and_unknown_route(speech_server):
    base, _ = speech_server
    status, _, data = request(base, "POST", SPEECH, b'{"input": "' + b"a" * 200_000 + b'"}')
    assert status == 413 and "larger" in json.loads(data)["error"]["message"]
    status, _, data = request(base, "GET", "/v1/nothing")
    assert status == 404 and json.loads(data)["error"]["message"]


def test_full_queue_answers_503_with_retry_after(speech_server):
    base, service = speech_server
    service.active = service.settings.max_queue  # as if max_queue requests were in progress
    try:
        status, headers, data = speak(base, input="Hola.")
    finally:
        service.active = 0
    assert status == 503 and int(headers["retry-after"]) > 0 and "busy" in json.loads(data)["error"]["message"]
    assert speak(base, input="Hola.")[0] == 200


def test_concurrent_requests_get_audio_or_503_and_slots_come_back(speech_server):
    base, service = speech_server
    results = []
    gate = threading.Barrier(6)

    def client():
        gate.wait()
        results.append(speak(base, input=THREE_SENTENCES)[:2])

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(s for s, _ in results)
    assert set(codes) <= {200, 503} and codes.count(200) >= 2, codes
    assert all("retry-after" in h for s, h in results if s == 503)
    deadline = time.monotonic() + 30  # a slot comes back just after the response's last byte
    while service.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.active == 0  # every admitted request gave its slot back
    assert speak(base, input="Hola.")[0] == 200


def test_api_key_is_required_when_set(speech_server):
    base, service = speech_server
    service.settings.api_key = "s3cret"
    try:
        status, _, data = speak(base, input="Hola.")
        assert status == 401 and "API key" in json.loads(data)["error"]["message"]
        assert request(base, "GET", "/v1/voices", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert speak(base, input="Hola.", voice="es_base")[0] == 401
        good = request(base, "POST", SPEECH, {"input": "Hola."}, headers={"Authorization": "Bearer s3cret"})
        assert good[0] == 200
        assert request(base, "GET", "/health")[0] == 200  # liveness stays open
    finally:
        service.settings.api_key = None


def test_bind_elsewhere_needs_an_api_key(monkeypatch):
    from typer.testing import CliRunner

    from tts_cli.cli import app
    from tts_cli.serve.server import ENV_API_KEY, check_bind, is_loopback
    from tts_cli.errors import ServeError

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "key")
    with pytest.raises(ServeError, match="API key"):
        check_bind("0.0.0.0", None)
    monkeypatch.delenv(ENV_API_KEY, raising=False)
    res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert res.exit_code == 1 and "API key" in res.output
