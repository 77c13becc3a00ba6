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
# (case id prefix, precision or None for any) -> reason.
_FP32_EXPECTATION = ("expected values written for CoreML at fp16 tolerance (coremltools runs fp32 only on "
                     "request): fp16 data or fp16-rounded expectations compared at fp32 tolerance")
KNOWN_FAILURES = {
    ("iOS14/test_control_flow.py::TestList::", None):
        "make_list / list_* ops have no interpreter kernel (control-flow family)",
    ("iOS15/test_image_resizing.py::TestCropResize::test_builder_to_backend_smoke", None):
        "crop_resize with UNALIGN_CORNERS on an inverted normalized box: CoreML's expected samples "
        "are not reproduced by the resize_bilinear grid placed inside the box",
    ("iOS14/test_tensor_operation.py::TestFill::test_builder_to_backend_symbolic", None):
        "coremltools' milproto loader cannot read a variadic-rank tensor type back from the spec",
    ("iOS15/test_image_resizing.py::TestResample::test_builder_to_backend_smoke", "fp32"):
        "the test counts fp16 cast ops in the converted program; there are none at fp32 (not a prediction)",
    ("iOS16/test_image_resizing.py::TestResample::", "fp32"): _FP32_EXPECTATION,
    ("iOS17/test_image_resizing.py::TestResample::", "fp32"): _FP32_EXPECTATION,
    ("iOS16/test_image_resizing.py::TestCropResize::", "fp32"): _FP32_EXPECTATION,
    ("iOS17/test_image_resizing.py::TestCropResize::", "fp32"): _FP32_EXPECTATION,
    ("iOS18/test_compression.py::TestConstexprSparseToDense::", "fp32"): _FP32_EXPECTATION,
    # expected = decompress(fp16 LUT) + 1 is computed in numpy fp16, while the fp32 program adds in fp32
    ("iOS18/test_compression.py::TestConstexprLutToSparse::", "fp32"): _FP32_EXPECTATION,
    ("iOS18/test_compression.py::TestJointCompressionOps::", "fp32"): _FP32_EXPECTATION,
    ("iOS14/test_normalization.py::TestNormalizationL2Norm::", "fp32"): _FP32_EXPECTATION,
    ("iOS17/test_normalization.py::TestNormalizationL2Norm::", "fp32"): _FP32_EXPECTATION,
    ("iOS14/test_normalization.py::TestNormalizationInstanceNorm::", "fp32"): _FP32_EXPECTATION,
    ("iOS17/test_normalization.py::TestNormalizationInstanceNorm::", "fp32"): _FP32_EXPECTATION,
    ("iOS14/test_normalization.py::TestNormalizationBatchNorm::", "fp32"):
        "coremltools' milproto loader rejects the saved batch_norm (fp32 epsilon with fp16 mean/variance)",
    ("iOS17/test_normalization.py::TestNormalizationBatchNorm::", "fp32"):
        "coremltools' milproto loader rejects the saved batch_norm (fp32 epsilon with fp16 mean/variance)",
    ("iOS14/test_normalization.py::TestNormalizationLocalResponseNorm::", "fp32"):
        "local_response_norm kernel: for an even size the window must reach size//2 channels before and "
        "(size-1)//2 after (size=2 at x[0,0,0]=1: expected 0.99996, got 0.99903); passes at fp16 tolerance",
}


def known_failure(nodeid: str):
    """The reason the case ``nodeid`` is known to fail, or None."""
    case_id = nodeid.split("::", 1)[1]
    for (prefix, precision), reason in KNOWN_FAILURES.items():
        if case_id.startswith(prefix) and (precision is None or f"mlprogram-{precision}-" in case_id):
            return reason
    return None


def in_fast_subset(item) -> bool:
    """The default run: coremltools' own smoke tests (``test_*smoke*``) in fp16, its default precision,
    minus ``KNOWN_FAILURES``.

    They cover every selected module; ``--mil-op-suite-full`` adds the stress/programmatic sweeps,
    fp32 and the known failures.
    """
    if "smoke" not in getattr(item, "originalname", item.name) or known_failure(item.nodeid):
        return False
    backend = getattr(getattr(item, "callspec", None), "params", {}).get("backend")
    return getattr(backend, "precision", "fp16") == "fp16"
