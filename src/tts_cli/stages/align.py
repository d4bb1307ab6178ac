"""`tts align`: learn symbol durations with the FastPitch 1.1 aligner + monotonic alignment search.

Reads WORK/manifest.jsonl, symbols.json and wavs/ (the aligner's query features: log-mels on
WORK/mels' frames with a shorter window; WORK/mels themselves when wavs are missing or
`query_win_length` is 0); trains `Aligner` with the forward-sum loss
(+ the binarisation loss after a warm-up), then runs MAS per utterance and writes
durations/<id>.npy (int32, one per symbol, summing to n_frames), alignments/<id>.png for a
few utterances, align_report.jsonl (suspicious utterances) and aligner.pt.

Resumable and deterministic: the batch order is a pure function of (seed, step), and
aligner.pt holds model, optimizer, step and RNG state, so "train to K, get killed, resume to
N" writes the same files as "train to N".
"""
from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from tts_cli.workspace import Workspace, atomic_save_npy, atomic_torch_save, atomic_write_bytes, atomic_write_jsonl, atomic_write_text, read_jsonl
from tts_cli.errors import WorkspaceError

CKPT_FORMAT = "tts-cli-aligner"


@dataclass
class AlignConfig:
    """Settings of section `align:` (recipe / WORK/config.yaml); saved in aligner.pt and align_config.yaml."""

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
    from ..config import check_number

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
    from ..config import deep_merge, load_config

    base = ws.load_config() if ws.config.exists() else {}
    if isinstance(config, dict):
        return deep_merge(base, config)
    return load_config(config, base=base) if config else base


def align_config(cfg: dict | None) -> AlignConfig:
    section = dict((cfg or {}).get("align") or {})
    known = {f.name for f in fields(AlignConfig)}
    unknown = set(section) - known
    if unknown:
        raise ValueError(f"unknown align setting(s): {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    return AlignConfig(**section)


# --------------------------------------------------------------------------- data

@dataclass
class Utterance:
    id: str
    ids: np.ndarray  # int64 symbol ids
    n_frames: int
    symbols: list
    silent: np.ndarray  # bool per symbol: may get 0 frames
    positions: np.ndarray | None = None  # index of each aligned symbol in the manifest's list (None: all)
    n_symbols: int = 0  # length of the manifest's symbol list (durations are written at that length)

    def full_durations(self, dur: np.ndarray) -> np.ndarray:
        """Durations of the aligned symbols -> durations of every manifest symbol (0 for left-out ones)."""
        if self.positions is None:
            return dur
        full = np.zeros(self.n_symbols, dtype=dur.dtype)
        full[self.positions] = dur
        return full


def is_stress_mark(symbol: str) -> bool:
    return bool(symbol) and all(c in "ˈˌ'" for c in symbol)


def is_silent_symbol(symbol: str) -> bool:
    """Symbols with no sound of their own: stress marks and word spaces (any language)."""
    return bool(symbol) and all(c in "ˈˌ'" or c.isspace() for c in symbol)


def _load_items(ws: Workspace, rows: list[dict], symbols: list[str], console,
                zero_width_stress: bool = True) -> tuple[list[Utterance], list[dict]]:
    """Manifest rows -> utterances with symbol ids (stress marks left out if `zero_width_stress`);
    bad rows are reported and skipped."""
    index = {s: i for i, s in enumerate(symbols)}
    items, skipped = [], []
    for row in rows:
        uid = row.get("id", "?")
        syms = row.get("symbols") or []
        missing = sorted({s for s in syms if s not in index})
        reason = None
        keep = np.array([not (zero_width_stress and is_stress_mark(s)) for s in syms], dtype=bool)
        if not syms or not keep.any():
            reason = "no symbols"
        elif missing:
            reason = f"symbols not in symbols.json: {' '.join(missing)}"
        elif not ws.mel_path(uid).exists():
            reason = f"missing {ws.mel_path(uid)}"
        else:
            reason = _check_mel(ws.mel_path(uid), int(row.get("n_frames", -1)))
        if reason:
            console.print(f"[yellow]skip {uid}: {reason}[/]")
            skipped.append({"id": uid, "reasons": [reason]})
            continue
        kept = [s for s, k in zip(syms, keep) if k]
        silent = np.array([is_silent_symbol(s) for s in kept], dtype=bool)
        positions = None if keep.all() else np.flatnonzero(keep)
        items.append(Utterance(uid, np.array([index[s] for s in kept], dtype=np.int64), int(row["n_frames"]), kept,
                               silent, positions, len(syms)))
    return items, skipped


_MEL_CACHE: dict = {}
_MEL_CACHE_LIMIT = 1 << 30  # bytes of mels kept in memory between batches


def _check_mel(path: Path, n_frames: int) -> str | None:
    """Why a mel file is unusable (reads only the header), or None."""
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as e:
        return f"unreadable {path}: {e}"
    if len(shape) != 2 or shape[1] != n_frames or n_frames < 1:
        return f"{path}: shape {shape} does not match n_frames={n_frames} in the manifest"
    return None


def _load_mel(ws: Workspace, utt: Utterance, features: "QueryFeatures | None" = None) -> np.ndarray:
    """The aligner's input frames for `utt`: WORK/mels, or the query features when `features` is set."""
    key = (str(ws.root), utt.id, None if features is None else features.win_length)
    if key in _MEL_CACHE:
        return _MEL_CACHE[key]
    mel = _read_mel(ws, utt) if features is None else features.compute(ws, utt)
    if sum(m.nbytes for m in _MEL_CACHE.values()) + mel.nbytes <= _MEL_CACHE_LIMIT:
        _MEL_CACHE[key] = mel
    return mel


def _read_mel(ws: Workspace, utt: Utterance) -> np.ndarray:
    mel = np.load(ws.mel_path(utt.id), allow_pickle=False)
    if mel.ndim != 2 or mel.shape[1] != utt.n_frames:
        raise ValueError(f"{ws.mel_path(utt.id)}: shape {mel.shape} does not match n_frames={utt.n_frames} in the manifest")
    return mel.astype(np.float32, copy=False)


@dataclass
class QueryFeatures:
    """Log-mels of WORK/wavs with the workspace's audio settings but a shorter STFT window
    (same hop and centring, so the frames are those of WORK/mels)."""

    audio: Any  # config.AudioConfig of the workspace
    win_length: int

    def compute(self, ws: Workspace, utt: Utterance) -> np.ndarray:
        from dataclasses import replace

        from tts_cli.audio import load_audio, mel_spectrogram

        wav = load_audio(ws.wav_path(utt.id), int(self.audio.sample_rate))
        mel = mel_spectrogram(wav, replace(self.audio, win_length=self.win_length)).numpy()
        if mel.shape[1] != utt.n_frames:
            raise ValueError(f"{ws.wav_path(utt.id)}: gives {mel.shape[1]} frames, "
                             f"the manifest says n_frames={utt.n_frames}")
        return mel


def _query_features(ws: Workspace, items: list[Utterance], cfg_all: dict, win_length: int,
                    console) -> tuple[QueryFeatures | None, list[dict]]:
    """(features, bad rows): the query features `win_length` asks for, computed once for every
    item (cached like mels), or None (use WORK/mels) when it is 0, not shorter than the mels'
    window, or the workspace lacks some processed wav (a warning then: one kind of feature for
    the whole run). Utterances whose wav is unusable are reported in `bad` and must be skipped."""
    from tts_cli.errors import AudioError
    from ..config import audio_config

    audio = audio_config(cfg_all)
    win = int(win_length or 0)
    if win <= 0 or win >= int(audio.win_length):
        return None, []
    missing = [u.id for u in items if not ws.wav_path(u.id).is_file()]
    if missing:
        console.print(f"[yellow]{ws.wav_path(missing[0])} and {len(missing) - 1} more wav(s) missing: the aligner "
                      f"reads WORK/mels instead of its {win}-sample-window features[/]")
        return None, []
    features, bad = QueryFeatures(audio, win), []
    for u in items:
        try:
            _load_mel(ws, u, features)
        except (AudioError, ValueError, OSError) as e:
            reason = str(e) if str(ws.wav_path(u.id)) in str(e) else f"{ws.wav_path(u.id)}: {e}"
            console.print(f"[yellow]skip {u.id}: {reason}[/]")
            bad.append({"id": u.id, "reasons": [reason]})
    return features, bad


def _collate(ws: Workspace, batch: list[Utterance], n_mel: int, prior_scaling: float, skip_silent: bool,
             features: QueryFeatures | None = None):
    import torch

    from ..models.alignment import prior_batch

    t_text = max(len(u.ids) for u in batch)
    t_mel = max(u.n_frames for u in batch)
    text = torch.zeros(len(batch), t_text, dtype=torch.long)
    mel = torch.zeros(len(batch), n_mel, t_mel)
    silent = torch.zeros(len(batch), t_text, dtype=torch.bool)
    for b, u in enumerate(batch):
        text[b, : len(u.ids)] = torch.from_numpy(u.ids)
        if skip_silent:
            silent[b, : len(u.ids)] = torch.from_numpy(u.silent)
        mel[b, :, : u.n_frames] = torch.from_numpy(_load_mel(ws, u, features))
    text_lens = torch.tensor([len(u.ids) for u in batch])
    mel_lens = torch.tensor([u.n_frames for u in batch])
    prior = prior_batch(text_lens.tolist(), mel_lens.tolist(), prior_scaling)
    return text, text_lens, mel, mel_lens, prior, silent


def batch_for_step(n_items: int, lengths: np.ndarray, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Item indices of training batch `step`: a pure function of (seed, step).

    Each epoch shuffles the items with its own seed, sorts pools of 8 batches by length
    (so batches hold similar lengths: less padding) and shuffles the batch order.
    """
    n_batches = max(1, -(-n_items // batch_size))
    epoch, k = divmod(step, n_batches)
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n_items)
    pool = batch_size * 8
    batches = []
    for start in range(0, n_items, pool):
        chunk = perm[start: start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i: i + batch_size] for i in range(0, len(chunk), batch_size)]
    order = rng.permutation(len(batches))
    return batches[order[k % len(batches)]]


# --------------------------------------------------------------------------- checkpoints

def _build_model(n_symbols: int, n_mel: int, cfg: AlignConfig):
    from ..models.alignment import Aligner

    return Aligner(n_symbols, n_mel, cfg.n_text_channels, cfg.n_att_channels, cfg.temperature)


def _save_ckpt(path: Path, model, opt, step: int, cfg: AlignConfig, symbols: list[str], n_mel: int, seed: int,
               loss: float | None, audio: dict | None = None) -> None:
    import torch

    atomic_torch_save(path, {
        "format": CKPT_FORMAT, "version": 1, "step": int(step), "seed": int(seed),
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state()},
        "config": asdict(cfg), "symbols": list(symbols), "n_mel_channels": int(n_mel),
        "loss": None if loss is None else float(loss),
        "audio": dict(audio or {}),  # the mel settings it learned on (init_from compares them)
    })


def _read_checkpoint(path: Path) -> dict:
    """A standalone aligner.pt, or any FastPitch checkpoint the one checkpoint loader reads
    (ours or NVIDIA's, converted to our layout: weights under `model`, symbols at the top)."""
    import torch

    from tts_cli.errors import CheckpointError
    from tts_cli.checkpoints.load import load_checkpoint

    try:
        return load_checkpoint(path)
    except CheckpointError as err:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            raise err from None
        if isinstance(obj, dict) and obj.get("format") == CKPT_FORMAT:
            return obj
        raise err from None


def aligner_from_checkpoint(path: str | Path, symbols: list[str], n_mel: int, temperature: float = 0.0005,
                            new_symbols: bool = False):
    """An `Aligner` with the weights of a trained FastPitch checkpoint (`attention.*` +
    `encoder.word_emb.weight`) or of a standalone aligner.pt, its embedding rows re-ordered to
    `symbols` when the checkpoint carries its own symbol table. new_symbols=True (a start for
    further training): symbols the checkpoint lacks start at the nearest ones it knows; False:
    they are an error (an aligner used as it is cannot place a sound it never saw)."""
    import torch

    from ..models.alignment import Aligner

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    ckpt = _read_checkpoint(path)
    sd = ckpt["model"]
    att = {k[len("attention."):]: v for k, v in sd.items() if k.startswith("attention.")}
    emb = sd.get("encoder.word_emb.weight", sd.get("embedding.weight"))
    if not att or emb is None:
        raise ValueError(f"{path}: no aligner weights (expected `attention.*` and `encoder.word_emb.weight` "
                         "or `embedding.weight`); was this FastPitch trained with the joint aligner?")
    n_text = att["key_proj.0.conv.weight"].shape[1]
    n_att = att["key_proj.2.conv.weight"].shape[0]
    ck_mel = att["query_proj.0.conv.weight"].shape[1]
    if ck_mel != n_mel:
        raise ValueError(f"{path}: aligner expects {ck_mel} mel channels, the workspace has {n_mel}")
    ck_symbols = ckpt.get("symbols")
    if ck_symbols is not None:
        where = {s: i for i, s in enumerate(ck_symbols)}
        missing = [s for s in symbols[1:] if s not in where]
        if missing and not new_symbols:
            raise ValueError(f"{path}: symbols of this workspace unknown to the checkpoint: {' '.join(missing[:20])}")
        if missing:
            from tts_cli.training.init_from import LoadReport, _remap_symbols

            emb = _remap_symbols(emb, torch.empty(len(symbols), emb.shape[1]), list(ck_symbols), list(symbols), 0,
                                 LoadReport(str(path)))
        else:
            emb = emb[[where.get(s, 0) for s in symbols]]
    elif emb.shape[0] != len(symbols):
        raise ValueError(f"{path}: checkpoint has {emb.shape[0]} symbols and no symbol table; "
                         f"the workspace has {len(symbols)}")
    cfg_temp = (ckpt.get("config") or {}).get("temperature", temperature) if isinstance(ckpt.get("config"), dict) else temperature
    model = Aligner(len(symbols), n_mel, n_text, n_att, float(cfg_temp))
    model.embedding.weight.data.copy_(emb)
    model.attention.load_state_dict(att, strict=False)
    missing = [k for k in model.attention.state_dict() if k not in att and not k.startswith("attn_proj")]
    if missing:
        raise ValueError(f"{path}: aligner weights incomplete, missing attention.{missing[0]}")
    # a standalone aligner.pt says which query features it learned on; FastPitch's aligner used its mels
    ck_cfg = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    query_win = int(ck_cfg.get("query_win_length") or 0) if ckpt.get("format") == CKPT_FORMAT else 0
    return model, {"n_text_channels": n_text, "n_att_channels": n_att, "temperature": float(cfg_temp),
                   "query_win_length": query_win, "audio": dict(ckpt.get("audio") or {})}


# --------------------------------------------------------------------------- training

def _train(ws: Workspace, items: list[Utterance], symbols: list[str], n_mel: int, cfg: AlignConfig, seed: int,
           device: str, console, features: QueryFeatures | None = None, fresh: bool = False) -> tuple[Any, dict]:
    """Train (or resume, or skip when aligner.pt is complete); returns (model, info). fresh: start
    anew whatever aligner.pt holds (it is replaced at the first save, so a start that fails keeps it)."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..models.alignment import BinarizationLoss, ForwardSumLoss, binarize

    torch.manual_seed(seed)
    model = _build_model(len(symbols), n_mel, cfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, last_loss, started_from = 0, None, None
    if ws.aligner_ckpt.exists() and not fresh:
        ckpt = torch.load(ws.aligner_ckpt, map_location="cpu", weights_only=True)
        if ckpt.get("format") != CKPT_FORMAT:
            raise ValueError(f"{ws.aligner_ckpt}: not an aligner checkpoint; remove it or use --force")
        if ckpt.get("symbols") != list(symbols) or int(ckpt.get("n_mel_channels", -1)) != n_mel:
            raise ValueError(f"{ws.aligner_ckpt}: trained on another symbol table or mel size; use --force to retrain")
        shape_keys = ("n_text_channels", "n_att_channels")
        if any(ckpt["config"].get(k) != getattr(cfg, k) for k in shape_keys):
            raise ValueError(f"{ws.aligner_ckpt}: model size differs from the settings; use --force to retrain")
        if int(ckpt["config"].get("query_win_length") or 0) != int(cfg.query_win_length or 0):
            raise ValueError(f"{ws.aligner_ckpt}: trained on other query features (query_win_length "
                             f"{ckpt['config'].get('query_win_length') or 0}, now {cfg.query_win_length}); "
                             "use --force to retrain")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        for group in opt.param_groups:  # settings may have changed between runs
            group["lr"], group["weight_decay"] = cfg.lr, cfg.weight_decay
        torch.set_rng_state(ckpt["rng"]["torch"])
        step, last_loss = int(ckpt["step"]), ckpt.get("loss")
        if step < cfg.steps:
            console.print(f"resuming aligner training from {ws.aligner_ckpt} at step {step}")
    else:
        start, started_from = _init_model(ws, cfg, symbols, n_mel, console)
        if start is not None:
            model = start.to(device)
            opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_step = step
    info = {"start_step": start_step, "steps": cfg.steps, "nan_steps": 0}
    if started_from is not None:
        info["init_from"] = str(started_from)
    if step >= cfg.steps:
        info.update(trained_steps=0, final_loss=last_loss)
        return model, info

    lengths = np.array([u.n_frames for u in items])
    audio = _audio_settings(ws)
    ctc_loss, bin_loss = ForwardSumLoss(cfg.blank_logprob), BinarizationLoss()
    model.train()
    ema = last_loss  # continue the smoothed loss across a resume
    t0 = time.perf_counter()
    columns = [TextColumn("aligner"), BarColumn(), MofNCompleteColumn(), TextColumn("fwd-sum {task.fields[loss]}"),
               TextColumn("bin {task.fields[bin]}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=cfg.steps, completed=step, loss="-", bin="-")
        while step < cfg.steps:
            batch = [items[i] for i in batch_for_step(len(items), lengths, cfg.batch_size, seed, step)]
            text, tlen, mel, mlen, prior, silent = (x.to(device) for x in _collate(ws, batch, n_mel, cfg.prior_scaling,
                                                                                   cfg.skip_silent, features))
            soft, logprob = model(text, tlen, mel, prior)
            loss_ctc = ctc_loss(logprob, tlen, mlen, silent)
            w = _bin_weight(cfg, step)
            loss_bin = (bin_loss(binarize(logprob, tlen, mlen, silent), soft) if w > 0
                        else torch.zeros((), device=device))
            loss = loss_ctc + w * loss_bin
            opt.zero_grad(set_to_none=True)
            if torch.isfinite(loss):
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                value = float(loss_ctc.detach())
                ema = value if ema is None else 0.95 * ema + 0.05 * value
                last_loss = ema
            else:  # guard: a bad batch must not poison the weights
                info["nan_steps"] += 1
            step += 1
            progress.update(task, completed=step, loss=f"{ema:.3f}" if ema is not None else "nan",
                            bin=f"{float(loss_bin.detach()):.3f}" if w > 0 else "-")
            if step % cfg.save_every == 0 or step == cfg.steps:
                _save_ckpt(ws.aligner_ckpt, model, opt, step, cfg, symbols, n_mel, seed, last_loss, audio)
    info.update(trained_steps=step - start_step, final_loss=last_loss, train_seconds=time.perf_counter() - t0)
    return model, info


def _audio_settings(ws: Workspace) -> dict:
    """The workspace's mel settings (what an aligner.pt records it learned on)."""
    from tts_cli.config import audio_dict

    return audio_dict((ws.load_config() if ws.config.exists() else {}).get("audio") or {})


def _init_model(ws: Workspace, cfg: AlignConfig, symbols: list[str], n_mel: int, console):
    """(model, source) of the aligner `init_from` names, for further training on this workspace, or
    (None, None): from scratch. It must be of the configured size and have learned on the same mel
    settings and query features; "auto" passes over one that does not fit (said so), else an error."""
    from tts_cli.config import audio_differences

    auto = _is_auto(cfg.init_from)
    try:
        source = resolve_init_from(cfg.init_from)
        if source is None:
            return None, None
        model, dims = aligner_from_checkpoint(source, symbols, n_mel, cfg.temperature, new_symbols=True)
        for key in ("n_text_channels", "n_att_channels"):
            if int(dims[key]) != int(getattr(cfg, key)):
                raise ValueError(f"align init_from {source}: {key} is {dims[key]} there, {getattr(cfg, key)} here")
        if int(dims["query_win_length"] or 0) != int(cfg.query_win_length or 0):
            raise ValueError(f"align init_from {source}: learned on query features with query_win_length "
                             f"{dims['query_win_length']}, this workspace uses {cfg.query_win_length}")
        differ = audio_differences(dims["audio"], _audio_settings(ws), "there", "here")
        if differ:
            raise ValueError(f"align init_from {source}: learned on other mels ({'; '.join(differ)})")
    except (ValueError, FileNotFoundError) as e:
        if not auto:
            raise
        console.print(f"aligner starts from scratch: the bundled one does not fit ({e})", highlight=False)
        return None, None
    console.print(f"aligner starts from {source}", highlight=False)
    return model, source


def _is_auto(spec: str) -> bool:
    return str(spec or "").strip().lower() == "auto"


def resolve_init_from(spec: str) -> Path | None:
    """`init_from` -> the aligner file to start from, or None (from scratch): "none" (or "");
    "auto" (the default voice's aligner, None when there is none); "bundled" / "bundled:NAME";
    a path to an aligner.pt or a FastPitch checkpoint with its joint aligner (it must exist)."""
    from tts_cli.errors import VoiceError
    from tts_cli.inference.voices import default_voice
    from tts_cli.inference.voices import resolve_init_from as voice_file

    spec = str(spec or "").strip()
    if spec.lower() in ("", "none", "scratch"):
        return None
    if _is_auto(spec):
        voice = default_voice()
        return voice.aligner_path if voice is not None else None
    try:
        path = voice_file(spec, part="aligner")
    except VoiceError as e:
        raise ValueError(str(e)) from None
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"align init_from: {path} not found")
    return path


def _bin_weight(cfg: AlignConfig, step: int) -> float:
    if step < cfg.bin_start or cfg.bin_weight <= 0:
        return 0.0
    return cfg.bin_weight * min(1.0, (step - cfg.bin_start + 1) / max(1, cfg.bin_warmup))


# --------------------------------------------------------------------------- extraction

def _extract(ws: Workspace, model, items: list[Utterance], n_mel: int, cfg: AlignConfig, device: str, plot_ids: set,
             console, features: QueryFeatures | None = None) -> list[dict]:
    """MAS durations for `items`; writes durations (and plots); returns per-utterance stats."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..models.alignment import mas_batch

    model.eval()
    order = sorted(items, key=lambda u: u.n_frames)
    stats = []
    with torch.no_grad(), Progress(TextColumn("durations"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                   console=console) as progress:
        task = progress.add_task("extract", total=len(order))
        for start in range(0, len(order), cfg.extract_batch_size):
            batch = order[start: start + cfg.extract_batch_size]
            text, tlen, mel, mlen, prior, silent = (x.to(device) for x in _collate(ws, batch, n_mel, cfg.prior_scaling,
                                                                                   cfg.skip_silent, features))
            soft, logprob = model(text, tlen, mel, prior)
            logprob = logprob.squeeze(1)
            if cfg.space_quiet_db > 0:
                logprob = _spaces_only_on_quiet_frames(logprob, batch, mel, cfg.space_quiet_db)
            hard = mas_batch(logprob, tlen, mlen, silent)
            soft = soft.squeeze(1).cpu().numpy()
            for b, u in enumerate(batch):
                h = hard[b, : u.n_frames, : len(u.ids)]
                s = soft[b, : u.n_frames, : len(u.ids)]
                dur = h.sum(0).round().astype(np.int32)
                if cfg.edge_silence_db > 0:
                    dur = edge_silence(dur, u.symbols, mel[b, :, : u.n_frames].cpu().numpy(), cfg.edge_silence_db)
                assert int(dur.sum()) == u.n_frames, (u.id, int(dur.sum()), u.n_frames)
                atomic_save_npy(ws.duration_path(u.id), u.full_durations(dur))
                stats.append(_utterance_stats(u, dur, h, s, cfg))
                if u.id in plot_ids:
                    _plot(ws.dir("alignments") / f"{u.id}.png", u, s, dur)
            progress.update(task, advance=len(batch))
    return stats


def quiet_frames(mel: np.ndarray, top_db: float) -> np.ndarray:
    """bool per frame of the log-mel `mel` [n_mel, n_frames]: quieter than the loudest frame by more
    than `top_db` dB (as silence trimming measures)."""
    power = np.logaddexp.reduce(2.0 * mel.astype(np.float64), axis=0)  # log of summed power per frame
    return power <= power.max() - top_db / 10.0 * np.log(10.0)


def _spaces_only_on_quiet_frames(logprob, batch: list[Utterance], mel, top_db: float):
    """logprob [B, T_mel, T_text] with each word space's score on loud frames pushed out of reach."""
    import torch

    logprob = logprob.clone()
    for b, u in enumerate(batch):
        spaces = [j for j, s in enumerate(u.symbols) if s.isspace()]
        if not spaces:
            continue
        loud = ~quiet_frames(mel[b, :, : u.n_frames].cpu().numpy(), top_db)
        rows = torch.from_numpy(np.flatnonzero(loud)).to(logprob.device)
        logprob[b, rows[:, None], torch.tensor(spaces, device=logprob.device)] = -1e4
    return logprob


def edge_silence(dur: np.ndarray, symbols: list[str], mel: np.ndarray, top_db: float) -> np.ndarray:
    """Durations where a leading (trailing) word space holds exactly the lead-in (trail-out) silence.

    Silence = the frames before the first (after the last) frame whose power is within `top_db`
    of the loudest frame, measured on the log-mel `mel` [n_mel, n_frames]. Frames move between the
    edge space and its nearest symbol with frames (which keeps at least one); the sum is unchanged.
    """
    dur = dur.copy()
    loud = np.flatnonzero(~quiet_frames(mel, top_db))
    if len(dur) < 2 or len(loud) == 0:
        return dur
    for edge, quiet, inward in ((0, int(loud[0]), range(1, len(dur))),
                                (len(dur) - 1, mel.shape[1] - 1 - int(loud[-1]), range(len(dur) - 2, -1, -1))):
        if not symbols[edge].isspace():
            continue
        neighbour = next((j for j in inward if dur[j] > 0), inward[0])
        move = min(quiet - int(dur[edge]), int(dur[neighbour]) - 1)  # < 0: the space gives frames back
        dur[edge] += move
        dur[neighbour] -= move
    return dur


def _utterance_stats(u: Utterance, dur: np.ndarray, hard: np.ndarray, soft: np.ndarray, cfg: AlignConfig) -> dict:
    confidence = float((soft * hard).sum() / max(1, u.n_frames))
    longest = int(dur.max())
    sounding = ~u.silent if cfg.skip_silent else np.ones(len(dur), bool)
    zero_share = float((dur[sounding] == 0).mean()) if sounding.any() else 0.0
    reasons = []
    if longest > cfg.max_run_frames:
        reasons.append(f"symbol {u.symbols[int(dur.argmax())]!r} (#{int(dur.argmax())}) lasts {longest} frames "
                       f"> {cfg.max_run_frames}")
    if zero_share > cfg.max_zero_share:
        reasons.append(f"{zero_share:.0%} of sounding symbols get no frame (n_frames={u.n_frames}, symbols={len(u.ids)})")
    if confidence < cfg.min_confidence:
        reasons.append(f"low attention confidence {confidence:.2f} < {cfg.min_confidence}")
    return {"id": u.id, "confidence": round(confidence, 4), "max_run_frames": longest,
            "zero_share": round(zero_share, 4), "reasons": reasons}


def _plot(path: Path, u: Utterance, soft: np.ndarray, dur: np.ndarray) -> None:
    """Soft attention (symbols x frames) with the hard path drawn over it. No pyplot: no global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_sym = len(u.ids)
    fig = Figure(figsize=(min(24, 3 + u.n_frames / 40), min(20, 2 + n_sym / 6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(soft.T, origin="lower", aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    ends = np.cumsum(dur)
    starts = ends - dur
    for j in range(n_sym):
        if dur[j] > 0:
            ax.plot([starts[j] - 0.5, ends[j] - 0.5], [j, j], color="red", linewidth=1.2)
    ax.set_yticks(range(n_sym))
    ax.set_yticklabels([s if s.strip() else "␣" for s in u.symbols], fontsize=6)
    ax.set_xlabel("mel frame")
    ax.set_title(u.id, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- the stage

def align(work: str | Path, steps: int | None = None, batch_size: int | None = None, device: str = "cpu",
          from_checkpoint: str | Path | None = None, force: bool = False, seed: int = 1234,
          config: str | Path | dict | None = None, console=None, only: set | None = None,
          init_from: str | Path | None = None) -> dict:
    """Train the aligner on WORK (or take it from a checkpoint) and write durations, plots and a report.

    config: a recipe name/path (its `align:` section is used) or a dict of settings sections.
    force: retrain from scratch and rewrite every duration. Without it, training resumes from
    aligner.pt and existing durations are kept (unless this call trained further: then they are stale).
    init_from: start the aligner from this one (aligner.pt or FastPitch with its aligner), then train.
    only: write durations for these ids alone (training still uses every utterance), e.g. those
    `tts align --from-teacher` could not align; other durations files are left as they are.
    Returns a summary dict.
    """
    from rich.console import Console

    from ..config import check_device, dump_yaml

    console = console or Console(stderr=True)
    ws = Workspace(work)
    _MEL_CACHE.clear()  # mels may have been rewritten since an earlier call in this process
    rows = ws.load_manifest()
    symbols = ws.load_symbols()
    cfg_all = workspace_config(ws, config)
    cfg = learned_settings(cfg_all, steps, batch_size, init_from)  # checked before aligner.pt or durations are replaced
    check_device(device)
    if from_checkpoint is None and not _is_auto(cfg.init_from):
        resolve_init_from(cfg.init_from)  # a missing file or voice fails here, before --force removes anything

    items, skipped = _load_items(ws, rows, symbols, console, cfg.zero_width_stress)
    if not items:
        raise WorkspaceError(f"{ws.root}: no usable utterances to align")
    n_mel = int(cfg_all.get("audio", {}).get("n_mels") or _load_mel(ws, items[0]).shape[0])

    t_start = time.perf_counter()
    if from_checkpoint is not None:
        model, dims = aligner_from_checkpoint(from_checkpoint, symbols, n_mel, cfg.temperature)
        for k, v in dims.items():
            if k != "audio":
                setattr(cfg, k, v)
        model = model.to(device)
        info = {"source": str(from_checkpoint), "trained_steps": 0}
    features, bad = _query_features(ws, items, cfg_all, cfg.query_win_length, console)
    cfg.query_win_length = features.win_length if features is not None else 0  # what is really used
    if bad:
        skipped += bad
        items = [u for u in items if u.id not in {b["id"] for b in bad}]
        if not items:
            raise WorkspaceError(f"{ws.root}: no usable utterances to align")
    if from_checkpoint is None:
        model, info = _train(ws, items, symbols, n_mel, cfg, seed, device, console, features, fresh=force)
        info["source"] = str(ws.aligner_ckpt)
    rewrite_all = force or info.get("trained_steps", 0) > 0
    atomic_write_text(ws.root / "align_config.yaml",
                      dump_yaml({"align": asdict(cfg), "seed": seed, "source": info["source"],
                                 **({"init_from": info["init_from"]} if info.get("init_from") else {})}))

    wanted = [u for u in items if only is None or u.id in only]
    todo = [u for u in wanted if rewrite_all or not ws.duration_path(u.id).exists()]
    kept = len(wanted) - len(todo)
    if kept:
        console.print(f"keeping {kept} existing duration files (use --force to rewrite them)")
    plot_ids = set(sorted(u.id for u in items)[: cfg.plots])
    t_extract = time.perf_counter()
    stats = _extract(ws, model, todo, n_mel, cfg, device, plot_ids, console, features) if todo else []
    extract_seconds = time.perf_counter() - t_extract

    # report: flagged utterances; rows of kept utterances survive from the previous report
    done = {s["id"] for s in stats}
    old = [r for r in read_jsonl(ws.align_report) if r.get("id") not in done and r.get("id") not in {s["id"] for s in skipped}]
    flagged = [s for s in stats if s["reasons"]]
    atomic_write_jsonl(ws.align_report, sorted(old + flagged + skipped, key=lambda r: r["id"]))

    summary = {
        "utterances": len(rows), "aligned": len(items), "extracted": len(stats), "kept": kept,
        "skipped": len(skipped), "flagged": len(flagged) + len(old), "steps": cfg.steps,
        "trained_steps": info.get("trained_steps", 0), "final_loss": info.get("final_loss"),
        "mean_confidence": float(np.mean([s["confidence"] for s in stats])) if stats else None,
        "extract_seconds": extract_seconds, "seconds": time.perf_counter() - t_start, "source": info["source"],
    }
    _print_summary(console, ws, summary)
    return summary


def _print_summary(console, ws: Workspace, s: dict) -> None:
    print_summary_table(console, f"tts align: {ws.root}", s, [
        ("utterances in manifest", "utterances"), ("durations written", "extracted"), ("durations kept", "kept"),
        ("skipped (bad input)", "skipped"), ("flagged (align_report.jsonl)", "flagged"),
        ("training steps run", "trained_steps"), ("forward-sum loss", "final_loss"),
        ("mean attention confidence", "mean_confidence"), ("time (s)", "seconds")])


def print_summary_table(console, title: str, s: dict, items: list[tuple[str, str]]) -> None:
    """The end-of-stage table: one row per (label, key of `s`); floats with 3 decimals, None as '-'."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("item")
    table.add_column("value", justify="right")
    for label, key in items:
        v = s.get(key)
        table.add_row(label, "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v)))
    console.print(table)
