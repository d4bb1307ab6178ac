"""benchmarks/real_data_asterisk.py: which transcript lines become training text."""
import gzip
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "real_data_asterisk.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("real_data_asterisk", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_list(root: Path, language: str, lines: list[str]) -> None:
    doc = root / f"usr/share/doc/asterisk-core-sounds-{language}"
    doc.mkdir(parents=True)
    with gzip.open(doc / f"core-sounds-{language}.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def test_transcripts_keep_read_sentences_and_drop_the_rest(script, tmp_path):
    write_list(tmp_path, "it", [
        "; Core Asterisk Sounds in Italian",
        "activated: Attivato.",
        "agent-loggedoff: operatore disconnesso.",
        "beep: [un suono beep]",                                  # a tone, not speech
        "letters/a: A",                                           # too short to say anything
        "at-tone-time-exactly: Al segnale acustico, il tempo sar? esattamente..",  # lost its accent
        "vm-question: Vuoi continuare?",                          # a real question stays
    ])
    texts = script.read_transcripts(tmp_path, "it")
    assert texts == {"activated": "Attivato.", "agent-loggedoff": "operatore disconnesso.",
                     "vm-question": "Vuoi continuare?"}


def test_spanish_is_not_a_choice(script):
    # the Spanish prompts are the hidden acceptance set: the script cannot build them
    assert "es" not in script.SPEAKERS
    with pytest.raises(SystemExit):
        script.main(["--out", "unused", "--language", "es"])
