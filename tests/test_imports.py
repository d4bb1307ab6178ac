"""Import weight: `tts --help` stays fast, and training runs on a GPU box without the audio/text tools.

Each check runs in a fresh interpreter, because this test process has long imported everything.
"""
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = str(Path(__file__).parents[1] / "src")

# Modules `tts train` and the model code must import without (the GPU box lacks them).
GPU_BOX_LACKS = ("librosa", "soundfile", "phonemizer")
TRAINING_MODULES = (
    "tts_cli.stages.train", "tts_cli.stages.train_hifigan", "tts_cli.training.loop", "tts_cli.training.run",
    "tts_cli.training.data", "tts_cli.training.fastpitch_task", "tts_cli.training.hifigan_task",
    "tts_cli.models.fastpitch", "tts_cli.models.hifigan", "tts_cli.checkpoints.load", "tts_cli.checkpoints.hifigan",
    "tts_cli.training.init_from", "tts_cli.inference.vocoders",
)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})


def test_training_and_model_code_import_without_librosa_soundfile_phonemizer():
    res = run_python(f"""
        import importlib, sys

        class Missing:  # behaves as if the packages were not installed
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {GPU_BOX_LACKS!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}")

        sys.meta_path.insert(0, Missing())
        for name in {TRAINING_MODULES!r}:
            importlib.import_module(name)
        print("imported", len({TRAINING_MODULES!r}))
    """)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"imported {len(TRAINING_MODULES)}" in res.stdout


def test_the_blocker_itself_blocks():
    """The check above would pass vacuously if the blocker let the packages through."""
    res = run_python(f"""
        import sys

        class Missing:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {GPU_BOX_LACKS!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}")

        sys.meta_path.insert(0, Missing())
        import soundfile
    """)
    assert res.returncode != 0 and "No module named 'soundfile'" in res.stderr


def test_cli_import_is_light():
    """`tts --help` imports tts_cli.cli: no torch, librosa, phonemizer or matplotlib at module level."""
    res = run_python("""
        import sys
        import tts_cli.cli  # noqa: F401

        heavy = ("torch", "librosa", "phonemizer", "matplotlib", "numba", "soundfile")
        print("loaded:", ",".join(m for m in heavy if m in sys.modules))
    """)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == "loaded:", res.stdout
