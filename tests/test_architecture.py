"""The shape of reflect_core (README, Architecture): wings in one order, where a lower wing
never imports a higher one, no Streamlit anywhere in the library, and small modules.
Every import is read from the source, including those inside functions."""

import ast
from pathlib import Path

from conftest import ROOT

CORE = ROOT / "reflect_core"
# Lowest first: a module may import its own wing and the wings before it.
WINGS = ["base", "physics", "formats", "data", "ml", "accounts", "uploads", "jobs", "store", "analysis", "viz",
         "cli"]
MAX_LINES = 400


def wing_of(module: str) -> str:
    """'reflect_core.ml.spec' -> 'ml'; the top-level cli and __main__ are the 'cli' wing."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or parts[1] in WINGS[:-1] else "cli"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file of module ``name``."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{alias.name}" for alias in node.names] if not node.module else [base]
            found += [(node.lineno, target) for target in names]
    return found


def upward_imports(path: Path, name: str) -> list[str]:
    """Each import of ``name``'s file that reaches a higher wing (or a module in no wing)."""
    rank = WINGS.index(wing_of(name))
    wrong = []
    for line, target in imported_modules(path, name):
        if target.startswith("reflect_core.") and (wing_of(target) not in WINGS or WINGS.index(wing_of(target)) > rank):
            wrong.append(f"{path.name}:{line} ({wing_of(name)}) imports {target}")
    return wrong


def library_files():
    return [p for p in sorted(CORE.rglob("*.py")) if module_name(p) != "reflect_core"]


def test_every_module_belongs_to_a_wing():
    for path in library_files():
        assert wing_of(module_name(path)) in WINGS, f"{module_name(path)} is in no wing"


def test_a_lower_wing_never_imports_a_higher_one():
    wrong = [w for path in library_files() for w in upward_imports(path, module_name(path))]
    assert not wrong, "\n".join(wrong)


def test_the_check_finds_an_upward_import_inside_a_function(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("import numpy\nfrom reflect_core.physics import film\n\n"
                   "def f():\n    from ..store import history\n")
    assert upward_imports(bad, "reflect_core.physics.x") == ["x.py:5 (physics) imports reflect_core.store"]


def test_no_streamlit_in_the_library():
    for path in library_files():
        for line, target in imported_modules(path, module_name(path)):
            assert target.split(".")[0] != "streamlit", f"{path.relative_to(ROOT)}:{line} imports streamlit"


def test_modules_stay_small():
    long = {str(p.relative_to(ROOT)): n for p in library_files() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
