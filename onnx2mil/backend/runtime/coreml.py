"""The one module that runs CoreML itself (``MLModel.predict``): macOS only.

Inputs and outputs are keyed by MIL names; ``runtimes.predict`` maps ONNX names around it.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Mapping, Optional, Union

import coremltools as ct
import numpy as np

from ...errors import RuntimeUnavailableError

# ct.ComputeUnit's names, in the order reports show them.
COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")

_NP_OF_ARRAY_TYPE = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "DOUBLE": np.float64}


def compute_units_of(compute_units) -> ct.ComputeUnit:
    """ct.ComputeUnit from a ct.ComputeUnit or its name (one of COMPUTE_UNITS, any case)."""
    if compute_units is None:
        return ct.ComputeUnit.ALL
    if isinstance(compute_units, ct.ComputeUnit):
        return compute_units
    try:
        return ct.ComputeUnit[str(compute_units).upper()]
    except KeyError:
        raise ValueError(f"unknown compute_units {compute_units!r}; one of "
                         f"{list(COMPUTE_UNITS)}") from None


def available() -> Optional[str]:
    """None if CoreML can run here, else the reason it cannot."""
    if platform.system() != "Darwin":
        return f"CoreML runs only on macOS (this is {platform.system()}); use runtime='mil' (the MIL interpreter)"
    return None


def _input_dtypes(mlmodel: ct.models.MLModel) -> dict:
    out = {}
    for feature in mlmodel.get_spec().description.input:
        if feature.type.WhichOneof("Type") == "multiArrayType":
            name = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(feature.type.multiArrayType.dataType)
            out[feature.name] = _NP_OF_ARRAY_TYPE.get(name)
    return out


def predict(model: Union[ct.models.MLModel, str, Path], inputs: Mapping[str, np.ndarray], *,
            compute_units=None) -> dict:
    """``MLModel.predict`` at ``compute_units`` (default ALL) on MIL-named inputs."""
    reason = available()
    if reason:
        raise RuntimeUnavailableError(reason)
    units = compute_units_of(compute_units)
    if isinstance(model, ct.models.MLModel):
        if model.compute_unit != units:
            model = ct.models.MLModel(model.package_path, compute_units=units)
    else:
        model = ct.models.MLModel(str(model), compute_units=units)
    dtypes = _input_dtypes(model)
    feeds = {k: np.asarray(v).astype(dtypes[k]) if dtypes.get(k) else np.asarray(v) for k, v in inputs.items()}
    return {k: np.asarray(v) for k, v in model.predict(feeds).items()}
