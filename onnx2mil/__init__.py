"""onnx2mil: ONNX models onto CoreML ML Programs, correctly, and proven layer by layer."""
__version__ = "0.1.0"

import logging as _logging
import sys as _sys

if _sys.platform != "darwin" and "coremltools" not in _sys.modules:
    # Off macOS coremltools warns at import that its CoreML proxies are missing: expected here,
    # since the MIL interpreter runs the models instead. Its logger keeps its level afterwards.
    _ct_log = _logging.getLogger("coremltools")
    _level = _ct_log.level
    _ct_log.setLevel(_logging.ERROR)
    import coremltools  # noqa: E402,F401

    _ct_log.setLevel(_level)

from .errors import (  # noqa: E402
    BuildError,
    ConfigError,
    InputError,
    InputShapeError,
    StaticAxisError,
    InvalidModelError,
    Onnx2MilError,
    Refusal,
    RuntimeUnavailableError,
    SaveError,
    UnsupportedMILOpError,
    UnsupportedOperatorError,
    ValidationInputError,
)
from .backend.convert.node import OnnxNode  # noqa: E402
from .backend.convert.registry import op_builder  # noqa: E402
from .backend.convert.context import BuildContext  # noqa: E402
from .backend.convert.build import build_coreml  # noqa: E402
from .backend.convert.pipeline import load_saved_program, save  # noqa: E402
from . import op_builders  # noqa: E402,F401  (fills the registry)
from .backend.runtime.predict import predict  # noqa: E402
from .backend.validation.validate import validate  # noqa: E402
from .backend.validation.isolate import isolate  # noqa: E402
from .backend.validation.compress import compress  # noqa: E402
from .backend.validation.report import ValidationReport  # noqa: E402
from .backend.validation.lint import LintReport, lint  # noqa: E402

__all__ = [
    "build_coreml", "save", "load_saved_program", "op_builder", "OnnxNode", "BuildContext",
    "Onnx2MilError", "InvalidModelError", "UnsupportedOperatorError", "UnsupportedMILOpError",
    "RuntimeUnavailableError", "InputShapeError", "StaticAxisError", "Refusal", "ConfigError", "InputError", "BuildError",
    "SaveError", "ValidationInputError", "validate", "isolate", "ValidationReport", "predict", "compress", "lint", "LintReport",
]
