"""The shape of src/tts_cli, counted from its syntax trees: no import cycle, one error root, few
function-level imports of our own modules, short functions and modules (README "Development")."""
import ast
import builtins
from pathlib import Path

import pytest

PKG = Path(__file__).parents[1] / "src" / "tts_cli"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
MAX_FUNCTION_LEVEL_IMPORTS = 20  # outside cli.py: optional extras and what keeps light commands light
# builtin exceptions a class of ours might derive from (warnings are not errors: left out)
BUILTIN_ERRORS = {name for name, obj in vars(builtins).items()
                  if isinstance(obj, type) and issubclass(obj, BaseException) and not issubclass(obj, Warning)}


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in PKG.rglob("*.py"):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = (path, ast.parse(path.read_text(encoding="utf-8")))
    return out


MODULES = _modules()


def _targets(module: str, path: Path, node: ast.AST) -> list[str]:
    """The modules of ours an import statement loads (`from pkg import submodule` included)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    base = module.split(".")
    if node.level:
        base = base if path.name == "__init__.py" else base[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    found = [target] if target in MODULES else []
    return found + [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]


def _module_level_imports(module: str) -> set[str]:
    path, tree = MODULES[module]
    out = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= set(_targets(module, path, node)) - {module}
    return out


def _function_level_imports() -> list[str]:
    found = []
    for module, (path, tree) in MODULES.items():
        if module == "tts_cli.cli":
            continue
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and _targets(module, path, node):
                        found.append(f"{module}.{fn.name}: {ast.unparse(node)}")
    return sorted(set(found))


def test_the_counter_sees_the_package():
    assert len(MODULES) > 50 and "tts_cli.inference.synthesizer" in MODULES
    assert "tts_cli.errors" in _module_level_imports("tts_cli.cli")


def test_no_import_cycle():
    graph = {m: _module_level_imports(m) for m in MODULES}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(t):] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_one_error_root():
    roots = []
    for module, (_, tree) in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                if {ast.unparse(b) for b in node.bases} & BUILTIN_ERRORS:
                    roots.append(f"{module}.{node.name}")
    assert roots == ["tts_cli.errors.TTSError"]


def test_few_function_level_imports_of_our_modules():
    found = _function_level_imports()
    assert len(found) <= MAX_FUNCTION_LEVEL_IMPORTS, "\n".join(found)


def test_no_long_function_or_module():
    long_functions, long_modules = [], []
    for module, (path, tree) in MODULES.items():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            long_modules.append(f"{module}: {lines} lines")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long_functions.append(f"{module}.{node.name}: {n} lines")
    assert not long_functions and not long_modules, "\n".join(long_functions + long_modules)


def test_every_folder_of_modules_is_a_package():
    """setuptools' find_packages ships only folders with an __init__.py: a module elsewhere would
    work in the checkout and be missing from the wheel."""
    folders = {p.parent for p in PKG.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f.relative_to(PKG)) for f in folders if not (f / "__init__.py").exists()) == []
