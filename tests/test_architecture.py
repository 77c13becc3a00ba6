"""The layers of onnx2mil/backend import one way (README, "Architecture"), and no module imports
another module's private names. Read from the source with ast, lazy imports inside functions
included."""
import ast
from pathlib import Path


PKG = Path(__file__).resolve().parents[1] / "onnx2mil"

# layer -> the layers it may import (besides itself and onnx2mil.errors)
ALLOWED = {
    "backend.interpreter": set(),
    "backend.convert": set(),
    "op_builders": {"backend.convert"},
    "backend.runtime": {"backend.convert", "backend.interpreter"},
    "backend.validation": {"backend.convert", "backend.interpreter", "backend.runtime"},
}


def _layer(module: str):
    rest = module.split(".", 1)[1] if "." in module else ""
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if rest == layer or rest.startswith(layer + "."):
            return layer
    return None


def _module_name(path: Path, pkg: Path = PKG) -> str:
    parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, pkg: Path = PKG):
    """(imported module, imported names, line) for every import in the file, resolved to absolute."""
    root = pkg.parent
    module = _module_name(path, pkg)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [a.name for a in node.names]
            # `from pkg import submodule` imports the submodule
            subs = [f"{target}.{n}" for n in names if (root / f"{target}.{n}".replace(".", "/")).with_suffix(".py").exists()
                    or (root / f"{target}.{n}".replace(".", "/")).is_dir()]
            if subs:
                for sub in subs:
                    yield sub, [], node.lineno
            else:
                yield target, names, node.lineno


def layer_violations(pkg: Path = PKG) -> list[str]:
    wrong = []
    for path in sorted(pkg.rglob("*.py")):
        layer = _layer(_module_name(path, pkg))
        if layer is None:
            continue
        for target, _, line in _imports(path, pkg):
            if not target.startswith("onnx2mil"):
                continue
            other = _layer(target)
            if other is None and target not in ("onnx2mil", "onnx2mil.errors"):
                wrong.append(f"{path.relative_to(PKG.parent)}:{line} imports {target} (outside the layers)")
            elif other is not None and other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(pkg.parent)}:{line}: {layer} imports {target} ({other})")
    return wrong


def private_imports(pkg: Path = PKG) -> list[str]:
    wrong = []
    for path in sorted(pkg.rglob("*.py")):
        module = _module_name(path, pkg)
        for target, names, line in _imports(path, pkg):
            if not target.startswith("onnx2mil") or target == module:
                continue
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                wrong.append(f"{path.relative_to(pkg.parent)}:{line} imports {', '.join(private)} from {target}")
    return wrong


def sibling_op_imports(pkg: Path = PKG) -> list[str]:
    """An op builder module that imports another op's module (shared helpers live in ``_common``
    and other ``_``-modules of op_builders/)."""
    wrong = []
    for path in sorted((pkg / "op_builders").glob("*.py")):
        for target, _, line in _imports(path, pkg):
            if target.startswith("onnx2mil.op_builders.") and not target.split(".")[2].startswith("_"):
                wrong.append(f"{path.relative_to(pkg.parent)}:{line} imports {target}")
    return wrong


def test_op_builders_share_helpers_through_one_home():
    wrong = sibling_op_imports()
    assert not wrong, "\n".join(wrong)


def test_layers_import_one_way():
    wrong = layer_violations()
    assert not wrong, "\n".join(wrong)


def test_no_private_cross_module_imports():
    wrong = private_imports()
    assert not wrong, "\n".join(wrong)


def test_the_checks_name_a_broken_rule(tmp_path):
    """The same checks on a copy of the tree with one wrong import each: named by file and line."""
    import shutil

    pkg = tmp_path / "onnx2mil"
    shutil.copytree(PKG, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    graph = pkg / "backend" / "convert" / "graph.py"
    text = graph.read_text()
    graph.write_text(text + "\n\ndef _late():\n    from ..validation.report import json_finite\n")  # lazy, in a function
    bad_line = graph.read_text().split("\n").index("    from ..validation.report import json_finite") + 1
    kernel = pkg / "backend" / "interpreter" / "core.py"
    kernel.write_text(kernel.read_text() + "\nfrom ..convert.pipeline import _SAME_VALUE_SUFFIXES\n")
    wrong = layer_violations(pkg)
    assert len(wrong) == 2, wrong
    assert wrong[0] == (f"onnx2mil/backend/convert/graph.py:{bad_line}: backend.convert imports "
                        "onnx2mil.backend.validation.report (backend.validation)")
    assert "onnx2mil/backend/interpreter/core.py" in wrong[1] and "backend.interpreter imports onnx2mil.backend.convert.pipeline" in wrong[1]
    where = pkg / "op_builders" / "where.py"
    where.write_text(where.read_text() + "\nfrom .binary import op_builder\n")
    sibling = sibling_op_imports(pkg)
    assert len(sibling) == 1 and sibling[0].startswith("onnx2mil/op_builders/where.py:") \
        and sibling[0].endswith("imports onnx2mil.op_builders.binary"), sibling
    private = private_imports(pkg)
    assert len(private) == 1 and "_SAME_VALUE_SUFFIXES from onnx2mil.backend.convert.pipeline" in private[0]


def test_the_rule_is_checked_on_every_backend_module():
    """A new folder under backend/ must be given a place in the rule."""
    folders = {p.name for p in (PKG / "backend").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert {f"backend.{f}" for f in folders} <= set(ALLOWED)
    loose = [p.name for p in (PKG / "backend").glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside a layer folder: {loose}"


def test_every_package_folder_is_packaged():
    """pyproject lists the packages by hand (models/ installs as onnx2mil.models, which setuptools'
    discovery cannot map): every folder with an __init__.py must be in the list, and nothing else."""
    import tomllib

    listed = set(tomllib.loads((PKG.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PKG.parent).parts) for p in PKG.rglob("__init__.py")}
    found.add("onnx2mil.models")
    assert listed == found, f"missing from pyproject: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"
