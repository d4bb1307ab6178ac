"""The report of `tts evaluate`: summaries over utterances and speakers, strict JSON, the
terminal table and the compare.png figure."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tts_cli.evaluation.metrics import char_weighted, summarize
from tts_cli.workspace import atomic_write_bytes

SUMMARY_KEYS = ("cer", "cer_folded", "wer", "ref_cer", "ref_cer_folded", "ref_wer", "mcd_db", "f0_rmse_cents",
                "f0_gross_error_rate", "f0_rmse_cents_fine", "f0_mean_offset_cents", "voicing_error",
                "duration_diff_s", "duration_ratio", "speaking_rate_diff_pct", "dur_mae_frames", "rtf",
                "syn_f0_median_hz", "ref_f0_median_hz", "syn_f0_range_st", "ref_f0_range_st", "syn_rate", "ref_rate",
                "dnsmos_p808", "dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "ref_dnsmos_p808", "ref_dnsmos_ovrl")
# per speaker (a multi-speaker voice is only as good as its worst speaker): what a reader compares
SPEAKER_KEYS = ("cer", "ref_cer", "dnsmos_p808", "mcd_db", "syn_f0_median_hz", "ref_f0_median_hz", "syn_f0_range_st",
                "ref_f0_range_st", "speaking_rate_diff_pct", "rtf")


def summarize_key(records: list[dict], key: str) -> dict:
    return summarize([r.get(key) for r in records])


def char_weighted_key(records: list[dict], key: str) -> float | None:
    """The CER `key` (cer | ref_cer) over all characters of the records' scored texts, not per clip:
    a misheard one-word clip weighs its few characters, not a whole sentence. None when unscored."""
    scored = [r for r in records if r.get(key) is not None and r.get("text_scored") is not None]
    return char_weighted([r[key] for r in scored], [len(r["text_scored"]) for r in scored])


def by_speaker(records: list[dict]) -> dict:
    """{speaker: {key: mean/median/n}} over SPEAKER_KEYS, when the utterances name speakers."""
    names = sorted({str(r["speaker"]) for r in records if r.get("speaker") is not None})
    return {n: {k: summarize_key([r for r in records if str(r.get("speaker")) == n], k) for k in SPEAKER_KEYS
                if any(r.get(k) is not None for r in records)} for n in names}


def json_safe(obj):
    """NaN/inf -> null and numpy scalars -> python, so report.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


_COLUMNS = (  # (key, header, format); short headers so the table fits 80 columns
    ("cer", "CER%", lambda v: f"{100 * v:.1f}"),
    ("cer_folded", "CERf%", lambda v: f"{100 * v:.1f}"),
    ("wer", "WER%", lambda v: f"{100 * v:.1f}"),
    ("ref_cer", "refCER%", lambda v: f"{100 * v:.1f}"),
    ("dnsmos_p808", "P808", lambda v: f"{v:.2f}"),
    ("dnsmos_ovrl", "OVRL", lambda v: f"{v:.2f}"),
    ("ref_dnsmos_p808", "refP808", lambda v: f"{v:.2f}"),
    ("mcd_db", "MCD dB", lambda v: f"{v:.2f}"),
    ("f0_rmse_cents", "F0 ¢", lambda v: f"{v:.0f}"),
    ("f0_gross_error_rate", "GPE%", lambda v: f"{100 * v:.1f}"),
    ("voicing_error", "V/UV%", lambda v: f"{100 * v:.1f}"),
    ("duration_diff_s", "Δdur s", lambda v: f"{v:+.2f}"),
    ("speaking_rate_diff_pct", "Δrate%", lambda v: f"{v:+.1f}"),
    ("dur_mae_frames", "durMAE", lambda v: f"{v:.2f}"),
)
_LEGEND = {
    "cer_folded": "CERf = accent-folded CER",
    "ref_cer": "refCER = the recogniser on the reference recording (its floor)",
    "cer": "all chars = CER over every character of the set, not the mean per clip",
    "dnsmos_p808": "P808 / OVRL = DNSMOS P.808 / P.835 overall MOS (1-5, a naturalness proxy)",
    "f0_rmse_cents": "F0 ¢ = F0 RMSE in cents where both voice",
    "f0_gross_error_rate": "GPE = share of those frames off by > 20 %",
    "speaking_rate_diff_pct": "Δrate > 0 = faster than the reference",
    "dur_mae_frames": "durMAE = per-symbol duration error in frames",
}


def print_table(console, report: dict, out: Path, max_rows: int = 40) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    cols = [c for c in _COLUMNS if c[0] in report["summary"]]

    t = Table(title=f"tts evaluate → {out}", caption=_caption(report), box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("utterance", no_wrap=True, overflow="ellipsis", max_width=24)
    for _, header, _ in cols:
        t.add_column(header, justify="right", no_wrap=True)
    recs = report["utterances"]
    for r in recs[:max_rows]:
        t.add_row(escape(r["id"]), *[fmt(r[k]) if r.get(k) is not None else "–" for k, _, fmt in cols])
    if len(recs) > max_rows:
        t.add_row(f"… {len(recs) - max_rows} more in report.json", *[""] * len(cols))
    t.add_section()
    for stat in ("mean", "median"):
        vals = [report["summary"][k][stat] for k, _, _ in cols]
        t.add_row(f"[bold]{stat}[/]", *[fmt(v) if v is not None and math.isfinite(v) else "–"
                                        for v, (_, _, fmt) in zip(vals, cols)])
    chars = [report["summary"][k].get("chars") for k, _, _ in cols]
    if any(v is not None for v in chars):  # CER over all characters, not per clip
        t.add_row("[bold]all chars[/]", *[fmt(v) if v is not None and math.isfinite(v) else ""
                                           for v, (_, _, fmt) in zip(chars, cols)])
    console.print(t)
    if len(report.get("by_speaker") or {}) > 1:
        console.print(_speaker_table(report["by_speaker"]))


_SPEAKER_COLUMNS = (  # (key, header, format) of the per-speaker means
    ("cer", "CER%", lambda v: f"{100 * v:.1f}"),
    ("ref_cer", "refCER%", lambda v: f"{100 * v:.1f}"),
    ("dnsmos_p808", "P808", lambda v: f"{v:.2f}"),
    ("mcd_db", "MCD dB", lambda v: f"{v:.2f}"),
    ("syn_f0_median_hz", "F0 Hz", lambda v: f"{v:.0f}"),
    ("ref_f0_median_hz", "refF0 Hz", lambda v: f"{v:.0f}"),
    ("syn_f0_range_st", "range st", lambda v: f"{v:.1f}"),
    ("ref_f0_range_st", "refRange st", lambda v: f"{v:.1f}"),
    ("speaking_rate_diff_pct", "Δrate%", lambda v: f"{v:+.1f}"),
)


def _speaker_table(by_speaker: dict):
    """Means per speaker: intelligibility, and pitch level/range (median F0, 5-95 % span) beside the reference's."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    cols = [c for c in _SPEAKER_COLUMNS if any(c[0] in s for s in by_speaker.values())]
    t = Table(title="per speaker (means)", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("speaker", no_wrap=True)
    t.add_column("n", justify="right")
    for _, header, _ in cols:
        t.add_column(header, justify="right", no_wrap=True)
    for name, s in by_speaker.items():
        n = max((v.get("n", 0) for v in s.values()), default=0)
        cells = []
        for key, _, fmt in cols:
            v = (s.get(key) or {}).get("mean")
            cells.append(fmt(v) if v is not None and math.isfinite(v) else "–")
        t.add_row(escape(name), str(n), *cells)
    return t


def _caption(report: dict) -> str:
    asr = report["asr"]
    parts = [f"{report['n_utterances']} utterances"]
    parts.append(f"ASR {asr['name']} ({asr['language']})" if "skipped" not in asr else f"ASR skipped: {asr['skipped']}")
    if "skipped" in (report.get("dnsmos") or {}):
        parts.append(f"DNSMOS skipped: {report['dnsmos']['skipped']}")
    if report.get("vocoder_used"):
        parts.append(f"vocoder {report['vocoder_used']}")
    if report["failures"]:
        parts.append(f"{len(report['failures'])} failed")
    from rich.markup import escape

    legend = [text for key, text in _LEGEND.items() if key in report["summary"]]
    return escape("; ".join(parts) + (". " + "; ".join(legend) if legend else ""))


def plot_compare(path: Path, plots: list[dict]) -> Path:
    """Reference vs synthesised mel, and both F0 tracks on the reference's time axis."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(plots), 3, figsize=(15, 3.2 * len(plots)), squeeze=False)
    for row, p in zip(axes, plots):
        vmin, vmax = float(p["ref_mel"].min()), float(p["ref_mel"].max())
        row[0].imshow(p["ref_mel"], origin="lower", aspect="auto", vmin=vmin, vmax=vmax)
        row[0].set_title(f"{p['id']}: reference mel")
        row[1].imshow(p["syn_mel"], origin="lower", aspect="auto", vmin=vmin, vmax=vmax)
        row[1].set_title("synthesised mel")
        # the synthetic F0 drawn at the reference frames DTW paired it with
        ref_f0 = np.where(p["ref_f0"] > 0, p["ref_f0"], np.nan)
        syn_on_ref = np.full(len(ref_f0), np.nan)
        for i, j in p["path"]:
            if p["syn_f0"][j] > 0:
                syn_on_ref[i] = p["syn_f0"][j]
        row[2].plot(ref_f0, label="reference")
        row[2].plot(syn_on_ref, ".-", markersize=2, label="synthesised (DTW-aligned)")
        row[2].set_title("F0 (Hz)")
        row[2].set_xlabel("reference frame")
        row[2].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


__all__ = ["SUMMARY_KEYS", "SPEAKER_KEYS", "summarize_key", "by_speaker", "json_safe", "print_table", "plot_compare"]
