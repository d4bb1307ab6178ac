"""Settings of `tts align`'s learned aligner (section `align:` of a recipe / WORK/config.yaml):
the dataclass with the measurements behind its defaults, and how a run's settings are resolved."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tts_cli.config import Settings, check_number, deep_merge, load_config
from tts_cli.workspace import Workspace


@dataclass
class AlignConfig(Settings):
    """Settings of section `align:` (recipe / WORK/config.yaml); saved in aligner.pt and align_config.yaml."""

    SECTION: ClassVar[str] = "align"

    # 2000, not 700: on 10 min of real English prompts, 700 -> 2000 steps raised the mean attention
    # confidence 0.75 -> 0.80, flagged utterances 16 -> 9, and the fine-tuned voice's held-out CER
    # (600 quick steps) 27 % -> 22 % median; ~4 min on 2 idle cores for 10 min of audio.
    steps: int = 2000
    # Where the aligner starts before `steps` of training on this workspace. "auto": the aligner
    # the default bundled voice ships (trained on its corpus), when it learned on the same audio
    # settings and query features as this workspace, else from scratch (said so); "bundled" /
    # "bundled:NAME": that voice's aligner (an error if it has none or does not fit); a path: an
    # aligner.pt of another workspace or a FastPitch checkpoint with its joint aligner; "none":
    # from scratch. Symbols the source never saw start at the nearest sounds it knows
    # (tts_cli/text/similar.py). Measured on 10 min of real English prompts (Asterisk), the same
    # 2000 steps: from scratch mean confidence 0.80, 8 utterances flagged; from an aligner trained on
    # 20 min of the Spanish teacher voices, 0.81 and 5 flagged, and the voice fine-tuned on its
    # durations spoke the held-out prompts at 12 % CER (median; 27 % from scratch, 1200 steps).
    init_from: str = "auto"
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-6
    grad_clip: float = 1.0  # global gradient-norm clip
    # model (NVIDIA's sizes, so an aligner.pt could seed FastPitch's `attention.*`)
    n_text_channels: int = 384
    n_att_channels: int = 80
    temperature: float = 0.0005
    prior_scaling: float = 1.0  # beta-binomial prior width; applied in training and extraction
    blank_logprob: float = -1.0
    # The aligner's query features: log-mels like WORK/mels (same frames, hop and filterbank) but
    # computed from WORK/wavs with this shorter STFT window, for sharper boundaries (a 23 ms window
    # at 22.05 kHz, as ASR aligners use). 0 = read WORK/mels as they are. Measured on the sample
    # corpus (share of boundaries within 20 ms, 700 steps, two seeds): 1024 samples 80.4% / 78.5%,
    # 512 samples 83.7% / 84.3%; 256 samples and a 128-sample hop were worse.
    query_win_length: int = 512
    # An utterance that begins (ends) with a word space, e.g. an edge space added by preprocess, gives
    # it the frames before the speech onset (after the offset): frames quieter than the loudest one by
    # more than this many dB (as silence trimming measures). Without it the first sound would start
    # at frame 0, inside the kept lead-in silence. 0 = off. Sample corpus with edge spaces: utterance-
    # initial onsets 31% -> 99% within 20 ms, median error 9.0 -> 7.2 ms (the overall share stays
    # ~84%: the edge spaces cost inner boundaries about as much as the onsets gain).
    edge_silence_db: float = 40.0
    # silent symbols (stress marks, word spaces) may get 0 frames: they are no CTC targets and MAS may
    # skip them. Measured on the sample corpus: 76% -> 81% of boundaries within 20 ms.
    skip_silent: bool = True
    # Stress marks carry no sound of their own: they are left out of the aligner's input and get
    # 0 frames, so the vowel they mark keeps its frames. Aligned as symbols, a stress mark sits next
    # to its vowel in every utterance and the attention cannot tell them apart: on real English
    # prompts (Asterisk) "ˈ" took 26 frames of the vowel eɪ and left it 1.
    zero_width_stress: bool = True
    # A word space stands for a pause or for nothing: it may only take frames quieter than the
    # loudest frame by more than this many dB. Unconstrained, an inner space (never a CTC target,
    # so its score means nothing) took 37 frames of speech in an English prompt. 0 = any frame.
    space_quiet_db: float = 40.0
    # binarisation (KL) loss: weight ramps linearly from 0 at bin_start to bin_weight at bin_start+bin_warmup.
    # Off by default: on the sample corpus it lowered boundary accuracy (81% -> 77% at 1000 steps).
    bin_start: int = 400
    bin_warmup: int = 200
    bin_weight: float = 0.0
    save_every: int = 250  # aligner.pt every N steps (and at the end)
    extract_batch_size: int = 16
    plots: int = 8  # alignment images for the first N utterances (by id)
    # report thresholds
    max_run_frames: int = 80  # longest single-symbol run allowed (80 x 256 / 22050 = 0.93 s)
    max_zero_share: float = 0.0  # share of zero-length symbols allowed
    min_confidence: float = 0.5  # mean soft probability along the hard path


def check_align_config(cfg: AlignConfig) -> None:
    """ValueError naming the setting for nonsense (recipe `align:` or --steps / --batch-size)."""
    for name in ("steps", "batch_size", "save_every", "extract_batch_size", "n_text_channels", "n_att_channels"):
        check_number(f"align {name}", getattr(cfg, name), low=1, integer=True)
    for name in ("lr", "temperature", "prior_scaling"):
        check_number(f"align {name}", getattr(cfg, name), low=0, low_open=True)
    for name in ("weight_decay", "grad_clip", "edge_silence_db", "bin_weight", "max_zero_share"):
        check_number(f"align {name}", getattr(cfg, name), low=0)
    for name in ("query_win_length", "bin_start", "bin_warmup", "plots", "max_run_frames"):
        check_number(f"align {name}", getattr(cfg, name), low=0, integer=True)


def learned_settings(cfg_all: dict, steps: int | None = None, batch_size: int | None = None,
                     init_from: str | Path | None = None) -> AlignConfig:
    """The learned aligner's settings: section `align:` with --steps / --batch-size / --init-from over it, checked."""
    cfg = align_config(cfg_all)
    if steps is not None:
        cfg.steps = steps
    if batch_size is not None:
        cfg.batch_size = batch_size
    if init_from is not None:
        cfg.init_from = str(init_from)
    check_align_config(cfg)
    return cfg


def workspace_config(ws: Workspace, config: str | Path | dict | None) -> dict:
    """The workspace's resolved settings with a recipe (name, path or dict) laid over them."""
    base = ws.load_config(missing_ok=True)
    if isinstance(config, dict):
        return deep_merge(base, config)
    return load_config(config, base=base) if config else base


def align_config(cfg: dict | None) -> AlignConfig:
    return AlignConfig.from_dict((cfg or {}).get("align"))


__all__ = ["AlignConfig", "align_config", "check_align_config", "learned_settings", "workspace_config"]
