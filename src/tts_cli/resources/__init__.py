"""Data shipped inside the package, found with `importlib.resources`:

    voices/      bundled voices (`voices/<name>/voice.json` + files) and the Kokoro teacher's
                 style vectors (`voices/kokoro/`)
    recipes/     YAML recipes (`--config NAME`)
    sentences/   sentence lists (sample corpus, teacher corpus, held-out test text)
    notices/     licence notices copied into exported voices

`resource_dir(name)` gives a real folder on disk in every install: an editable checkout or an
unpacked wheel hands back the package folder itself; a zip import (zipimport, a zipped
site-packages) extracts the folder once per process into a temporary folder removed at exit, so
callers can keep using `Path` (torch.load, glob, open).

Light at import (standard library only).
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

VOICES = "voices"
RECIPES = "recipes"
SENTENCES = "sentences"
NOTICES = "notices"

_extracted: dict[str, Path] = {}


def _copy_tree(node, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for child in node.iterdir():
        if child.is_dir():
            _copy_tree(child, dest / child.name)
        else:
            (dest / child.name).write_bytes(child.read_bytes())


def resource_dir(name: str) -> Path:
    """The folder `tts_cli/resources/<name>` as a filesystem path (see the module docstring)."""
    node = files(__name__) / name
    if isinstance(node, Path):
        return node
    if name not in _extracted:
        tmp = Path(tempfile.mkdtemp(prefix="tts_cli_resources_"))
        atexit.register(shutil.rmtree, tmp, True)
        if node.is_dir():
            _copy_tree(node, tmp / name)
        _extracted[name] = tmp / name
    return _extracted[name]


def resource_file(folder: str, name: str) -> Path:
    """A file inside `resource_dir(folder)` (it may not exist; callers say what is missing)."""
    return resource_dir(folder) / name


def language_file(folder: str, stem: str, language: str) -> Path | None:
    """`<stem>_<lang>.txt` in `resource_dir(folder)` for a language tag (en-us -> en), or None."""
    path = resource_file(folder, f"{stem}_{str(language).split('-')[0].lower()}.txt")
    return path if path.is_file() else None


__all__ = ["resource_dir", "resource_file", "language_file", "VOICES", "RECIPES", "SENTENCES", "NOTICES"]
