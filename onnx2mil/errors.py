"""Typed errors: every refusal names what was refused and why."""
from __future__ import annotations

from dataclasses import dataclass


class Onnx2MilError(Exception):
    """Base class of every error onnx2mil raises on purpose."""


class InvalidModelError(Onnx2MilError):
    """The ONNX model is malformed: it fails onnx.checker, shape inference or has no graph."""


@dataclass(frozen=True)
class Refusal:
    """One node a builder cannot take, and the reason a user can act on."""

    node: str
    op_type: str
    domain: str
    opset: int
    reason: str

    def __str__(self) -> str:
        op = f"{self.domain}::{self.op_type}" if self.domain not in ("", "ai.onnx") else self.op_type
        return f"node '{self.node}' ({op}, opset {self.opset}): {self.reason}"


class UnsupportedOperatorError(Onnx2MilError):
    """Raised before anything is emitted, listing every node of the graph that cannot be built."""

    def __init__(self, refusals: list[Refusal]):
        self.refusals = list(refusals)
        lines = "\n".join(f"  - {r}" for r in self.refusals)
        super().__init__(f"{len(self.refusals)} node(s) cannot be converted:\n{lines}")


class UnsupportedMILOpError(Onnx2MilError):
    """The MIL interpreter has no kernel for an op of the program."""

    def __init__(self, op_type: str, op_name: str | None = None, reason: str | None = None):
        self.op_type = op_type
        self.op_name = op_name
        where = f" (op '{op_name}')" if op_name else ""
        why = f": {reason}" if reason else ""
        super().__init__(f"MIL op '{op_type}'{where} is not supported by the interpreter{why}")


class RuntimeUnavailableError(Onnx2MilError):
    """The requested runtime cannot run on this machine (e.g. CoreML off macOS)."""


class InputShapeError(Onnx2MilError, ValueError):
    """An input's shape is outside what the model declares (its rank, RangeDim bounds or
    enumerated shapes); CoreML refuses such inputs too."""

    def __init__(self, input_name: str, shape: tuple, allowed: str):
        self.input_name = input_name
        self.shape = tuple(shape)
        self.allowed = allowed
        super().__init__(f"input '{input_name}' has shape {self.shape}; the model takes {allowed}")
