"""ONNX GridSample (opset 16+, 4-D input, linear/bilinear or nearest) -> MIL ``resample`` (iOS16+
for fp16 grids; iOS15 op otherwise) on normalized [-1, 1] (x, y) coordinates. Padding: zeros ->
constant 0, border -> border, reflection -> MIL reflection (about the corner pixel centers) with
align_corners, MIL symmetric (about the image edges) without. Cubic and 3-D are refused."""
from __future__ import annotations

from coremltools.converters.mil import Builder as mb

from ..backend.registry import op_builder
from .batch_norm import const_like, input_refusal

_SAMPLING = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest"}


def padding_mode(node) -> str:
    mode = node.attr("padding_mode")
    if mode == "reflection":
        return "reflection" if node.attr("align_corners") else "symmetric"
    return {"zeros": "constant", "border": "border"}[mode]


@op_builder("GridSample", min_opset=16)
def grid_sample(node, ctx):
    x = ctx.input(node, 0)
    grid = ctx.input(node, 1)
    y = mb.resample(x=x, coordinates=grid, sampling_mode=_SAMPLING[node.attr("mode")],
                    padding_mode=padding_mode(node), padding_value=const_like(0.0, x),
                    coordinates_mode="normalized_minus_one_to_one",
                    align_corners=bool(node.attr("align_corners")), name=ctx.mil_name(node.outputs[0]))
    ctx.set_output(node, y)


@grid_sample.check
def _(node, ctx):
    refusal = input_refusal(ctx, node.inputs[0], what="resample takes")
    if refusal:
        return refusal
    if ctx.rank(node.inputs[0]) != 4:
        return f"rank-{ctx.rank(node.inputs[0])} input (MIL resample samples 2-D images only)"
    if node.attr("mode") not in _SAMPLING:
        return f"mode '{node.attr('mode')}' (MIL resample has bilinear and nearest only)"
    if node.attr("padding_mode") not in ("zeros", "border", "reflection"):
        return f"padding_mode '{node.attr('padding_mode')}'"
    if ctx.dtype(node.inputs[1]) != ctx.dtype(node.inputs[0]):
        return "grid dtype differs from the input dtype"
    return None
