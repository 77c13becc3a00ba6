"""Reference models as ONNX generators (onnx.helper + seeded numpy weights); installed as onnx2mil.models.

Each model looks like a ``torch.onnx.export`` at opset 17: float32, static input shapes, node names
``/<module path>/<Op>``, parameters under their state-dict names. The registry below is what the CLI,
the tests and the benchmarks use::

    names()                     -> ["bigvgan-tiny", "bigvgan-qwen2.5-omni", ...]
    build(name)                 -> onnx.ModelProto
    example_inputs(name, seed)  -> {input name: array}
    save(name, path)            -> path (external data beside it for large models)
"""
from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Union

import numpy as np
import onnx

from . import bigvgan, resnet, transformer

DEFAULT = "bigvgan-tiny"

_FAMILIES: dict[str, ModuleType] = {"bigvgan": bigvgan, "resnet": resnet, "transformer": transformer}
# Models whose weights exceed this are written with their tensors in a side file (.onnx.data).
EXTERNAL_DATA_BYTES = 64 * 1024 * 1024


def names() -> list[str]:
    return [f"{family}-{size}" for family, module in _FAMILIES.items() for size in module.SIZES]


def _resolve(name: str) -> tuple[ModuleType, str]:
    family, _, size = name.partition("-")
    module = _FAMILIES.get(family)
    if module is None or size not in module.SIZES:
        raise KeyError(f"unknown reference model {name!r}; known: {', '.join(names())}")
    return module, size


def build(name: str = DEFAULT, seed: int = 0) -> onnx.ModelProto:
    """The model ``name`` with weights drawn from ``seed``."""
    module, size = _resolve(name)
    return module.build(size, seed)


def example_inputs(name: str = DEFAULT, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs in the model's realistic range (log-mel values, normalised images, embeddings)."""
    module, size = _resolve(name)
    return module.example_inputs(size, seed)


def config(name: str = DEFAULT):
    """The size's frozen config dataclass (channels, rates, shapes)."""
    module, size = _resolve(name)
    return module.SIZES[size]


def parameter_count(name: str = DEFAULT) -> int:
    """Trainable parameters from the config alone (no weights are generated)."""
    module, size = _resolve(name)
    return module.parameter_count(module.SIZES[size])


def counted_parameters(model: onnx.ModelProto, name: str) -> int:
    """Trainable parameters counted in a built model's initializers (buffers left out)."""
    module, _ = _resolve(name)
    return module.counted_parameters(model)


def save(name: str, path: Union[str, Path], seed: int = 0) -> Path:
    """Build ``name`` and write it to ``path``; large models keep their tensors in
    ``<path>.data`` beside it (ONNX external data, so the file stays under protobuf's 2 GB)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build(name, seed)
    weight_bytes = sum(len(t.raw_data) for t in model.graph.initializer)
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()   # onnx appends to an existing external-data file
    if weight_bytes > EXTERNAL_DATA_BYTES:
        onnx.save_model(model, os.fspath(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)
    else:
        onnx.save_model(model, os.fspath(path))
    return path


__all__ = ["DEFAULT", "names", "build", "example_inputs", "config", "parameter_count", "counted_parameters",
           "save", "bigvgan", "resnet", "transformer"]
