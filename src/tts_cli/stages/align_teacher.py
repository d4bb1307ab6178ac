"""`tts align WORK --from-teacher CORPUS`: symbol durations from a teacher corpus, no aligner training.

`tts make-corpus --teacher kokoro` records the teacher's own timing of every phoneme token
(CORPUS[/<voice>]/teacher_durations.jsonl, and teacher/<id>.json per utterance). Each manifest
utterance of a workspace made from that corpus gets its durations from them:

  token boundaries (cumulative `durations_s`, seconds in the source wav) -> minus the teacher's
  audio lead (kokoro.AUDIO_LEAD_S: its audio runs ~40 ms ahead of its durations) -> minus
  `trim_start_s` -> frames at the workspace's sample_rate / hop_length (rounded half up) ->
  clipped to [0, n_frames]; the first symbol starts at frame 0 and the last ends at n_frames, so
  the edge symbols absorb the teacher's leading/trailing pad and whatever silence preprocess kept.

Then the durations take the learned aligner's convention (`zero_width_stress`, `space_quiet_db`;
silent_symbols_as_aligner): stress marks no frames, word spaces only quiet ones. A voice trained on
the teacher's token timing (~5 frames on each) had to relearn it before fine-tuning on `tts align`
durations of real speech (stop 37: 0.6 % CER free-running, 45 % with a speaker's aligned durations).

Matching tokens to our symbols: both sides become character strings (Kokoro's single letters for
tied pairs, e.g. ʧ, go back to our tʃ; a token covering several characters shares its time evenly)
and are aligned character by character. Characters only one side has that are not sounds
(punctuation the teacher's vocabulary drops such as ¿ ¡, spaces, stress marks) get no time; the
sounding symbols then keep the teacher's exact boundaries ("equivalent" match). Differing sounds
are bridged by spreading the teacher's time over our characters of that span: accepted when the
sounds agree to `min_match` (flagged in align_report.jsonl), else the utterance is a mismatch.

Mismatch policy: an utterance with no teacher row, unusable teacher data or mismatching tokens is
reported (align_report.jsonl: the file and the reason) and gets no teacher durations; the run goes
on. With fallback="learned" those utterances alone are then aligned by the learned aligner (`tts
align`'s training + MAS, trained on the whole workspace); with "skip" (default) they are counted
and `tts train` will ask for their durations. An existing durations file of such an utterance is
left as it is.

Incremental: a durations file already holding exactly the teacher's durations is not rewritten;
one from another source (the learned aligner, an older corpus) is replaced; --force rewrites all.
"""
from __future__ import annotations

import difflib
import json
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tts_cli.config import audio_config, dump_yaml
from tts_cli.errors import AlignmentError, ConfigError
from tts_cli.stages.align import align as learned_align
from tts_cli.stages.align import print_summary_table
from tts_cli.teacher.kokoro import AUDIO_LEAD_S, TIED_TO_KOKORO
from tts_cli.workspace import Workspace, atomic_save_npy, atomic_write_jsonl, atomic_write_text, read_jsonl

from .align_data import Utterance
from .align_durations import plot_alignment, silent_symbols_as_aligner
from .align_settings import align_config, learned_settings, workspace_config

TEACHER_FILE = "teacher_durations.jsonl"
SIDECAR_DIR = "teacher"
FALLBACKS = ("skip", "learned")
# Seconds the teacher's durations may disagree with its own wav length before the row is distrusted.
LENGTH_TOLERANCE_S = 0.05


def _teacher_letters() -> dict[str, str]:
    """Kokoro's single letters for tied pairs -> the characters our front end writes (ʧ -> tʃ)."""
    return {letter: tied.replace("^", "") for tied, letter in TIED_TO_KOKORO.items()}


def is_sounding_char(ch: str) -> bool:
    """A character that is (part of) a sound: not a space, stress mark or punctuation."""
    return not (ch.isspace() or ch in "ˈˌ'" or unicodedata.category(ch).startswith("P"))


# --------------------------------------------------------------------------- teacher rows

@dataclass
class TeacherRow:
    id: str
    folder: Path  # the voice folder (holds wavs/ and teacher_durations.jsonl)
    where: str  # file (and line) it came from, for messages
    tokens: list = field(default_factory=list)
    durations_s: list = field(default_factory=list)
    duration_s: float | None = None  # the teacher wav's length


def _teacher_folders(corpus: Path) -> list[Path]:
    """Every folder under `corpus` (itself included) holding teacher_durations.jsonl or teacher/*.json."""
    found = {p.parent for p in corpus.rglob(TEACHER_FILE) if p.is_file()}
    found |= {p.parent for p in corpus.rglob(SIDECAR_DIR) if p.is_dir() and next(p.glob("*.json"), None)}
    if corpus.name == SIDECAR_DIR and next(corpus.glob("*.json"), None):  # CORPUS/teacher given itself
        found.add(corpus.parent)
    return sorted(found)


def _row_from(obj, folder: Path, where: str) -> tuple[TeacherRow | None, str | None]:
    if not isinstance(obj, dict) or not obj.get("id"):
        return None, f"{where}: not a teacher row (no id)"
    tokens, durs = obj.get("tokens"), obj.get("durations_s")
    if not isinstance(tokens, list) or not isinstance(durs, list):
        return None, f"{where}: {obj['id']}: no tokens/durations_s lists"
    if len(tokens) != len(durs):
        return None, f"{where}: {obj['id']}: {len(tokens)} tokens but {len(durs)} durations"
    try:
        values = [float(d) for d in durs]
    except (TypeError, ValueError):
        return None, f"{where}: {obj['id']}: durations_s are not numbers"
    if not all(np.isfinite(v) and v >= 0 for v in values):
        return None, f"{where}: {obj['id']}: negative or non-finite durations"
    length = obj.get("duration_s")
    return TeacherRow(str(obj["id"]), folder, where, [str(t) for t in tokens], values,
                      float(length) if isinstance(length, (int, float)) else None), None


def read_teacher_rows(corpus: str | Path) -> tuple[list[TeacherRow], list[str], list[Path]]:
    """(rows, problems, folders) of a make-corpus folder, one voice or one sub-folder per voice.

    Per folder: teacher_durations.jsonl, then teacher/<id>.json for ids the jsonl lacks (a corpus
    still being made only has those: the jsonl is rebuilt at the end of every make-corpus run)."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise AlignmentError(f"{corpus}: teacher corpus folder not found")
    folders = _teacher_folders(corpus)
    if not folders:
        raise AlignmentError(f"{corpus}: no {TEACHER_FILE} or {SIDECAR_DIR}/*.json found below it "
                             "(made by `tts make-corpus --teacher kokoro`)")
    rows, problems = [], []
    for folder in folders:
        seen = set()
        jsonl = folder / TEACHER_FILE
        if jsonl.is_file():
            for n, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    problems.append(f"{jsonl}:{n}: not JSON ({e})")
                    continue
                row, problem = _row_from(obj, folder, f"{jsonl}:{n}")
                if problem:
                    problems.append(problem)
                if row:
                    rows.append(row)
                    seen.add(row.id)
        for side in sorted((folder / SIDECAR_DIR).glob("*.json")):
            if side.stem in seen:
                continue
            try:
                obj = json.loads(side.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                problems.append(f"{side}: unreadable ({e})")
                continue
            row, problem = _row_from(obj, folder, str(side))
            if problem:
                problems.append(problem)
            if row:
                rows.append(row)
    return rows, problems, folders


class TeacherIndex:
    """Finds the teacher row of a manifest row: by the source wav's folder and stem, by id, by the
    source stem, or by id without a speaker prefix (`tts preprocess` prefixes sub-folder speakers'
    ids with the folder name unless they already start with it)."""

    def __init__(self, rows: list[TeacherRow]):
        self.by_id: dict[str, list[TeacherRow]] = {}
        for r in rows:
            self.by_id.setdefault(r.id, []).append(r)
        self.by_folder = {(r.folder.resolve(), r.id): r for r in rows}

    def _unique(self, key: str) -> TeacherRow | None:
        found = self.by_id.get(key) or []
        return found[0] if len(found) == 1 else None

    def find(self, row: dict) -> tuple[TeacherRow | None, str | None]:
        uid, source = str(row.get("id", "")), row.get("source")
        stem = Path(str(source)).stem if source else None
        if source:
            wav = Path(str(source))
            try:
                hit = self.by_folder.get((wav.parent.parent.resolve(), wav.stem))
            except OSError:
                hit = None
            if hit:
                return hit, None
        for key in (uid, stem):
            if key and self._unique(key):
                return self._unique(key), None
        speaker = str(row.get("speaker") or "")
        if speaker and uid.startswith(speaker + "_") and self._unique(uid[len(speaker) + 1:]):
            return self._unique(uid[len(speaker) + 1:]), None
        candidates = (self.by_id.get(uid) or []) + (self.by_id.get(stem) or [] if stem != uid else [])
        if len(candidates) > 1:
            return None, (f"{len(candidates)} teacher rows with id {candidates[0].id!r} "
                          f"({', '.join(c.where for c in candidates[:3])}) and the source path does not say which")
        return None, None


# --------------------------------------------------------------------------- token matching

@dataclass
class Match:
    durations: np.ndarray | None  # int32 per symbol, or None (mismatch)
    kind: str  # exact | equivalent | approximate | mismatch
    notes: list = field(default_factory=list)  # reasons for the report


def _teacher_chars(tokens: list[str], durations: list[float], letters: dict) -> tuple[str, np.ndarray]:
    """(characters, boundary times [len+1]) of the inner tokens (between the '' pads): a token's
    time is shared evenly by its characters; time of a token without characters (an inner pad)
    goes to the character before it."""
    lead = durations[0] if tokens and tokens[0] == "" else 0.0
    inner = slice(1 if tokens and tokens[0] == "" else 0, -1 if len(tokens) > 1 and tokens[-1] == "" else None)
    chars, starts = [], []
    t = lead
    for tok, d in zip(tokens[inner], durations[inner]):
        text = unicodedata.normalize("NFC", letters.get(tok, tok))
        for i, ch in enumerate(text):
            chars.append(ch)
            starts.append(t + d * i / len(text))
        t += d
    return "".join(chars), np.array(starts + [t], dtype=np.float64)


def _symbol_times(ours: str, theirs: str, tb: np.ndarray) -> np.ndarray:
    """Times of our character boundaries [len(ours)+1] from the teacher's `tb` via a char alignment."""
    ob = np.zeros(len(ours) + 1)
    sm = difflib.SequenceMatcher(None, ours, theirs, autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():  # in order: a later block's first boundary wins
        if op == "equal":
            ob[i1: i2 + 1] = tb[j1: j2 + 1]
        elif op == "replace":
            ob[i1: i2 + 1] = tb[j1] + (tb[j2] - tb[j1]) * np.arange(i2 - i1 + 1) / (i2 - i1)
        elif op == "insert":  # teacher time with no character of ours goes to the one before
            ob[i1] = tb[j2]
        else:  # "delete": our characters the teacher lacks take no time
            ob[i1: i2 + 1] = tb[j1]
    return ob


def _differences(ours: str, theirs: str, offsets: list[int], limit: int = 4) -> list[str]:
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ours, theirs, autojunk=False).get_opcodes():
        if op != "equal" and any(is_sounding_char(c) for c in ours[i1:i2] + theirs[j1:j2]):
            sym = int(np.searchsorted(offsets, i1, side="right")) - 1
            out.append(f"symbol #{max(sym, 0)}: ours {ours[i1:i2]!r}, teacher {theirs[j1:j2]!r}")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def match_durations(symbols: list[str], n_frames: int, trim_start_s: float, sample_rate: int, hop_length: int,
                    tokens: list[str], durations_s: list[float], min_match: float = 0.9,
                    letters: dict | None = None, lead_s: float = 0.0) -> Match:
    """Durations (int32, one per symbol, summing to n_frames) of `symbols` from teacher tokens;
    `lead_s`: how far the teacher's audio runs ahead of its durations (boundaries move earlier)."""
    letters = _teacher_letters() if letters is None else letters
    theirs, tb = _teacher_chars(tokens, durations_s, letters)
    texts = [unicodedata.normalize("NFC", s) for s in symbols]
    ours = "".join(texts)
    offsets = list(np.cumsum([0] + [len(s) for s in texts]))
    if not theirs or not ours:
        return Match(None, "mismatch", ["no teacher phoneme tokens" if not theirs else "no symbols"])
    inner = [t for t in tokens if t != ""]
    if inner == list(symbols):
        kind, notes = "exact", []
    else:
        s_ours = "".join(c for c in ours if is_sounding_char(c))
        s_theirs = "".join(c for c in theirs if is_sounding_char(c))
        if s_ours == s_theirs:
            kind, notes = "equivalent", []
        else:
            ratio = difflib.SequenceMatcher(None, s_ours, s_theirs, autojunk=False).ratio()
            diffs = _differences(ours, theirs, offsets)
            if ratio < min_match:
                return Match(None, "mismatch", [f"teacher tokens differ from the symbols (sound match {ratio:.0%} < "
                                                f"{min_match:.0%}): " + "; ".join(diffs)])
            kind, notes = "approximate", [f"teacher tokens differ (sound match {ratio:.0%}), timing spread over "
                                          "the differing spans: " + "; ".join(diffs)]
    ob = _symbol_times(ours, theirs, tb)
    frames = np.floor((ob[offsets] - lead_s - trim_start_s) * sample_rate / hop_length + 0.5)
    frames = np.clip(frames, 0, n_frames).astype(np.int64)
    frames[0], frames[-1] = 0, n_frames  # the edge symbols take the pads and the kept silence
    frames = np.maximum.accumulate(frames)
    dur = np.diff(frames).astype(np.int32)
    assert int(dur.sum()) == n_frames and (dur >= 0).all()
    return Match(dur, kind, notes)


# --------------------------------------------------------------------------- the stage

def _timing_problem(row: dict, t: TeacherRow, sample_rate: int, hop: int) -> str | None:
    """Why the teacher's timing cannot belong to this manifest row's audio, or None."""
    total = float(sum(t.durations_s))
    if t.duration_s is not None and abs(total - t.duration_s) > LENGTH_TOLERANCE_S:
        return f"{t.where}: teacher durations sum to {total:.3f} s but its wav lasts {t.duration_s:.3f} s"
    end = float(row.get("trim_start_s") or 0.0) + (int(row["n_frames"]) - 1) * hop / sample_rate
    if end > total + LENGTH_TOLERANCE_S + hop / sample_rate:
        return (f"{t.where}: the workspace audio runs to {end:.3f} s of the source, the teacher's timing "
                f"only to {total:.3f} s (another recording?)")
    return None


def _plot(ws: Workspace, row: dict, dur: np.ndarray) -> None:
    """alignments/<id>.png with the learned stage's plot, the teacher's hard path as the image."""
    n = int(row["n_frames"])
    hard = np.zeros((n, len(dur)), dtype=np.float32)
    hard[np.arange(n), np.repeat(np.arange(len(dur)), dur)] = 1.0
    utt = Utterance(row["id"], np.zeros(len(dur), np.int64), n, list(row["symbols"]), np.zeros(len(dur), bool))
    plot_alignment(ws.dir("alignments") / f"{row['id']}.png", utt, hard, dur)


def align_from_teacher(work: str | Path, corpus: str | Path, force: bool = False, fallback: str = "skip",
                       min_match: float = 0.9, config: str | Path | dict | None = None, console=None,
                       **learned) -> dict:
    """Write WORK/durations/<id>.npy from the teacher corpus `corpus` (see the module docstring).

    fallback: "skip" or "learned" (utterances the teacher cannot give durations are aligned by
    the learned aligner; `learned` holds its keyword arguments: steps, batch_size, device,
    from_checkpoint, seed). Returns a summary dict.
    """
    from rich.console import Console

    if fallback not in FALLBACKS:
        raise ConfigError(f"fallback {fallback!r}: use one of {', '.join(FALLBACKS)}")
    if not 0.0 < float(min_match) <= 1.0:
        raise ConfigError(f"min_match {min_match} out of range (0, 1]")
    console = console or Console(stderr=True)
    t_start = time.perf_counter()
    ws = Workspace(work)
    rows = ws.load_manifest()
    table = set(ws.load_symbols())
    cfg_all = workspace_config(ws, config)
    audio = audio_config(cfg_all)
    sample_rate, hop = int(audio.sample_rate), int(audio.hop_length)
    cfg = align_config(cfg_all)  # plots, and the silent-symbol convention shared with the learned aligner
    if fallback == "learned":  # its settings are checked now, not after the teacher's durations are written
        learned_settings(cfg_all, learned.get("steps"), learned.get("batch_size"))
    corpus = Path(corpus)
    teacher_rows, problems, folders = read_teacher_rows(corpus)
    for p in problems:
        console.print(f"[yellow]teacher corpus: {p}[/]")
    index, letters = TeacherIndex(teacher_rows), _teacher_letters()

    plot_ids = set(sorted(str(r.get("id")) for r in rows)[:cfg.plots])  # as the learned stage: the first ids
    convention = {"zero_width_stress": cfg.zero_width_stress, "space_quiet_db": float(cfg.space_quiet_db)}
    timing = {"sample_rate": sample_rate, "hop": hop, "min_match": min_match, "letters": letters,
              "lead_s": AUDIO_LEAD_S, **convention}
    counts, report, leftovers = _write_teacher_durations(ws, rows, table, index, corpus, timing, force, plot_ids,
                                                         console)

    if rows and not counts["exact"] + counts["equivalent"] + counts["approximate"]:
        console.print("[yellow]no utterance matched the teacher: was the workspace made from this corpus with "
                      "text_type text (espeak phonemes)?[/]")
    learned_summary = None
    if leftovers and fallback == "learned":
        console.print(f"learned aligner for the {len(leftovers)} utterance(s) without teacher durations")
        learned_summary = learned_align(work, force=force, config=config, console=console, only=set(leftovers),
                                        **learned)
    report = _merge_report(ws, report, set(leftovers))
    missing = [u for u in leftovers if not ws.duration_path(u).exists()]
    settings = {"method": "teacher", "corpus": str(corpus.resolve()), "teacher_folders": [str(f) for f in folders],
                "sample_rate": sample_rate, "hop_length": hop, "min_match": float(min_match), "fallback": fallback,
                "plots": cfg.plots, "teacher_audio_lead_s": AUDIO_LEAD_S, **convention}
    doc = _write_align_config(ws, settings, corpus, learned_summary is not None)

    summary = {
        "utterances": len(rows), "teacher_rows": len(teacher_rows), **counts,
        "no_teacher": len(leftovers), "learned": (learned_summary or {}).get("extracted", 0), "missing": len(missing),
        "flagged": len(report), "seconds": time.perf_counter() - t_start, "source": doc["source"],
    }
    _print_summary(console, ws, summary)
    if missing:
        console.print(f"[yellow]{len(missing)} utterance(s) have no durations (e.g. {', '.join(missing[:3])}; "
                      f"see {ws.align_report}): `tts train` needs them all. Rerun with --fallback learned to "
                      "align those with the learned aligner.[/]")
    return summary


def _write_teacher_durations(ws: Workspace, rows: list[dict], table: set, index: TeacherIndex, corpus: Path,
                             timing: dict, force: bool, plot_ids: set, console) -> tuple[dict, list[dict], list[str]]:
    """WORK/durations/<id>.npy from the teacher for every row it can align; (counts by match kind
    and written/kept, report rows, ids left without teacher durations)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts = {"exact": 0, "equivalent": 0, "approximate": 0, "written": 0, "kept": 0}
    report, leftovers = [], []
    with Progress(TextColumn("teacher durations"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("teacher", total=len(rows))
        for row in rows:
            progress.advance(task)
            uid = str(row.get("id", "?"))
            reason, match, t = _match_row(row, ws, table, index, corpus, timing)
            if reason:
                console.print(f"[yellow]no teacher durations for {uid}: {reason}[/]")
                leftovers.append(uid)
                report.append({"id": uid, "source": "teacher", "reasons": [reason]})
                continue
            counts[match.kind] += 1
            if match.notes:
                report.append({"id": uid, "source": "teacher", "teacher": t.where, "reasons": match.notes})
            path = ws.duration_path(uid)
            if not force and path.exists() and _same(path, match.durations):
                counts["kept"] += 1
                continue
            atomic_save_npy(path, match.durations)
            counts["written"] += 1
            if uid in plot_ids:
                _plot(ws, row, match.durations)
    return counts, report, leftovers


def _match_row(row: dict, ws: Workspace, table: set, index: TeacherIndex, corpus: Path,
               timing: dict) -> tuple[str | None, Match | None, TeacherRow | None]:
    """(why this utterance gets no teacher durations or None, the match, the teacher row)."""
    uid, syms = str(row.get("id", "?")), list(row.get("symbols") or [])
    where = row.get("source") or f"{ws.manifest} id {uid}"
    reason, match, t = None, None, None
    unknown = sorted({s for s in syms if s not in table})
    if not syms:
        reason = f"{ws.manifest}: {uid} has no symbols"
    elif unknown:
        reason = f"{ws.manifest}: {uid}: symbols not in symbols.json: {' '.join(unknown)}"
    elif int(row.get("n_frames") or 0) < 1:
        reason = f"{ws.manifest}: {uid}: n_frames {row.get('n_frames')!r}"
    else:
        t, ambiguous = index.find(row)
        if t is None:
            reason = ambiguous or f"{where}: no teacher row for {uid} under {corpus}"
        else:
            sample_rate, hop = timing["sample_rate"], timing["hop"]
            reason = _timing_problem(row, t, sample_rate, hop)
            if reason is None:
                match = match_durations(syms, int(row["n_frames"]), float(row.get("trim_start_s") or 0.0),
                                        sample_rate, hop, t.tokens, t.durations_s, timing["min_match"],
                                        timing["letters"], timing["lead_s"])
                if match.durations is None:
                    reason = f"{t.where}: " + "; ".join(match.notes)
                else:
                    reason = _as_aligner_timing(ws, uid, syms, match, timing)
    return reason, match, t


def _as_aligner_timing(ws: Workspace, uid: str, syms: list[str], match: Match, timing: dict) -> str | None:
    """The match's durations in the learned aligner's convention (silent_symbols_as_aligner);
    the reason when the utterance's mel cannot be read for it."""
    mel = None
    if timing["space_quiet_db"] > 0:
        try:
            mel = np.load(ws.mel_path(uid), allow_pickle=False)
        except (OSError, ValueError) as e:
            return f"{ws.mel_path(uid)}: cannot read the mel ({e})"
        if mel.ndim != 2 or mel.shape[1] != int(match.durations.sum()):
            return f"{ws.mel_path(uid)}: shape {mel.shape} does not match its {int(match.durations.sum())} frames"
    match.durations = silent_symbols_as_aligner(match.durations, syms, mel, timing["zero_width_stress"],
                                                timing["space_quiet_db"])
    return None


def _write_align_config(ws: Workspace, settings: dict, corpus: Path, learned_ran: bool) -> dict:
    """WORK/align_config.yaml for the teacher run, keeping the learned fallback's settings inside it."""
    doc = {"align": settings, "source": f"teacher:{corpus.resolve()}"}
    learned_cfg = ws.root / "align_config.yaml"  # just written by the learned fallback
    if learned_ran and learned_cfg.exists():
        import yaml

        doc["fallback_learned"] = yaml.safe_load(learned_cfg.read_text(encoding="utf-8"))
    atomic_write_text(ws.root / "align_config.yaml", dump_yaml(doc))
    return doc


def _same(path: Path, dur: np.ndarray) -> bool:
    try:
        old = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return False
    return old.dtype == dur.dtype and old.shape == dur.shape and bool((old == dur).all())


def _merge_report(ws: Workspace, rows: list[dict], leftovers: set) -> list[dict]:
    """align_report.jsonl = this run's teacher rows ("source": "teacher") plus the learned stage's
    rows of the utterances the teacher did not align (their durations, if any, come from it). Every
    other row is stale: its utterance now has teacher durations, or left the manifest."""
    kept = [r for r in read_jsonl(ws.align_report) if r.get("source") != "teacher" and r.get("id") in leftovers]
    out = sorted(rows + kept, key=lambda r: (str(r["id"]), r.get("source") != "teacher"))
    atomic_write_jsonl(ws.align_report, out)
    return out


def _print_summary(console, ws: Workspace, s: dict) -> None:
    print_summary_table(console, f"tts align --from-teacher: {ws.root}", s, [
        ("utterances in manifest", "utterances"), ("teacher rows found", "teacher_rows"),
        ("tokens identical", "exact"), ("tokens equivalent (tie letters, punctuation)", "equivalent"),
        ("tokens approximate (flagged)", "approximate"), ("durations written", "written"),
        ("durations kept (unchanged)", "kept"), ("no teacher durations", "no_teacher"),
        ("  of which aligned now by the learned aligner", "learned"),
        ("  of which without durations", "missing"), ("report rows (align_report.jsonl)", "flagged"),
        ("time (s)", "seconds")])
