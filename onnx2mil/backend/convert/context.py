"""The build context builders work through: ONNX tensor name -> MIL Var, constants, shapes,
opset, config, target. It also records which MIL var holds each ONNX tensor (the name map)."""
from __future__ import annotations

import itertools
import re
from typing import Optional

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var
from coremltools.converters.mil.mil.block import curr_block

from .config import Config
from .loader import LoadedGraph, TensorInfo, load_graph, shapes_at
from .node import OnnxNode

_INVALID = re.compile(r"[^A-Za-z0-9_]")
DEFAULT_DIM_UPPER = 16384  # upper bound of a symbolic input dim the user gave no bounds for


def mil_dtype_of(array: np.ndarray) -> np.ndarray:
    """MIL has no 64-bit tensors: int64 -> int32, float64 -> float32 (as coremltools' frontends do)."""
    if array.dtype == np.int64 or array.dtype == np.uint64:
        return array.astype(np.int32)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    return array


class NameAllocator:
    """ONNX names made into unique, valid MIL identifiers, deterministically."""

    def __init__(self):
        self._used: set[str] = set()
        self._by_onnx: dict[str, str] = {}

    def for_tensor(self, onnx_name: str) -> str:
        if onnx_name not in self._by_onnx:
            self._by_onnx[onnx_name] = self.fresh(onnx_name)
        return self._by_onnx[onnx_name]

    def fresh(self, hint: str) -> str:
        base = _INVALID.sub("_", hint) or "t"
        if base[0].isdigit():
            base = "t_" + base
        name, k = base, 1
        while name in self._used:
            name, k = f"{base}_{k}", k + 1
        self._used.add(name)
        return name


class BuildContext:
    """What a builder may touch. In the check phase only ONNX-side facts exist; in the emission
    phase ``var`` returns MIL Vars and ``set_output`` binds a node's outputs."""

    def __init__(self, graph: LoadedGraph, config: Config, target, input_bounds: Optional[dict] = None,
                 precision: str = "fp16"):
        self.graph = graph
        # {input: ((lower, upper) per axis)}; symbolic dims without bounds: 1..DEFAULT_DIM_UPPER
        self.input_bounds = {
            name: tuple((d, d) if isinstance(d, int) else (1, DEFAULT_DIM_UPPER) for d in self.shape(name) or ())
            for name in graph.inputs if self.shape(name) is not None}
        self.input_bounds.update(input_bounds or {})
        self._shapes_at_bounds: Optional[list] = None
        self._graphs_at_bounds: Optional[list] = None
        self._producers: Optional[dict] = None
        self.config = config
        self.target = target  # ct.target.iOS15 ...
        self.precision = precision  # "fp16" | "fp32": the build's compute precision
        self.names = NameAllocator()
        self._vars: dict[str, Var] = {}
        self.name_map: dict[str, str] = {}   # ONNX tensor -> MIL var name (before passes)
        self._const_vars: dict[tuple, Var] = {}
        self._const_names: set[str] = set()
        self.node: Optional[OnnxNode] = None  # the node being checked or emitted: names its intermediates
        self._tmp_names: set[str] = set()     # names given by tmp(): the final one becomes the output's
        self.symbols: dict = {}              # ONNX dim_param -> MIL symbol
        self.node_counter = itertools.count(len(graph.nodes) + len(graph.folded))  # unnamed nested nodes

    # ---- ONNX-side facts (available in check and emission) -------------------------------
    @property
    def opset(self) -> int:
        return self.graph.opset

    def info(self, name: str) -> TensorInfo:
        return self.graph.info.get(name, TensorInfo(None, None))

    def shape(self, name: str) -> Optional[tuple]:
        return self.info(name).shape

    def rank(self, name: str) -> Optional[int]:
        return self.info(name).rank

    def dtype(self, name: str) -> Optional[np.dtype]:
        return self.info(name).dtype

    def dim_range(self, name: str, axis: int) -> Optional[tuple[int, int]]:
        """(smallest, largest) size of dim ``axis`` of ``name`` over the inputs' declared bounds, or
        None if unknown. A symbolic dim is read from onnx's shape inference with every input at its
        lower bounds, then at its upper bounds (lengths in exported graphs grow with their inputs')."""
        shape = self.shape(name)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        if isinstance(shape[axis], int):
            return shape[axis], shape[axis]
        if self._shapes_at_bounds is None:
            self._shapes_at_bounds = [shapes_at(self.graph, self._bound_shapes(end)) for end in (0, 1)]
        sizes = []
        for shapes in self._shapes_at_bounds:
            at = shapes.get(name)
            if at is None or len(at) != len(shape) or not isinstance(at[axis], int):
                return None
            sizes.append(at[axis])
        return min(sizes), max(sizes)

    def _bound_shapes(self, end: int) -> dict:
        """Every input's shape at its lower (end 0) or upper (end 1) bounds."""
        return {n: tuple(b[end] for b in dims) for n, dims in self.input_bounds.items()}

    def values_at_bounds(self, name: str) -> Optional[list]:
        """[value of ``name`` with the inputs at their lower bounds, at their upper bounds]: the
        graph loaded and folded again at those static shapes; None if it does not fold there
        (a runtime value that depends on input data, not only on shapes)."""
        if self._graphs_at_bounds is None:
            self._graphs_at_bounds = [load_graph(self.graph.model, check=False, input_shapes=self._bound_shapes(end),
                                                 base_dir=self.graph.base_dir)
                                      for end in (0, 1)]
        values = [g.constants.get(name) for g in self._graphs_at_bounds]
        return None if any(v is None for v in values) else values

    def shape_at_bounds(self, name: str) -> Optional[list]:
        """[shape of ``name`` at the inputs' lower bounds, at their upper bounds] (see
        values_at_bounds), None if not static at both."""
        self.values_at_bounds(name)
        shapes = [g.info.get(name, TensorInfo(None, None)) for g in self._graphs_at_bounds]
        return [s.shape for s in shapes] if all(s.is_static for s in shapes) else None

    def producer(self, name: str) -> Optional[OnnxNode]:
        """The (unfolded) node that computes ONNX tensor ``name``, or None."""
        if self._producers is None:
            self._producers = {o: n for n in self.graph.nodes for o in n.outputs if o}
        return self._producers.get(name)

    def shape_origin(self, name: str) -> Optional[str]:
        """Where a runtime value computed from shapes starts: the Shape/Size nodes its chain of
        unfolded nodes reaches (their inputs' shapes were not static, or folding stopped), or None."""
        seen, stack, origins = set(), [name], []
        while stack:
            node = self.producer(stack.pop())
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type in ("Shape", "Size") and not node.domain:
                origins.append(f"node '{node.name}' ({node.op_type} of '{node.inputs[0]}', "
                               f"shape {tuple(self.shape(node.inputs[0]) or ())})")
                continue
            stack.extend(i for i in node.inputs if i and not self.is_const(i))
        return "; ".join(sorted(origins)) or None

    def const_refusal(self, name: str, what: str, why: str = "") -> Optional[str]:
        """None if ONNX tensor ``name`` is a build-time constant; else a refusal saying ``what``
        must be one (``why``), naming where a chain from a symbolic shape starts, if it is one."""
        if self.is_const(name):
            return None
        origin = self.shape_origin(name)
        reason = f"{what} must be a constant (initializer)" + (f": {why}" if why else "")
        return reason + (f"; it is computed at run time from the shape at {origin}" if origin else "")

    def const(self, name: str) -> Optional[np.ndarray]:
        """The constant value of an ONNX tensor (initializer or folded), or None."""
        return self.graph.constants.get(name) if name else None

    def is_const(self, name: str) -> bool:
        return bool(name) and name in self.graph.constants

    # ---- emission ---------------------------------------------------------------------------
    def mil_name(self, onnx_name: str) -> str:
        """The MIL name for the op that produces ONNX tensor ``onnx_name``."""
        return self.names.for_tensor(onnx_name)

    def scratch(self, hint: str) -> str:
        """A fresh MIL name for an op internal to a builder's expansion (derived from ``hint``)."""
        return self.names.fresh(hint)

    def tmp(self, what: str) -> str:
        """A fresh MIL name for an intermediate op of the node being emitted: ``<output>_<what>``,
        after its first output. Whichever tmp-named op a builder hands to ``set_output`` takes the
        ONNX output's name there, so a builder need not know which of its ops ends last."""
        node = self.node
        prefix = next((o for o in node.outputs if o), node.name) if node is not None else "tmp"
        name = self.names.fresh(f"{prefix}_{what}")
        self._tmp_names.add(name)
        return name

    def var(self, onnx_name: str) -> Var:
        if onnx_name in self._vars:
            return self._vars[onnx_name]
        if onnx_name in self.graph.constants:
            # one const per block: a const made inside a nested block is not visible outside it
            key = (onnx_name, id(curr_block()))
            if key not in self._const_vars:
                name = self.mil_name(onnx_name)
                self._const_vars[key] = mb.const(val=mil_dtype_of(self.graph.constants[onnx_name]),
                                                 name=name if name not in self._const_names else self.scratch(name))
                self._const_names.add(name)
            return self._const_vars[key]
        raise KeyError(f"ONNX tensor '{onnx_name}' has no MIL var yet")

    def input(self, node: OnnxNode, i: int) -> Optional[Var]:
        return self.var(node.inputs[i]) if node.has_input(i) else None

    def bind(self, onnx_name: str, var: Var) -> None:
        """Bind an ONNX tensor to the MIL var that holds it."""
        self._vars[onnx_name] = var
        self.name_map[onnx_name] = var.name

    def set_output(self, node: OnnxNode, *vars_: Var) -> None:
        """Bind ``node``'s outputs to ``vars_``. A var named by ``tmp`` (with its op) is renamed
        to the ONNX output's MIL name."""
        for name, v in zip(node.outputs, vars_):
            if name:
                self.bind(name, self._named(name, v))

    def _named(self, onnx_name: str, var: Var) -> Var:
        op = var.op
        if var.name in self._tmp_names and op is not None and len(op.outputs) == 1 and op.name == var.name:
            self._tmp_names.discard(var.name)
            op.name = self.mil_name(onnx_name)
            var.set_name(op.name)
        return var
