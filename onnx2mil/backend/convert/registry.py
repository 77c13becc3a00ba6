"""The op-builder registry: ``@op_builder("Conv")`` registers a builder; importing
``onnx2mil.op_builders`` fills the registry. Users register custom-domain ops the same way."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from .node import canonical_domain

BuildFn = Callable[["OnnxNode", "BuildContext"], None]  # noqa: F821
CheckFn = Callable[["OnnxNode", "BuildContext"], Optional[str]]  # noqa: F821


class Refuse(Exception):
    """Raised by a support check (or a requirement it calls) to refuse a node; the message is the
    reason the user reads, after the node's name and op."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class OpBuilder:
    """One registered builder: which op (and opset range) it takes, how it checks, how it emits."""

    op_types: tuple[str, ...]
    domain: str
    build_fn: BuildFn
    min_opset: int = 1
    max_opset: Optional[int] = None
    check_fn: Optional[CheckFn] = None
    module: str = field(default="")

    def check(self, fn: CheckFn) -> CheckFn:
        """Decorator: attach the support check. It refuses a node by returning a reason string or by
        raising :class:`Refuse`; it accepts by returning None."""
        self.check_fn = fn
        return fn

    def __call__(self, node, ctx) -> None:
        self.build_fn(node, ctx)

    def refusal(self, node, ctx) -> Optional[str]:
        if node.opset < self.min_opset or (self.max_opset is not None and node.opset > self.max_opset):
            top = self.max_opset if self.max_opset is not None else "latest"
            return f"opset {node.opset} is outside the supported range {self.min_opset}..{top}"
        try:
            return self.check_fn(node, ctx) if self.check_fn else None
        except Refuse as refusal:
            return refusal.reason


_REGISTRY: dict[tuple[str, str], OpBuilder] = {}


def op_builder(
    *op_types: str,
    domain: str = "",
    min_opset: int = 1,
    max_opset: Optional[int] = None,
    replace: bool = False,
) -> Callable[[BuildFn], OpBuilder]:
    """Register ``fn(node, ctx)`` as the builder of ``op_types`` in ``domain``.

    The returned :class:`OpBuilder` has a ``.check`` decorator for the support check.
    Registering an op that already has a builder raises unless ``replace=True``.
    """
    if not op_types:
        raise ValueError("op_builder needs at least one op type")
    dom = canonical_domain(domain)

    def register(fn: BuildFn) -> OpBuilder:
        builder = OpBuilder(op_types, dom, fn, min_opset, max_opset, module=getattr(fn, "__module__", ""))
        for op in op_types:
            if (dom, op) in _REGISTRY and not replace:
                raise ValueError(
                    f"op '{op}' (domain '{dom or 'ai.onnx'}') already has a builder in "
                    f"{_REGISTRY[(dom, op)].module}; pass replace=True to override it"
                )
            _REGISTRY[(dom, op)] = builder
        return builder

    return register


def find_builder(op_type: str, domain: str = "") -> Optional[OpBuilder]:
    return _REGISTRY.get((canonical_domain(domain), op_type))


def unregister(op_type: str, domain: str = "") -> None:
    _REGISTRY.pop((canonical_domain(domain), op_type), None)


def registered_ops() -> list[tuple[str, str, OpBuilder]]:
    """(domain, op_type, builder) for every registered op, sorted."""
    return sorted(((d, op, b) for (d, op), b in _REGISTRY.items()), key=lambda t: (t[0], t[1]))
