"""Fine-tuning starts: copy a checkpoint's weights into a new model.

Fine-tuning (`init_from`) copies weights by name and shape, remaps symbol-embedding rows by
symbol string and speaker rows by speaker name, and returns a `LoadReport` listing every tensor.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from tts_cli.checkpoints.format import SPEAKER_EMB, SYMBOL_EMB, CheckpointHeader, clean_state_dict, float32_state
from tts_cli.checkpoints.load import load_checkpoint
from tts_cli.text.similar import similar_symbols

# Buffers the new workspace decides (pitch statistics are recomputed, not inherited).
KEEP_ON_INIT = ("pitch_mean", "pitch_std")


ACTIONS = ("loaded", "remapped", "re-initialised", "skipped", "kept")


@dataclass
class LoadEntry:
    name: str
    action: str  # one of ACTIONS
    shape: tuple = ()
    detail: str = ""


@dataclass
class LoadReport:
    """What `init_from` did with every tensor of the model and of the checkpoint."""

    source: str = ""
    entries: list[LoadEntry] = field(default_factory=list)

    def add(self, name: str, action: str, shape: Iterable[int] = (), detail: str = "") -> None:
        assert action in ACTIONS, action
        self.entries.append(LoadEntry(name, action, tuple(shape), detail))

    def by_action(self, action: str) -> list[LoadEntry]:
        return [e for e in self.entries if e.action == action]

    def entry(self, name: str) -> LoadEntry:
        return next(e for e in self.entries if e.name == name)

    def counts(self) -> dict[str, int]:
        return {a: len(self.by_action(a)) for a in ACTIONS}

    def summary(self) -> str:
        return ", ".join(f"{n} {a}" for a, n in self.counts().items() if n)

    def table(self, verbose: bool = False):
        """A rich Table; plainly loaded tensors are grouped by module unless `verbose`."""
        from rich.table import Table

        t = Table(title=f"init from {self.source}" if self.source else "init from checkpoint")
        for col in ("tensor", "action", "shape", "detail"):
            t.add_column(col)
        groups: dict[str, list[LoadEntry]] = {}
        for e in self.entries:
            if e.action == "loaded" and not verbose:
                groups.setdefault(e.name.split(".")[0], []).append(e)
                continue
            t.add_row(e.name, e.action, "×".join(map(str, e.shape)), e.detail)
        for prefix, items in groups.items():
            n = sum(_numel(e.shape) for e in items)
            t.add_row(f"{prefix}.*" if len(items) > 1 or items[0].name != prefix else prefix, "loaded",
                      "", f"{len(items)} tensors, {n:,} values")
        t.caption = self.summary()
        return t

    def print(self, console=None, verbose: bool = False) -> None:
        from rich.console import Console

        (console or Console()).print(self.table(verbose))


def _numel(shape: tuple) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _speaker_names(speakers: dict | Sequence[str] | None, n: int) -> list[str]:
    """Names in id order, from a {name: id} map or a list; ids as names when unknown."""
    if speakers is None:
        return [str(i) for i in range(n)]
    if isinstance(speakers, dict):
        names = [str(i) for i in range(n)]
        for name, i in speakers.items():
            if 0 <= int(i) < n:
                names[int(i)] = str(name)
        return names
    return [str(s) for s in speakers]


def init_from(
    model: torch.nn.Module,
    ckpt: dict | str | os.PathLike,
    new_symbols: Sequence[str] | None = None,
    new_speakers: dict | Sequence[str] | None = None,
    *,
    keep: Iterable[str] = KEEP_ON_INIT,
) -> LoadReport:
    """Warm-start `model` (weights only) from a checkpoint (ours or NVIDIA's, dict or path).

    Rules (every tensor gets a report line):
    - same name and shape -> copied ("loaded");
    - `encoder.word_emb.weight`: rows matched by **symbol string** ("remapped"): shared symbols
      copied; symbols new to the checkpoint get the mean of the checkpoint's non-padding rows
      (a neutral start that sits inside the trained embedding cloud); the padding row is 0;
    - `speaker_emb.weight`: rows matched by speaker name; new speakers get the mean of the
      checkpoint's rows; from a single-speaker checkpoint all rows start at 0 (the embedding is
      added to the encoder input, so 0 = the pretrained voice). From a multi-speaker checkpoint
      into a single-speaker model, the row of the speaker with the same name (else the mean
      row) is folded into the symbol embedding, which is exactly equivalent;
    - shape mismatch -> the model keeps its fresh init ("skipped" with both shapes);
    - in the model but not the checkpoint -> "re-initialised"; in the checkpoint but not the
      model -> "skipped"; names in `keep` (pitch statistics) keep the model's value ("kept").
    """
    if not isinstance(ckpt, dict):
        source = str(ckpt)
        ckpt = load_checkpoint(ckpt)
    else:
        source = str(ckpt.get("source", {}).get("file", "")) if isinstance(ckpt.get("source"), dict) else ""
    src = float32_state(clean_state_dict(ckpt["model"]))
    tgt = model.state_dict()
    keep = set(keep)
    report = LoadReport(source=source)
    new_state: dict[str, torch.Tensor] = {}
    header = CheckpointHeader.of(ckpt)
    src_cfg = header.config
    pad = int(getattr(getattr(model, "config", None), "padding_idx", 0))

    for name, t in tgt.items():
        if name in keep:
            report.add(name, "kept", t.shape, "set from the new workspace")
        elif name == SPEAKER_EMB and name not in src:
            new_state[name] = torch.zeros_like(t)
            report.add(name, "re-initialised", t.shape,
                       "single-speaker checkpoint: rows set to 0, every speaker starts as its voice")
        elif name not in src:
            report.add(name, "re-initialised", t.shape, "not in the checkpoint")
        elif name == SYMBOL_EMB:
            w = _remap_symbols(src[name], t, header.symbols, new_symbols, pad, report)
            if w is not None:
                new_state[name] = w
        elif name == SPEAKER_EMB:
            new_state[name] = _remap_speakers(src[name], t, header.speakers, new_speakers, report)
        elif tuple(src[name].shape) != tuple(t.shape):
            report.add(name, "skipped", src[name].shape,
                       f"shape {tuple(src[name].shape)} in the checkpoint, {tuple(t.shape)} in the model; "
                       "the model keeps its fresh init")
        else:
            new_state[name] = src[name].to(t.dtype)
            report.add(name, "loaded", t.shape)

    if SPEAKER_EMB in src and SPEAKER_EMB not in tgt:
        _fold_speaker(src[SPEAKER_EMB], header.speakers, new_speakers, float(src_cfg.get("speaker_emb_weight", 1.0)),
                      new_state, pad, report)
    for name, s in src.items():
        if name not in tgt and name != SPEAKER_EMB:
            report.add(name, "skipped", s.shape, "not in this model")

    model.load_state_dict({**tgt, **new_state})
    return report


def _remap_symbols(src_w, tgt_w, src_symbols, new_symbols, pad: int, report: LoadReport):
    if new_symbols is None:
        new_symbols = src_symbols
    if src_w.shape[1] != tgt_w.shape[1]:
        report.add(SYMBOL_EMB, "skipped", src_w.shape,
                   f"embedding width {src_w.shape[1]} in the checkpoint, {tgt_w.shape[1]} in the model")
        return None
    if src_symbols is None or new_symbols is None:
        if src_w.shape == tgt_w.shape:
            report.add(SYMBOL_EMB, "loaded", tgt_w.shape, "copied by position: no symbol table to match by name")
            return src_w.to(tgt_w.dtype)
        report.add(SYMBOL_EMB, "skipped", src_w.shape, "no symbol table in the checkpoint to match rows by name")
        return None
    if len(new_symbols) != tgt_w.shape[0]:
        raise ValueError(f"{len(new_symbols)} symbols given for an embedding of {tgt_w.shape[0]} rows")
    index = {s: i for i, s in enumerate(src_symbols)}
    rows = [i for i in range(src_w.shape[0]) if i != pad]
    mean = src_w[rows].mean(0) if rows else torch.zeros(src_w.shape[1])
    out = torch.empty_like(tgt_w)
    new, from_similar = [], []
    for i, s in enumerate(new_symbols):
        j = index.get(s)
        if i == pad:  # the padding row is 0 in a fresh nn.Embedding and never trained
            out[i] = 0.0
        elif j is not None:
            out[i] = src_w[j]
        else:
            # a sound the checkpoint never saw starts at the nearest ones it knows (iː at i,
            # oʊ at o + u), not at one shared mean that every new vowel would have to leave
            similar = similar_symbols(s, index)
            out[i] = src_w[[index[x] for x in similar]].mean(0) if similar else mean
            new.append(s)
            if similar:
                from_similar.append(f"{s}<{'+'.join(similar)}")
    shared = sum(1 for s in new_symbols if s in index)
    same_layout = list(new_symbols) == list(src_symbols)
    if same_layout:
        report.add(SYMBOL_EMB, "loaded", tgt_w.shape, "same symbol table")
    else:
        others = [s for s in new if not any(f.startswith(s + "<") for f in from_similar)]
        shown = " ".join(from_similar[:40] + others[:40])
        report.add(SYMBOL_EMB, "remapped", tgt_w.shape,
                   f"{shared} of {len(new_symbols)} symbols copied by name; {len(new)} new: "
                   f"{len(from_similar)} from the nearest known sounds, {len(others)} from the mean of "
                   f"{len(rows)} checkpoint rows{': ' + shown if new else ''}")
    return out


def _remap_speakers(src_w, tgt_w, src_speakers, new_speakers, report: LoadReport):
    if src_w.shape[1] != tgt_w.shape[1]:
        report.add(SPEAKER_EMB, "skipped", src_w.shape, "speaker embedding width differs; fresh init kept")
        return tgt_w
    src_names = _speaker_names(src_speakers, src_w.shape[0])
    tgt_names = _speaker_names(new_speakers, tgt_w.shape[0])
    index = {s: i for i, s in enumerate(src_names)}
    out = src_w.mean(0, keepdim=True).repeat(tgt_w.shape[0], 1).to(tgt_w.dtype)
    copied = [n for n in tgt_names if n in index]
    for i, n in enumerate(tgt_names):
        if n in index:
            out[i] = src_w[index[n]]
    new = [n for n in tgt_names if n not in index]
    action = "loaded" if src_names == tgt_names else "remapped"
    report.add(SPEAKER_EMB, action, tgt_w.shape,
               f"{len(copied)} of {len(tgt_names)} speakers copied by name"
               + (f"; new (mean of {src_w.shape[0]} rows): {', '.join(new)}" if new else ""))
    return out


def _fold_speaker(src_w, src_speakers, new_speakers, weight: float, new_state: dict, pad: int,
                  report: LoadReport) -> None:
    names = _speaker_names(src_speakers, src_w.shape[0])
    wanted = _speaker_names(new_speakers, 1)[0] if new_speakers is not None else None
    if wanted in names:
        vec, what = src_w[names.index(wanted)], f"speaker {wanted!r}"
    else:
        vec, what = src_w.mean(0), f"mean of {src_w.shape[0]} speakers"
    if SYMBOL_EMB not in new_state or new_state[SYMBOL_EMB].shape[1] != vec.shape[0]:
        report.add(SPEAKER_EMB, "skipped", src_w.shape, "single-speaker model: speaker embedding dropped")
        return
    emb = new_state[SYMBOL_EMB].clone()
    mask = torch.ones(emb.shape[0], dtype=torch.bool)
    mask[pad] = False
    emb[mask] += weight * vec.to(emb.dtype)
    new_state[SYMBOL_EMB] = emb
    report.add(SPEAKER_EMB, "remapped", src_w.shape, f"single-speaker model: {what} folded into {SYMBOL_EMB}")
