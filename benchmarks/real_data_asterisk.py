"""Build a real-speaker development corpus from Debian's Asterisk prompts.

--language en: one real female speaker (Allison Smith / Digium), ~568 IVR prompts, ~25 min.
--language it: one real male speaker (Carlo), ~560 prompts: a Romance language, the closest
               stand-in for the hidden Spanish set (fine-tuned from the Spanish base voice).
--language fr: one real female speaker (June, Canadian French).
All CC-BY-SA-3.0, G.722 at 16 kHz.
--language es-co: one real female speaker of Colombian Spanish (July E. Jimenez, GPL-2), ~250 prompts,
               ~8 min, 8 kHz GSM, from asterisk-prompt-es-co: a real Spanish voice that is not the
               hidden one. That package has no transcripts; ours are in transcripts/ (see its header).
               Use --train-minutes 0 --test 25 --more-test 0: the whole set is smaller than 12.8 min.
Audio is never committed: this script rebuilds it.

    python benchmarks/real_data_asterisk.py --out real_en [--language en] [--train-minutes 12.8] [--test 19] [--more-test 60]

Needs `apt-get` (Debian) and the PyPI package `G722` (pip install G722). Writes
  OUT/train/metadata.csv + wavs/   (LJSpeech layout: `tts preprocess OUT/train`)
  OUT/test.csv                     (`id|text|path`: held-out prompts for synthesize -i / evaluate)
  OUT/test_more.csv                (more held-out sentences, from the prompts not trained on)
  OUT/test_wavs/                   (their real recordings, the reference for CER/MCD)
The split is deterministic (sorted keys, every k-th prompt held out), sized like the Spanish
acceptance set (152 clips / 12.8 min train, 19 held out) unless told otherwise.

The SPANISH prompts of the same speaker are kept back as a hidden acceptance set: this
script never touches them.
"""
from __future__ import annotations

import argparse
import gzip
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

VERSION = "1.6.1-1"
SR = 16000
GSM_SR = 8000  # asterisk-prompt-es-co: raw GSM 06.10 frames, telephone band
EMBEDDED_KEY = re.compile(r"\s(?=[a-z][a-z0-9]*(?:[-_/][a-z0-9]+)+:\s)")  # " vm-then-pound: " inside a text
ES_CO_TRANSCRIPTS = Path(__file__).parent / "transcripts" / "asterisk-prompt-es-co.txt"


@dataclass(frozen=True)
class Source:
    """Where one speaker's prompts come from and how to read them."""

    folder: str                 # usr/share/asterisk/sounds/<folder>
    packages: tuple[str, ...]   # Debian packages holding the audio (and transcripts)
    suffix: str                 # audio file suffix under the folder
    transcript_lines: Callable[[Path], Iterable[str]]  # unpacked root -> "key: text" lines
    decode: Callable[[Path], tuple[np.ndarray, int]]   # audio file -> (samples, rate)


def decode_g722(path: Path) -> tuple[np.ndarray, int]:
    import G722  # PyPI G722: a C G.722 decoder
    pcm = G722.G722(SR, 64000).decode(path.read_bytes())
    return np.asarray(pcm, dtype=np.float32) / 32768.0, SR


def decode_raw_gsm(path: Path) -> tuple[np.ndarray, int]:
    # libsndfile reads headerless GSM 06.10 as RAW + GSM610
    wav, _ = sf.read(path, format="RAW", subtype="GSM610", samplerate=GSM_SR, channels=1, dtype="float32")
    return wav, GSM_SR


def core_sounds(language: str, folder: str) -> Source:
    """asterisk-core-sounds-LANG (+ its G.722 build): Digium's studio prompts with their list."""
    doc = f"usr/share/doc/asterisk-core-sounds-{language}/core-sounds-{language}.txt.gz"
    return Source(folder, tuple(f"asterisk-core-sounds-{language}{kind}={VERSION}" for kind in ("", "-g722")),
                  ".g722", lambda root: gzip.open(root / doc, "rt", encoding="utf-8", errors="replace"),
                  decode_g722)


SOURCES = {
    "en": core_sounds("en", "en_US_f_Allison"),
    "it": core_sounds("it", "it_IT_m_Carlo"),
    "fr": core_sounds("fr", "fr_CA_f_June"),
    # no transcripts in the package: ours (benchmarks/transcripts/)
    "es-co": Source("es", ("asterisk-prompt-es-co=0.20070403-2.1",), ".gsm",
                    lambda root: ES_CO_TRANSCRIPTS.read_text(encoding="utf-8").splitlines(), decode_raw_gsm),
}


def fetch_debs(cache: Path, language: str) -> Path:
    """Download and unpack the language's Debian packages into cache/x (once)."""
    root = cache / "x"
    if (root / "usr/share/asterisk/sounds" / SOURCES[language].folder).exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", *SOURCES[language].packages], cwd=cache, check=True)
    for deb in sorted(cache.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def read_transcripts(root: Path, language: str) -> dict[str, str]:
    out = {}
    for line in SOURCES[language].transcript_lines(root):
        if line.startswith(";") or ":" not in line:
            continue
        key, text = line.split(":", 1)
        # two Italian lines run on into the next prompts ("... attivi. confbridge-mute-in: Per ..."):
        # keep the line's own sentence only (the runs-on prompts are not recovered: the split stays)
        text = EMBEDDED_KEY.split(text)[0].strip()
        # tones and notes ("[this is a simple beep tone]"), spelled-out single letters and
        # ellipses of cut-off prompts are not read sentences
        if not text or "[" in text or "(" in text or sum(ch.isalpha() for ch in text) < 4:
            continue
        # the Italian list lost some accented letters ("sar? esattamente"): a transcript
        # that is not what was said would teach the wrong sounds
        if "\ufffd" in text or re.search(r"\w\?\s*\w", text):
            continue
        out[key.strip()] = text
    return out


def read_clip(sounds: Path, key: str, language: str) -> tuple[np.ndarray, int] | None:
    """One prompt's audio and its sample rate, or None when the package lacks it."""
    src = sounds / f"{key}{SOURCES[language].suffix}"
    return SOURCES[language].decode(src) if src.exists() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--language", choices=sorted(SOURCES), default="en",
                    help="never es: the Spanish core sounds are the hidden acceptance set (es-co is another speaker)")
    ap.add_argument("--cache", type=Path, default=None, help="where the .debs go (default: TMP/asterisk-LANG-debs)")
    ap.add_argument("--train-minutes", type=float, default=12.8, help="0 = every prompt not held out")
    ap.add_argument("--test", type=int, default=19, help="held-out prompts")
    ap.add_argument("--more-test", type=int, default=60,
                    help="more held-out sentences from the prompts not trained on (OUT/test_more.csv): a CER "
                         "on 19 prompts moves by ~5 points between two checkpoints of the same quality")
    args = ap.parse_args(argv)

    cache = args.cache or Path(tempfile.gettempdir()) / f"asterisk-{args.language}-debs"
    root = fetch_debs(cache, args.language)
    sounds = root / "usr/share/asterisk/sounds" / SOURCES[args.language].folder
    texts = read_transcripts(root, args.language)
    clips = []
    for key in sorted(texts):
        clip = read_clip(sounds, key, args.language)
        if clip is None or len(clip[0]) < clip[1] * 0.5:
            continue
        clips.append((key, texts[key], *clip))
    if len(clips) < args.test + 10:
        print(f"only {len(clips)} usable prompts found under {sounds}", file=sys.stderr)
        return 1
    # held out: sentences (>= 25 characters: CER on "Thank you." says little), evenly spread
    # over the sorted keys, so every prompt family is represented
    sentences = [i for i, c in enumerate(clips) if len(c[1]) >= 25]
    step = len(sentences) / args.test
    test_idx = {sentences[int(i * step + step / 2)] for i in range(args.test)}
    test = [c for i, c in enumerate(clips) if i in test_idx]
    pool = [c for i, c in enumerate(clips) if i not in test_idx]
    if args.train_minutes > 0:
        # a deterministic, spread-out subset of the right total length
        rng = np.random.default_rng(0)
        order = rng.permutation(len(pool))
        chosen, total = [], 0.0
        for i in order:
            if total >= args.train_minutes * 60:
                break
            chosen.append(i)
            total += len(pool[i][2]) / pool[i][3]
        unused = [pool[i] for i in sorted(set(range(len(pool))) - set(chosen))]
        pool = [pool[i] for i in sorted(chosen)]
    else:
        unused = []
    more_sentences = [c for c in unused if len(c[1]) >= 25]
    step = max(1.0, len(more_sentences) / max(1, args.more_test))
    more = [more_sentences[int(i * step)] for i in range(min(args.more_test, len(more_sentences)))]

    train_dir = args.out / "train"
    (train_dir / "wavs").mkdir(parents=True, exist_ok=True)
    (args.out / "test_wavs").mkdir(parents=True, exist_ok=True)
    name = lambda key: key.replace("/", "_")  # noqa: E731 - digits/1 -> digits_1
    with open(train_dir / "metadata.csv", "w", encoding="utf-8") as f:
        for key, text, wav, sr in pool:
            sf.write(train_dir / "wavs" / f"{name(key)}.wav", wav, sr, subtype="PCM_16")
            f.write(f"{name(key)}|{text}|{text}\n")
    for csv_name, clips_out in (("test.csv", test), ("test_more.csv", more)):
        with open(args.out / csv_name, "w", encoding="utf-8") as f:
            for key, text, wav, sr in clips_out:
                path = args.out / "test_wavs" / f"{name(key)}.wav"
                sf.write(path, wav, sr, subtype="PCM_16")
                f.write(f"{name(key)}|{text}|{path.resolve()}\n")
    minutes = sum(len(c[2]) / c[3] for c in pool) / 60
    print(f"train: {len(pool)} clips, {minutes:.1f} min -> {train_dir}; "
          f"held out: {len(test)} clips -> {args.out / 'test.csv'}, {len(more)} more -> {args.out / 'test_more.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
