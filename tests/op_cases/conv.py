"""Conv and ConvTranspose across their attribute space (1-/2-/3-D, pads, auto_pad, groups...)."""
from itertools import product

from harness import OpCase, rand

VARIANTS = ("as_2d", "native", "split_bias")


def conv(id, x_shape, w_shape, bias=True, variant=None, **attrs):
    weights = {"W": rand(*w_shape, seed=1)}
    if bias:
        weights["B"] = rand(w_shape[0], seed=2)
    config = {"lowering": {"conv_1d": variant}} if variant else None
    return OpCase(f"conv_{id}", "Conv", {"X": rand(*x_shape)}, attrs, weights, config=config)


def conv_transpose(id, x_shape, w_shape, bias=True, variant=None, **attrs):
    weights = {"W": rand(*w_shape, seed=1)}
    if bias:
        weights["B"] = rand(w_shape[1] * attrs.get("group", 1), seed=2, low=0.5, high=2.0)
    config = {"lowering": {"conv_transpose_1d": variant}} if variant else None
    name = f"convtranspose_{id}" + (f"_{variant}" if variant else "")
    return OpCase(name, "ConvTranspose", {"X": rand(*x_shape)}, attrs, weights, config=config)


CASES = [
    conv("1d", (1, 4, 20), (6, 4, 3)),
    conv("1d_as_2d", (1, 4, 20), (6, 4, 3), variant="as_2d", pads=[1, 2], strides=[2]),
    conv("1d_stride_dilation_pads", (2, 4, 31), (6, 4, 5), strides=[2], dilations=[3], pads=[2, 1]),
    conv("1d_groups_nobias", (1, 8, 17), (8, 2, 3), bias=False, group=4),
    conv("1d_depthwise", (1, 6, 40), (6, 1, 7), group=6, pads=[3, 3]),
    conv("2d", (1, 3, 12, 10), (5, 3, 3, 3), pads=[1, 1, 1, 1]),
    conv("2d_asym_pads", (1, 3, 12, 10), (5, 3, 3, 2), pads=[0, 1, 2, 0], strides=[2, 1]),
    conv("2d_dilated_groups", (1, 4, 15, 15), (6, 2, 3, 3), group=2, dilations=[2, 3]),
    conv("3d", (1, 2, 6, 7, 8), (3, 2, 3, 2, 3), pads=[1, 0, 1, 1, 1, 0]),
    conv("1d_dynamic_weight", (1, 4, 20), (6, 4, 3), bias=False),
] + [
    conv(f"2d_{pad.lower()}_s{s}", (1, 3, 11, 9), (4, 3, 3, 4), auto_pad=pad, strides=[s, s])
    for pad, s in product(("SAME_UPPER", "SAME_LOWER", "VALID"), (1, 2))
] + [
    conv(f"1d_{pad.lower()}", (1, 3, 13), (4, 3, 4), auto_pad=pad, strides=[2])
    for pad in ("SAME_UPPER", "SAME_LOWER", "VALID")
] + [
    case
    for v in VARIANTS
    for case in (
        conv_transpose("1d", (1, 6, 9), (6, 4, 4), variant=v, strides=[2], pads=[1, 1]),
        conv_transpose("1d_output_padding", (1, 4, 7), (4, 3, 5), variant=v, strides=[3], pads=[1, 1],
                       output_padding=[2]),
        conv_transpose("1d_output_padding_past_end", (1, 4, 7), (4, 3, 5), variant=v, strides=[3],
                       pads=[1, 0], output_padding=[1]),
        conv_transpose("1d_output_shape", (1, 4, 8), (4, 2, 4), variant=v, strides=[2], output_shape=[17]),
        conv_transpose("1d_groups_dilations", (1, 6, 10), (6, 2, 3), variant=v, group=3, dilations=[2],
                       strides=[2], pads=[2, 1]),
        conv_transpose("1d_same_upper", (1, 4, 9), (4, 3, 4), variant=v, strides=[2], auto_pad="SAME_UPPER"),
        conv_transpose("1d_same_lower", (1, 4, 9), (4, 3, 5), variant=v, strides=[3], auto_pad="SAME_LOWER"),
        conv_transpose("1d_bigvgan_up", (1, 16, 25), (16, 8, 11), variant=v, strides=[5], pads=[3, 3]),
    )
] + [
    conv_transpose("1d_nobias", (1, 4, 9), (4, 3, 4), bias=False, strides=[2]),
    conv_transpose("2d", (1, 3, 5, 6), (3, 4, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1]),
    conv_transpose("2d_output_padding", (1, 3, 5, 6), (3, 4, 3, 3), strides=[2, 3], pads=[1, 0, 0, 1],
                   output_padding=[1, 2]),
    conv_transpose("2d_output_shape_same_upper", (1, 3, 5, 6), (3, 2, 3, 4), strides=[2, 2],
                   output_shape=[10, 12], auto_pad="SAME_UPPER"),
    conv_transpose("2d_valid_groups_dilations", (1, 4, 5, 5), (4, 3, 3, 2), group=2, dilations=[2, 1],
                   auto_pad="VALID"),
    conv_transpose("3d", (1, 2, 3, 4, 5), (2, 3, 2, 3, 2), strides=[2, 1, 2], pads=[0, 1, 0, 1, 0, 1]),
]

# ONNX Conv weight as a graph input (not an initializer): MIL conv takes a dynamic weight.
_dyn = CASES[9]
_dyn.inputs["W"] = _dyn.weights.pop("W")
_dyn.input_order = ["X", "W"]
