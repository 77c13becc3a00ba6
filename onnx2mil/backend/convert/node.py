"""An ONNX node as builders see it, and the one rule that names unnamed nodes."""
from __future__ import annotations

import onnx

_ONNX_DOMAINS = ("", "ai.onnx")


def canonical_domain(domain: str) -> str:
    return "" if domain in _ONNX_DOMAINS else domain


def node_name(proto: onnx.NodeProto, index: int) -> str:
    """The node's name; an unnamed node is named ``<op_type>_<index>``, its index in the loader's
    topological order (validation, isolate and lint use the same names)."""
    return proto.name or f"{proto.op_type}_{index}"


def _schema_defaults(op_type: str, opset: int, domain: str) -> dict:
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return {}
    out = {}
    for name, attr in schema.attributes.items():
        if attr.default_value is not None and attr.default_value.type != 0:
            out[name] = onnx.helper.get_attribute_value(attr.default_value)
    return out


class OnnxNode:
    """An ONNX node as builders see it: names, opset, and attributes with schema defaults filled in."""

    def __init__(self, proto: onnx.NodeProto, opset: int, index: int):
        self.proto = proto
        self.op_type = proto.op_type
        self.domain = canonical_domain(proto.domain)
        self.opset = opset
        self.name = node_name(proto, index)
        self.inputs: list[str] = list(proto.input)
        self.outputs: list[str] = list(proto.output)
        attrs = _schema_defaults(self.op_type, opset, proto.domain or "")
        attrs.update({a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute})
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}

    def attr(self, name: str, default=None):
        return self.attrs.get(name, default)

    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] != ""

    def __repr__(self) -> str:
        return f"OnnxNode({self.name!r}, {self.op_type}, opset {self.opset})"
