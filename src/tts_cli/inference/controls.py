"""What a listener can change at synthesis time (speed, pitch, energy) and the mel contrast
given to an unmatched vocoder; the ranges are checked once, before speaking."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tts_cli.config import check_number
from tts_cli.errors import ConfigError, SynthesisError

# Default contrast for the unmatched universal HiFi-GAN (see `mel_contrast`); chosen on held-out
# sentences 41-100 of data/teacher_test_es.txt, measured on sentences 1-40 (README "Vocoders").
UNMATCHED_CONTRAST = 1.1


def mel_contrast(mel, factor: float, floor: float, margin: float = 3.0):
    """Spread each mel bin around its mean over the speech frames by `factor` (> 1 sharper).

    FastPitch's L1/L2-trained mels are smoother than real ones (their variance over time is too
    small, the statistical-parametric "over-smoothing"); a vocoder trained on real mels, like the
    universal HiFi-GAN, then sounds muffled and buzzy. Scaling the deviations back up (a global
    variance compensation) is the classic inference-time fix; fine-tuning the vocoder on GTA mels
    is the thorough one. Speech frames are those whose loudest bin exceeds the log floor by
    `margin` nats; silence is left alone and nothing goes below the floor. Works on numpy or
    torch [n_mels, T]."""
    peak = mel.max(0)
    peak = peak.values if hasattr(peak, "values") else peak
    speech = peak > floor + margin
    if not bool(speech.any()):
        return mel
    out = mel.clone() if hasattr(mel, "clone") else mel.copy()
    sel = mel[:, speech]
    mu = sel.mean(1, keepdims=True) if not hasattr(sel, "clone") else sel.mean(1, keepdim=True)
    scaled = mu + float(factor) * (sel - mu)
    out[:, speech] = scaled.clamp(min=floor) if hasattr(scaled, "clamp") else np.maximum(scaled, floor)
    return out


@dataclass(frozen=True)
class PitchControl:
    """z -> z * mul + add on FastPitch's normalised per-symbol pitch: a `pitch_transform` for
    FastPitch.infer, and two plain numbers for the ONNX graph, which cannot take a callable."""

    mul: float = 1.0
    add: float = 0.0

    def __call__(self, z, mask):
        return z * self.mul + self.add


SPEED_RANGE = (0.25, 4.0)  # beyond it durations collapse to nothing or stretch into noise


PITCH_SHIFT_RANGE = (-24.0, 24.0)  # semitones


def check_controls(speed: float = 1.0, pitch_shift: float = 0.0, pitch_scale: float = 1.0,
                   energy_scale: float = 1.0) -> None:
    """SynthesisError naming the option for a control outside its sane range (checked once, before speaking)."""
    try:
        check_number("--speed", speed, low=SPEED_RANGE[0], high=SPEED_RANGE[1])
        check_number("--pitch-shift", pitch_shift, low=PITCH_SHIFT_RANGE[0], high=PITCH_SHIFT_RANGE[1])
        check_number("--pitch-scale", pitch_scale, low=0, high=10)
        check_number("--energy-scale", energy_scale, low=0, high=10)
    except ConfigError as e:
        raise SynthesisError(str(e)) from None
