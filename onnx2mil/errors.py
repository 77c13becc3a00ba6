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


class ConfigError(Onnx2MilError, ValueError):
    """A build config (dict or YAML file) that does not fit the schema; names the key."""

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"config: {key}: {reason}" if key else f"config: {reason}")


class InputError(Onnx2MilError, ValueError):
    """An input given to build_coreml or predict that the model cannot take; names the input."""

    def __init__(self, name: str | None, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(f"input '{name}': {reason}" if name is not None else reason)


class StaticAxisError(InputError):
    """``inputs=`` made flexible an axis the ONNX model has static and its weights fix (a Conv's
    input channels); ``axes`` lists the (input, axis) pairs that share that dim."""

    def __init__(self, name: str, reason: str, axes: list):
        self.axes = axes
        super().__init__(name, reason)


class InputShapeError(InputError):
    """An input's shape is outside what the model declares (its rank, RangeDim bounds or
    enumerated shapes); CoreML refuses such inputs too."""

    def __init__(self, input_name: str, shape: tuple, allowed: str):
        self.input_name = input_name
        self.shape = tuple(shape)
        self.allowed = allowed
        self.name, self.reason = input_name, f"has shape {self.shape}; the model takes {allowed}"
        Onnx2MilError.__init__(self, f"input '{input_name}' {self.reason}")


class OptionError(Onnx2MilError, ValueError):
    """An argument value onnx2mil cannot use (``compute_precision``, ``outputs``, ``runtime``…)."""

    def __init__(self, option: str, reason: str):
        self.option = option
        self.reason = reason
        super().__init__(f"{option}: {reason}")


class PackageError(Onnx2MilError):
    """An .mlpackage that cannot be used: missing, unreadable, or not built by onnx2mil."""


class BuildError(Onnx2MilError):
    """coremltools rejected what a builder emitted for an ONNX node (found during emission)."""

    def __init__(self, node: str, op_type: str, domain: str, opset: int, reason: str):
        self.node, self.op_type, self.domain, self.opset, self.reason = node, op_type, domain, opset, reason
        super().__init__(f"cannot build {Refusal(node, op_type, domain, opset, reason)}")


class ResourceLimitError(Onnx2MilError):
    """Building the model would allocate more than a configured limit (a constant computed at build
    time from a tiny file: ConstantOfShape, Expand, Tile, Range…); names the node and the size."""

    def __init__(self, node: str, op_type: str, opset: int, nbytes: int, limit: int, what: str):
        self.node, self.op_type, self.opset, self.nbytes, self.limit = node, op_type, opset, nbytes, limit
        super().__init__(f"node '{node}' ({op_type}, opset {opset}): {what} of {nbytes:,} bytes, over the limit "
                         f"of {limit:,} (config limits.max_constant_bytes)")


class ConversionError(Onnx2MilError):
    """coremltools' conversion of the emitted program (its pass pipeline, serialisation) failed."""


class SaveError(Onnx2MilError):
    """``save`` refused a destination or could not write it; the destination is left as it was."""

    def __init__(self, path, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"cannot save to {path}: {reason}")


class PrecisionWarning(UserWarning):
    """A value the model's compute precision cannot hold (an fp32 constant beyond fp16's range)."""


class ValidationInputError(Onnx2MilError, ValueError):
    """Inputs, node names or options given to validate/isolate that cannot be used, and why."""
