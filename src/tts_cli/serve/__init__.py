"""`tts serve`: an OpenAI-compatible speech API and a web page over the Synthesizer.

    service.py  the voices (loaded once, shared), the bounded admission and the synthesis workers,
                and the per-sentence audio stream
    app.py      the FastAPI routes, request checking and JSON errors
    server.py   `tts serve`: the bind-safety rule, loading, warm-up, uvicorn

fastapi and uvicorn (the `[serve]` extra) are imported only here, never by `tts --help`.
"""
