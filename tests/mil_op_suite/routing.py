"""Route coremltools' test predictions to the onnx2mil interpreter.

``MLModel.predict`` becomes: load the ML Program back from the model's spec and weights (as
``onnx2mil.load_saved_program`` does, so coremltools' passes are included), run it with
``run_program`` on the inputs keyed by MIL input name, and return the outputs keyed by MIL output
name. As CoreML does, scalar outputs come back with shape (1,) and a failure while computing is a
``RuntimeError`` ("Unable to compute the prediction using ML Program") — coremltools' tests for
invalid indices expect exactly that. A missing kernel stays an ``UnsupportedMILOpError``.

coremltools' ``compare_backend`` only compares on macOS 12+; its module-level view of the platform
is replaced so the comparison (its tolerances, its shape checks) runs unchanged.
"""
from __future__ import annotations

import types as _pytypes

import numpy as np
import pytest

import coremltools as ct
from coremltools.converters.mil import testing_utils
from coremltools.converters.mil.mil.ops.tests import testing_utils as op_testing_utils
from coremltools.models import utils as coremltools_utils

from onnx2mil.backend.convert.pipeline import load_saved_program
from onnx2mil.errors import UnsupportedMILOpError
from onnx2mil.backend.interpreter import run_program

_COUNTS = {"predictions": 0, "comparison_failures": 0}


class InterpreterPredictionError(RuntimeError):
    """CoreML's error contract for a failed prediction, raised from the interpreter's error."""


def interpreter_predict(mlmodel: ct.models.MLModel, data, state=None) -> dict:
    if state is not None:
        raise UnsupportedMILOpError("read_state", reason="stateful models (MLState) are not run by the interpreter")
    if mlmodel.get_spec().WhichOneof("Type") != "mlProgram":  # e.g. assert_model_is_valid's default backend
        pytest.skip("a neuralnetwork model: only ML Programs are run by the onnx2mil interpreter")
    _COUNTS["predictions"] += 1
    prog = load_saved_program(mlmodel)
    inputs = {name: np.asarray(value) for name, value in dict(data).items()}
    try:
        outputs = run_program(prog, inputs)
    except UnsupportedMILOpError:
        raise
    except Exception as error:
        raise InterpreterPredictionError(
            f"Unable to compute the prediction using ML Program (onnx2mil interpreter): "
            f"{type(error).__name__}: {error}") from error
    return {name: value.reshape(1) if value.ndim == 0 else value for name, value in outputs.items()}


def take_counts() -> dict:
    """{"predictions", "comparison_failures"} since the last call (the test phase that just ran)."""
    counts = dict(_COUNTS)
    _COUNTS.update(predictions=0, comparison_failures=0)
    return counts


def _counting_comparison_failures(compare_backend):
    """compare_backend, counting the calls that raise (prediction error or numeric mismatch)."""
    def compare(*args, **kwargs):
        try:
            return compare_backend(*args, **kwargs)
        except Exception:
            _COUNTS["comparison_failures"] += 1
            raise

    compare.__wrapped__ = compare_backend
    return compare


def _macos_12_view_of(module):
    """coremltools.models.utils as compare_backend sees it: a macOS 12+ platform."""
    view = _pytypes.SimpleNamespace(**{k: getattr(module, k) for k in dir(module) if not k.startswith("__")})
    view._macos_version = lambda: (15, 0)
    return view


def route_predictions_through_interpreter() -> None:
    ct.models.MLModel.predict = interpreter_predict
    testing_utils._IS_MACOS = True
    testing_utils.coremltoolsutils = _macos_12_view_of(coremltools_utils)
    # the op tests' run_compare_builder imported compare_backend by name
    for module in (testing_utils, op_testing_utils):
        if not hasattr(module.compare_backend, "__wrapped__"):
            module.compare_backend = _counting_comparison_failures(module.compare_backend)
