"""Collects coremltools' MIL op test modules (``ops/tests/iOS14..iOS18/test_<family>.py`` in the
installed wheel) as cases of this file; ``conftest.py`` routes their predictions to our interpreter.

A module is selected when its op family (``defs/iOS*/<family>.py``) has at least one op with an
interpreter kernel, so new kernels widen the suite by themselves. Cases are marked
``mil_op_suite``; those outside the fast subset (``in_fast_subset``) are also marked ``slow``.
"""
from __future__ import annotations

import importlib
from pathlib import Path

import coremltools
import pytest
from coremltools.converters.mil.mil.ops import tests as _coremltools_op_tests
from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry

from onnx2mil.backend.interpreter.kernels.registry import KERNELS

TESTS_ROOT = Path(_coremltools_op_tests.__file__).parent
OPSET_DIRS = ("iOS14", "iOS15", "iOS16", "iOS17", "iOS18")



def family_ops() -> dict[str, set[str]]:
    """{op family (the defs module name): MIL op types it defines, in any opset}."""
    families: dict[str, set[str]] = {}
    for op_type, variants in SSAOpRegistry.core_ops.items():
        for cls in variants.values():
            families.setdefault(cls.__module__.rsplit(".", 1)[-1], set()).add(op_type)
    return families


def selected_test_modules() -> list[Path]:
    families = family_ops()
    selected = []
    for opset in OPSET_DIRS:
        for path in sorted((TESTS_ROOT / opset).glob("test_*.py")):
            family = path.stem[len("test_"):]
            if families.get(family, set()) & set(KERNELS):
                selected.append(path)
    return selected


def module_key(path: Path) -> str:
    """``iOS14/test_elementwise_binary.py``: how a coremltools test module is named here."""
    return f"{path.parent.name}/{path.name}"


class CoremltoolsOpTests(pytest.File):
    """This file as a collector: one pytest Module per selected coremltools test module."""

    def collect(self):
        for path in selected_test_modules():
            key = module_key(path)
            yield CoremltoolsTestModule.from_parent(self, path=path, name=key, nodeid=f"{self.nodeid}::{key}")


class CoremltoolsTestModule(pytest.Module):
    """A coremltools test module; skipped as a whole when it needs a framework not installed here."""

    def _getobj(self):
        name = ".".join(("coremltools", *self.path.relative_to(Path(coremltools.__file__).parent)
                         .with_suffix("").parts))
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name and error.name.split(".")[0] in ("torch", "tensorflow"):
                raise pytest.skip.Exception(f"needs {error.name}, not installed", allow_module_level=True)
            raise


# Cases known to fail, kept out of the fast (CI) run; the full run still runs and reports them.
KNOWN_FAILURES = {
    "iOS14/test_control_flow.py::TestList::":
        "make_list / list_* ops have no interpreter kernel (control-flow family)",
    "iOS15/test_image_resizing.py::TestCropResize::test_builder_to_backend_smoke":
        "crop_resize with UNALIGN_CORNERS on an inverted normalized box: CoreML's expected samples "
        "are not reproduced by the resize_bilinear grid placed inside the box",
    "iOS14/test_tensor_operation.py::TestFill::test_builder_to_backend_symbolic":
        "coremltools' milproto loader cannot read a variadic-rank tensor type back from the spec",
}


def known_failure(item):
    """The reason ``item`` is known to fail, or None."""
    case_id = item.nodeid.split("::", 1)[1]
    return next((reason for prefix, reason in KNOWN_FAILURES.items() if case_id.startswith(prefix)), None)


def in_fast_subset(item) -> bool:
    """The default run: coremltools' own smoke tests (``test_*smoke*``) in fp16, its default precision,
    minus ``KNOWN_FAILURES``.

    They cover every selected module; ``--mil-op-suite-full`` adds the stress/programmatic sweeps,
    fp32 and the known failures.
    """
    if "smoke" not in getattr(item, "originalname", item.name) or known_failure(item):
        return False
    backend = getattr(getattr(item, "callspec", None), "params", {}).get("backend")
    return getattr(backend, "precision", "fp16") == "fp16"
