"""ONNX DepthToSpace (DCR -> MIL ``depth_to_space``, CRD -> ``pixel_shuffle``) and SpaceToDepth
(DCR -> ``space_to_depth``, CRD (opset 28) -> ``pixel_unshuffle``), on rank-4 NCHW float tensors."""
from __future__ import annotations

import coremltools as ct
import numpy as np
from coremltools.converters.mil import Builder as mb

from ..backend.convert.registry import op_builder


@op_builder("DepthToSpace")
def depth_to_space(node, ctx):
    x = ctx.input(node, 0)
    b = node.attr("blocksize")
    name = ctx.mil_name(node.outputs[0])
    if node.attr("mode", "DCR") == "CRD":
        y = mb.pixel_shuffle(x=x, upscale_factor=b, name=name)
    else:
        y = mb.depth_to_space(x=x, block_size=b, name=name)
    ctx.set_output(node, y)


@op_builder("SpaceToDepth")
def space_to_depth(node, ctx):
    x, b, name = ctx.input(node, 0), node.attr("blocksize"), ctx.mil_name(node.outputs[0])
    if node.attr("mode", "DCR") == "CRD":  # opset 28: the inverse of pixel_shuffle's order
        y = mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(b), name=name)
    else:
        y = mb.space_to_depth(x=x, block_size=b, name=name)
    ctx.set_output(node, y)


def _refusal(node, ctx):
    shape = ctx.shape(node.inputs[0])
    if shape is None or len(shape) != 4:
        return "input must be rank 4 (NCHW)"
    dtype = ctx.dtype(node.inputs[0])
    if dtype is not None and not np.issubdtype(dtype, np.floating):
        return f"data dtype {dtype}: MIL takes fp16/fp32 only"
    b = node.attr("blocksize")
    if b is None or b < 1:
        return f"blocksize {b} must be a positive integer"
    if node.attr("mode", "DCR") not in ("DCR", "CRD"):
        return f"mode {node.attr('mode')!r}"
    if node.op_type == "SpaceToDepth" and node.attr("mode", "DCR") == "CRD" and ctx.target < ct.target.iOS16:
        return "CRD mode needs MIL pixel_unshuffle: minimum_deployment_target >= iOS16"
    if node.op_type == "DepthToSpace":
        if isinstance(shape[1], int) and shape[1] % (b * b):
            return f"channels {shape[1]} are not divisible by blocksize^2 = {b * b}"
    elif any(isinstance(d, int) and d % b for d in shape[2:]):
        return f"spatial dims {shape[2:]} are not divisible by blocksize {b}"
    return None


depth_to_space.check(_refusal)
space_to_depth.check(_refusal)
