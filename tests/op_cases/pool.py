"""MaxPool / AveragePool / LpPool (1-D to 3-D: pads, strides, auto_pad, ceil_mode, dilations,
count_include_pad, Indices) and the global pools."""
from itertools import product

import coremltools as ct
import numpy as np

from harness import OpCase, rand


def pool(op, id, shape, opset=19, n_outputs=1, dtype=np.float32, **attrs):
    return OpCase(f"{op.lower()}_{id}", op, {"X": rand(*shape, low=-3, high=3, dtype=dtype)}, attrs,
                  n_outputs=n_outputs, opset=opset)


def max_pool(id, shape, **attrs):
    return pool("MaxPool", id, shape, **attrs)


def avg_pool(id, shape, **attrs):
    return pool("AveragePool", id, shape, **attrs)


def lp_pool(id, shape, **attrs):
    return pool("LpPool", id, shape, **attrs)


CASES = [
    max_pool("1d", (1, 3, 11), kernel_shape=[3], strides=[2]),
    max_pool("2d_pads", (2, 3, 8, 7), kernel_shape=[3, 2], pads=[1, 0, 1, 1], opset=11),
    max_pool("3d", (1, 2, 5, 6, 7), kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[0, 1, 1, 0, 1, 0]),
    max_pool("2d_ceil", (1, 2, 7, 8), kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, opset=12),
    max_pool("2d_ceil_asym_pads", (1, 2, 6, 9), kernel_shape=[2, 3], strides=[2, 3], pads=[1, 0, 0, 1],
             ceil_mode=1),
    max_pool("3d_ceil", (1, 2, 5, 6, 5), kernel_shape=[2, 2, 2], strides=[2, 2, 2], ceil_mode=1),
    max_pool("2d_dilations", (1, 2, 9, 9), kernel_shape=[3, 2], dilations=[2, 3], pads=[1, 1, 2, 0]),
    max_pool("1d_dilations_ceil", (1, 2, 12), kernel_shape=[2], strides=[3], dilations=[2], ceil_mode=1),
    max_pool("2d_indices", (2, 3, 6, 7), kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 1, 1], n_outputs=2),
    max_pool("2d_indices_column_major", (1, 2, 5, 6), kernel_shape=[3, 2], n_outputs=2, storage_order=1),
    max_pool("1d_indices_dilations_ceil", (1, 2, 10), kernel_shape=[3], strides=[2], dilations=[2],
             ceil_mode=1, n_outputs=2),
    max_pool("2d_fp16_dilations_indices", (1, 2, 7, 7), kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 0, 0],
             n_outputs=2, dtype=np.float16),
    avg_pool("2d_fp16_ceil", (1, 2, 7, 7), kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, count_include_pad=1,
             pads=[1, 1, 1, 1], dtype=np.float16),
    max_pool("2d_int8_pads", (1, 2, 6, 6), kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], opset=12,
             dtype=np.int8),
    OpCase("maxpool_2d_uint8_dilations", "MaxPool", {"X": rand(1, 2, 7, 7, low=0, high=250, dtype=np.uint8)},
           {"kernel_shape": [2, 2], "dilations": [2, 2]}, opset=12),
    max_pool("3d_indices", (1, 2, 4, 5, 4), kernel_shape=[2, 2, 2], strides=[2, 2, 1], n_outputs=2),
] + [
    pool(op, f"2d_{pad.lower()}_s{s}_ceil{c}", (1, 2, 7, 10), kernel_shape=[3, 4], strides=[s, s],
         auto_pad=pad, ceil_mode=c)
    for op, pad, (s, c) in product(("MaxPool", "AveragePool"), ("SAME_UPPER", "SAME_LOWER", "VALID"),
                                   ((1, 0), (2, 1)))
] + [
    avg_pool(f"2d_pads_include{i}", (2, 3, 8, 7), kernel_shape=[3, 3], strides=[2, 1], pads=[1, 1, 1, 0],
             count_include_pad=i)
    for i in (0, 1)
] + [
    avg_pool(f"1d_ceil_include{i}", (1, 2, 7), kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1,
             count_include_pad=i)
    for i in (0, 1)
] + [
    avg_pool(f"2d_ceil_nopads_include{i}", (1, 2, 6, 9), kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1,
             count_include_pad=i)
    for i in (0, 1)
] + [
    avg_pool(f"3d_ceil_pads_include{i}", (1, 2, 6, 5, 7), kernel_shape=[2, 3, 2], strides=[2, 2, 3],
             pads=[1, 0, 1, 0, 1, 1], ceil_mode=1, count_include_pad=i)
    for i in (0, 1)
] + [
    avg_pool(f"2d_dilations_include{i}", (1, 2, 9, 8), kernel_shape=[2, 3], dilations=[3, 2],
             pads=[1, 2, 1, 1], strides=[1, 2], count_include_pad=i)
    for i in (0, 1)
] + [
    avg_pool("2d_same_lower_include1", (1, 2, 7, 6), kernel_shape=[3, 4], strides=[2, 1], auto_pad="SAME_LOWER",
             count_include_pad=1),
    avg_pool("1d_opset7", (1, 2, 9), kernel_shape=[3], pads=[1, 1], count_include_pad=1, opset=7),
    max_pool("1d_indices_opset8", (2, 2, 9), kernel_shape=[2], strides=[2], n_outputs=2, opset=8),
    avg_pool("1d_opset11", (2, 3, 10), kernel_shape=[4], strides=[3], pads=[2, 1], opset=11),
    avg_pool("1d_dilations_ceil", (1, 2, 13), kernel_shape=[3], strides=[2], dilations=[2], pads=[1, 1],
             ceil_mode=1, count_include_pad=1),
    lp_pool("2d_p2", (1, 3, 6, 6), kernel_shape=[2, 2], strides=[2, 2]),
    lp_pool("1d_p1_pads_opset11", (2, 2, 9), kernel_shape=[3], p=1, pads=[1, 2], opset=11),
    lp_pool("2d_p3_same_upper", (1, 2, 7, 5), kernel_shape=[3, 2], p=3, auto_pad="SAME_UPPER", strides=[2, 1]),
    lp_pool("3d_p2", (1, 2, 4, 4, 4), kernel_shape=[2, 2, 2], pads=[1, 0, 0, 0, 1, 1], opset=18),
    lp_pool("2d_p2_ceil", (1, 2, 7, 7), kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, opset=18),
    lp_pool("2d_p2_dilations", (1, 2, 8, 8), kernel_shape=[2, 2], dilations=[2, 3], opset=18),
] + [
    # dilated windows are gathered side by side, then pooled undilated: strides, pads, ceil overhang
    avg_pool(f"2d_dilations_large_ceil_include{i}", (1, 2, 23, 19), kernel_shape=[5, 4], dilations=[3, 4],
             strides=[3, 2], pads=[2, 1, 3, 3], ceil_mode=1, count_include_pad=i)
    for i in (0, 1)
] + [
    max_pool("2d_dilations_stride_equal_dilation", (2, 3, 40, 50), kernel_shape=[6, 8], dilations=[5, 5],
             strides=[5, 5], pads=[5, 7, 5, 7]),
    lp_pool("3d_p2_dilations_ceil", (1, 2, 9, 8, 7), kernel_shape=[2, 3, 2], dilations=[3, 1, 2], strides=[2, 2, 1],
            pads=[1, 0, 1, 0, 1, 1], ceil_mode=1, opset=18),
    max_pool("3d_indices_dilations_ceil", (2, 2, 7, 8, 9), kernel_shape=[2, 2, 3], dilations=[2, 3, 1],
             strides=[2, 1, 3], pads=[1, 0, 1, 0, 1, 1], ceil_mode=1, n_outputs=2),
] + [
    # ties (values on a coarse grid): Indices are the first maximum in row-major window order
    OpCase(f"maxpool_{k}d_indices_ties_order{order}", "MaxPool", {"X": np.round(rand(*shape, low=-1, high=2))},
           dict(kernel_shape=kernel, dilations=dilations, strides=strides, storage_order=order), n_outputs=2, opset=12)
    for order in (0, 1)
    for k, shape, kernel, dilations, strides in (
        (2, (2, 3, 9, 10), [3, 3], [2, 1], [1, 2]),
        (3, (1, 2, 6, 5, 6), [2, 3, 2], [1, 1, 2], [1, 1, 1]),
    )
] + [
    pool(op, f"{len(shape) - 2}d", shape, opset=opset, **attrs)
    for op, attrs in (("GlobalAveragePool", {}), ("GlobalMaxPool", {}), ("GlobalLpPool", {}),
                      ("GlobalLpPool", {"p": 1}))
    for shape, opset in (((2, 3, 7), 11), ((1, 4, 5, 6), 17), ((1, 2, 3, 4, 5), 21))
]

# fp16 model inputs are fp16 in Core ML from iOS16 (earlier targets take them as fp32), so the
# fp16 cases target iOS16 to exercise fp16 arithmetic.
for _case in CASES:
    if any(v.dtype == np.float16 for v in _case.inputs.values()):
        _case.target = ct.target.iOS16

# Symbolic input dims: pads without ceil_mode need no static spatial dims; ceil_mode, dilations and
# Indices need static spatial dims only.
from op_cases.shape import SymbolicOpCase  # noqa: E402


def symbolic(op, id, shape, dims, opset=19, n_outputs=1, **attrs):
    return SymbolicOpCase(f"{op.lower()}_{id}_symbolic", op, {"X": rand(*shape, low=-3, high=3)}, attrs,
                          n_outputs=n_outputs, opset=opset, symbolic={"X": dims})


CASES += [
    symbolic("MaxPool", "2d_pads", (1, 3, 9, 8), {0: "n", 2: "h", 3: "w"}, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
             strides=[2, 2]),
    symbolic("MaxPool", "same_upper", (2, 3, 9, 8), {2: "h", 3: "w"}, kernel_shape=[3, 2], auto_pad="SAME_UPPER",
             strides=[2, 2]),
    symbolic("AveragePool", "pads_include1", (1, 2, 7, 6), {2: "h", 3: "w"}, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
             count_include_pad=1),
    symbolic("AveragePool", "valid_1d", (2, 3, 10), {0: "n", 2: "l"}, kernel_shape=[4], strides=[3], auto_pad="VALID"),
    symbolic("LpPool", "p3", (1, 2, 7, 5), {2: "h"}, kernel_shape=[3, 2], p=3),
    symbolic("MaxPool", "batch_ceil_dilations", (2, 2, 9, 9), {0: "n"}, kernel_shape=[2, 2], strides=[2, 2],
             dilations=[1, 2], ceil_mode=1),
    symbolic("AveragePool", "batch_ceil_include1", (2, 2, 7, 7), {0: "n"}, kernel_shape=[3, 3], strides=[2, 2],
             pads=[1, 1, 1, 1], ceil_mode=1, count_include_pad=1),
    symbolic("GlobalAveragePool", "3d", (2, 3, 4, 5, 3), {0: "n", 2: "d", 4: "w"}),
    symbolic("GlobalMaxPool", "1d", (2, 3, 11), {2: "l"}),
]

REFUSED = [
    (symbolic("MaxPool", "ceil_dynamic", (1, 2, 7, 7), {2: "h"}, kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
     "ceil_mode needs static"),
    (symbolic("MaxPool", "indices_dynamic_batch", (2, 2, 6, 6), {0: "n"}, kernel_shape=[2, 2], n_outputs=2),
     "static batch and channel"),
    (max_pool("same_dilations", (1, 2, 8, 8), kernel_shape=[2, 2], dilations=[2, 2], auto_pad="SAME_UPPER"),
     "explicit pads"),
]
