"""DNSMOS: Microsoft's non-intrusive speech quality predictor, as a naturalness proxy (`tts evaluate`).

Through the PyPI wheel `speechmos==0.0.1.1` (MIT; it ships the DNSMOS ONNX models and runs them with
onnxruntime; the `[eval]` extra installs both). A clip is resampled to 16 kHz and scored by
`speechmos.dnsmos.run(wav, 16000)`: P.808 MOS (`p808`) and the P.835 SIG / BAK / OVRL MOS, on a
1-5 scale. Clips shorter than the model's 9.01 s input are repeated to fill it (speechmos's rule).

It is a proxy: clean real speech scores ~3.5-4.2 on P.808, Griffin-Lim costs ~0.4-0.7
(../shared/reference/real_data_and_quality.md). Report it beside CER, never alone. Nothing is
downloaded; the models are files inside the installed wheel.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tts_cli.audio import resample
from tts_cli.errors import DNSMOSUnavailable

SAMPLE_RATE = 16000
# speechmos result key -> ours (report.json, the evaluate table)
KEYS = {"p808_mos": "dnsmos_p808", "ovrl_mos": "dnsmos_ovrl", "sig_mos": "dnsmos_sig", "bak_mos": "dnsmos_bak"}
INSTALL_HINT = "pip install -e '.[eval]' (speechmos==0.0.1.1 + onnxruntime)"


def _import_run() -> Callable:
    try:
        from speechmos import dnsmos
    except ImportError as e:
        raise DNSMOSUnavailable(f"DNSMOS needs the speechmos package ({e}); {INSTALL_HINT}") from None
    return dnsmos.run


def score(wav: Any, sample_rate: int, run: Callable | None = None) -> dict[str, float]:
    """{dnsmos_p808, dnsmos_ovrl, dnsmos_sig, dnsmos_bak} of a mono clip (float, any rate).

    `run` replaces `speechmos.dnsmos.run` (tests)."""
    wav = np.asarray(wav, dtype=np.float32).reshape(-1)
    if wav.size == 0:
        raise ValueError("DNSMOS of an empty clip")
    if int(sample_rate) != SAMPLE_RATE:
        wav = resample(wav, int(sample_rate), SAMPLE_RATE)
    wav = np.clip(wav, -1.0, 1.0).astype(np.float32)  # speechmos refuses samples outside [-1, 1]
    out = (run or _import_run())(wav, SAMPLE_RATE)
    missing = [k for k in KEYS if k not in out]
    if missing:
        raise DNSMOSUnavailable(f"speechmos returned no {', '.join(missing)} (got {', '.join(map(str, out))})")
    return {ours: float(out[theirs]) for theirs, ours in KEYS.items()}


def load_dnsmos() -> Callable[[Any, int], dict[str, float]]:
    """A scorer `f(wav, sample_rate) -> dict` (see `score`); DNSMOSUnavailable when not installed."""
    run = _import_run()
    try:
        import onnxruntime  # noqa: F401 - speechmos imports it lazily only in some versions
    except ImportError as e:
        raise DNSMOSUnavailable(f"DNSMOS needs onnxruntime ({e}); {INSTALL_HINT}") from None

    def scorer(wav: Any, sample_rate: int) -> dict[str, float]:
        return score(wav, sample_rate, run=run)

    return scorer


__all__ = ["score", "load_dnsmos", "DNSMOSUnavailable", "KEYS", "SAMPLE_RATE"]
