"""Phoneme and phoneme-pair coverage of a sentence list, through our own front end.

Run: python benchmarks/text_coverage.py FILE [--reference OTHER] [--language es]

Texts go through `tts_cli.text.texts_to_symbols` (normaliser + espeak-ng), exactly as
`tts preprocess` will see them. A phoneme is a model symbol that is not a space, punctuation
or a stress mark. Pairs are neighbouring phonemes in an utterance, across word boundaries
(coarticulation does not stop at a space) but not across punctuation (a pause).
With --reference (e.g. the held-out test list), it also says how many of the reference's
pairs the FILE covers: what a model trained on FILE has heard before.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from tts_cli.text import PUNCTUATION, STRESS, texts_to_symbols
from tts_cli.text.symbols import SPACE, SPANISH_IPA
from tts_cli.teacher.corpus import read_sentences


def phoneme_runs(symbols: list[str]) -> list[list[str]]:
    """The phonemes of one utterance, cut at punctuation (stress marks and spaces dropped)."""
    runs, run = [], []
    for s in symbols:
        if s in PUNCTUATION:
            if run:
                runs.append(run)
            run = []
        elif s != SPACE and s not in STRESS:
            run.append(s)
    if run:
        runs.append(run)
    return runs


def count(texts: list[str], language: str) -> tuple[Counter, Counter, int]:
    phones, pairs, words = Counter(), Counter(), 0
    for text, result in zip(texts, texts_to_symbols(texts, language=language)):
        words += len(result.normalized.split())
        for run in phoneme_runs(result.symbols):
            phones.update(run)
            pairs.update(zip(run, run[1:]))
    return phones, pairs, words


def report(path: Path, language: str, reference: Path | None) -> dict:
    texts = [t for _, t in read_sentences(path)]
    phones, pairs, words = count(texts, language)
    inventory = SPANISH_IPA if language.lower().startswith("es") else sorted(phones)
    covered = [p for p in inventory if phones[p]]
    missing = [p for p in inventory if not phones[p]]
    extra = sorted(p for p in phones if p not in inventory)
    possible = len(covered) ** 2
    out = {"sentences": len(texts), "words": words, "phonemes": sum(phones.values()),
           "inventory": len(inventory), "covered": len(covered), "missing": missing, "extra": extra,
           "pair_types": len(pairs), "pairs_ge5": sum(1 for c in pairs.values() if c >= 5), "possible": possible}
    print(f"{path}: {len(texts)} sentences, {words} words (normalised), {out['phonemes']} phonemes")
    print(f"phonemes: {len(covered)}/{len(inventory)} of the {language} inventory covered"
          + (f"; missing: {' '.join(missing)}" if missing else ""))
    if extra:
        print(f"  outside the inventory: {' '.join(extra)}")
    rare = sorted(((phones[p], p) for p in covered))[:8]
    print("  rarest: " + ", ".join(f"{p} {c}" for c, p in rare))
    print(f"phoneme pairs: {len(pairs)} distinct ({len(pairs) / possible:.1%} of {possible} combinations of "
          f"covered phonemes, most impossible in Spanish); {out['pairs_ge5']} seen at least 5 times")
    if reference is not None:
        ref_texts = [t for _, t in read_sentences(reference)]
        _, ref_pairs, _ = count(ref_texts, language)
        seen_types = sum(1 for p in ref_pairs if p in pairs)
        seen_tokens = sum(c for p, c in ref_pairs.items() if p in pairs)
        unseen = sorted((p for p in ref_pairs if p not in pairs), key=lambda p: -ref_pairs[p])
        out.update(ref_pair_types=len(ref_pairs), ref_types_covered=seen_types,
                   ref_tokens_covered=seen_tokens / max(1, sum(ref_pairs.values())))
        print(f"reference {reference}: {seen_types}/{len(ref_pairs)} of its pair types "
              f"({seen_types / max(1, len(ref_pairs)):.1%}), {out['ref_tokens_covered']:.2%} of its pair tokens "
              "occur in FILE" + (f"; unseen: {', '.join(a + b for a, b in unseen[:10])}" if unseen else ""))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--reference", type=Path, default=None, help="e.g. src/tts_cli/resources/sentences/teacher_test_es.txt")
    ap.add_argument("--language", default="es")
    args = ap.parse_args(argv)
    report(args.file, args.language, args.reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
