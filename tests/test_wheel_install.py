"""The built wheel works outside the checkout: bundled voice, recipes and sentence lists ship
inside it (tts_cli/resources/) and are found from any folder.

The wheel is built from this checkout without build isolation (no network), installed with
--no-deps into a fresh venv whose dependencies come from the test interpreter's site-packages
(a .pth line: only the plain folder, not the editable install's finder), then used from an empty
folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env, timeout=300):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
              "--no-index", ".", "-w", out], cwd=ROOT, env=dict(os.environ, PIP_NO_INPUT="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = out.glob("tts_cli-*.whl")
    return whl


def test_wheel_holds_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("tts_cli/resources/voices/es_base/voice.json", "tts_cli/resources/voices/es_base/fastpitch.pt",
                 "tts_cli/resources/voices/kokoro/vocab.json", "tts_cli/resources/voices/kokoro/ef_dora.bin",
                 "tts_cli/resources/recipes/finetune_es.yaml", "tts_cli/resources/recipes/demo_es.yaml",
                 "tts_cli/resources/sentences/sentences_es.txt",
                 "tts_cli/resources/sentences/teacher_sentences_es.txt",
                 "tts_cli/resources/notices/es_base/NOTICE",
                 "tts_cli/resources/voices/default.txt", "tts_cli/resources/voices/en_base/voice.json",
                 "tts_cli/resources/voices/en_base/aligner.pt", "tts_cli/resources/voices/kokoro/af_heart.bin",
                 "tts_cli/resources/sentences/teacher_sentences_en.txt"):
        assert name in names, name


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    r = _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=venv, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=venv,
                     env=dict(os.environ)).stdout.strip())
    # the dependencies (torch, numpy, ...) from this interpreter: a plain folder, so the checkout's
    # editable-install hook in it is not run and tts_cli can only come from the wheel
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = _run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps", "--no-index", wheel],
             cwd=venv, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    return venv


def test_installed_wheel_works_from_an_empty_folder(fresh_venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TTS_VOICES_DIR")}
    bin_ = fresh_venv / "bin"
    here = tmp_path / "elsewhere"
    here.mkdir()

    r = _run([bin_ / "python", "-c", "import tts_cli, os; print(os.path.realpath(tts_cli.__file__))"], here, env)
    assert r.returncode == 0, r.stderr
    assert str(ROOT / "src") not in r.stdout and str(fresh_venv) in r.stdout, r.stdout

    r = _run([bin_ / "tts", "voices"], here, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "es_base" in r.stdout

    r = _run([bin_ / "tts", "synthesize", "hola", "-o", "h.wav"], here, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (here / "h.wav").read_bytes()[:4] == b"RIFF"

    r = _run([bin_ / "python", "-m", "tts_cli.sample_corpus", "--out", "c", "--limit", "2"], here, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((here / "c" / "wavs").glob("*.wav"))) == 2

    # the recipe resolves: the run stops at the (missing) workspace, not at the recipe
    r = _run([bin_ / "tts", "train", "nowork", "--out", "run", "--config", "finetune_es"], here, env)
    assert r.returncode != 0
    assert "recipe" not in (r.stdout + r.stderr) and "nowork" in r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stderr

    r = _run([bin_ / "tts", "doctor"], here, env)
    assert "voices" in r.stdout and "recipes" in r.stdout
    assert "FAIL" not in "\n".join(line for line in r.stdout.splitlines() if "voices" in line or "recipes" in line)


def test_resources_are_found_from_a_zip_import(tmp_path):
    """A zipped install (zipimport): resource_dir extracts the folder, so recipes, sentence lists
    and voices are still plain files to open."""
    pkg = ROOT / "src" / "tts_cli"
    archive = tmp_path / "tts_cli.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in pkg.rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                z.write(f, f.relative_to(pkg.parent).as_posix())
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import tts_cli.config as c, tts_cli.resources as r\n"
            "assert '.zip' in c.__file__, c.__file__\n"
            "print(c.find_recipe('finetune_es').is_file(), (r.resource_dir('voices') / 'es_base' / 'voice.json').is_file(),\n"
            "      r.resource_file('sentences', 'sentences_es.txt').read_text(encoding='utf-8').count(chr(10)) > 100)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = _run([sys.executable, "-c", code, archive], tmp_path, env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["True", "True", "True"]
