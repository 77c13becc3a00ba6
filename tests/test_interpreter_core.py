"""The MIL interpreter: executor contract and this half's kernels, against independent references.

References: onnxruntime (ONNX graphs built through onnx2mil, and single ONNX nodes matching a
hand-built MIL program), coremltools' own value inference (its numpy semantics of each MIL op)
and coremltools' decompression of constexpr ops.
"""
import math

import numpy as np
import onnx.helper as oh
import pytest
import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil import get_new_symbol

import onnx2mil
from harness import OpCase, rand, run_ort
from onnx2mil.backend.interpreter import InterpreterError, run_program
from onnx2mil.backend.interpreter.kernels.activation import gelu
from onnx2mil.backend.interpreter.kernels.elementwise_unary import ERF_MAX_ERROR, erf32
from onnx2mil.backend.interpreter.kernels.registry import KERNELS
from op_cases import all_cases

FP32_TOL = 1e-5   # max |got - ref| / max(1, max |ref|)
FP16_TOL = 1e-2   # MNN's check for fp16 models: 1% of the reference's largest magnitude


def relative_error(got, ref) -> float:
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(got - ref)) / max(1.0, float(np.max(np.abs(ref)))))


CONV_CASES = [c for c in all_cases() if c.op_type in ("Conv", "ConvTranspose")]


@pytest.mark.parametrize("case", CONV_CASES[::3], ids=[c.id for c in CONV_CASES[::3]])
def test_conv_fp16_within_documented_tolerance(case):
    expected = run_ort(case.model(), case.inputs)
    mlmodel = onnx2mil.build_coreml(case.model(), compute_precision="fp16", config=case.config)
    result = onnx2mil.predict(mlmodel, case.inputs, capture=True)
    assert any(v.dtype == np.float16 for v in result["tensors"].values())  # fp16 storage inside
    for name, ref in expected.items():
        assert relative_error(result["outputs"][name], ref) <= FP16_TOL, name


def _conv_model(x, w):
    return OpCase("conv_overflow", "Conv", {"X": x}, {}, {"W": w}).model()


def test_fp16_overflow_becomes_inf():
    x = np.full((1, 1, 4, 4), 200.0, dtype=np.float32)
    w = np.full((1, 1, 3, 3), 100.0, dtype=np.float32)    # each output 9 * 20000 = 180000 > 65504
    model = _conv_model(x, w)
    fp32 = onnx2mil.predict(onnx2mil.build_coreml(model, compute_precision="fp32"), {"X": x})["out0"]
    fp16 = onnx2mil.predict(onnx2mil.build_coreml(model, compute_precision="fp16"), {"X": x})["out0"]
    np.testing.assert_allclose(fp32, run_ort(model, {"X": x})["out0"], rtol=1e-6)
    assert np.all(np.isposinf(fp16))


def test_fp16_rounding_shows_in_outputs():
    x = rand(1, 3, 9, 9, seed=3)
    w = rand(4, 3, 3, 3, seed=4)
    model = _conv_model(x, w)
    fp16 = onnx2mil.predict(onnx2mil.build_coreml(model, compute_precision="fp16"), {"X": x})["out0"]
    assert np.array_equal(fp16, fp16.astype(np.float16).astype(np.float32))   # values are fp16 values
    assert 0 < relative_error(fp16, run_ort(model, {"X": x})["out0"]) <= FP16_TOL


# ---------------------------------------------------------------------------------------------
# Hand-built MIL programs for what the builders do not emit, against single ONNX nodes.

def run_single(build, inputs, opset=ct.target.iOS15):
    """Run a one-op MIL program built by ``build(*placeholders)`` on ``inputs`` (name -> array)."""
    specs = [mb.TensorSpec(shape=v.shape, dtype=types.numpy_type_to_builtin_type(v.dtype)) for v in inputs.values()]

    arity = {1: lambda a: build(a), 2: lambda a, b: build(a, b), 4: lambda a, b, c, d: build(a, b, c, d)}
    prog = mb.program(input_specs=specs, opset_version=opset)(arity[len(specs)])
    names = list(prog.functions["main"].inputs)
    out = run_program(prog, dict(zip(names, inputs.values())))
    return next(iter(out.values()))


def onnx_node(op, inputs, weights=None, **attrs):
    case = OpCase(op.lower(), op, inputs, attrs, weights or {})
    return run_ort(case.model(), case.inputs)["out0"]


@pytest.mark.parametrize("pad_type,auto_pad", [("same", "SAME_UPPER"), ("same_lower", "SAME_LOWER")])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_conv_same_pad_types(pad_type, auto_pad, dims):
    x = rand(1, 4, *[9, 8, 7][:dims], seed=5)
    w = rand(6, 2, *[4, 3, 2][:dims], seed=6)
    b = rand(6, seed=7)
    strides = [2, 1, 3][:dims]   # onnxruntime takes no dilations with auto_pad
    got = run_single(lambda v: mb.conv(x=v, weight=w, bias=b, strides=strides, groups=2, pad_type=pad_type),
                     {"X": x}, opset=ct.target.iOS16)
    ref = onnx_node("Conv", {"X": x}, {"W": w, "B": b}, auto_pad=auto_pad, strides=strides, group=2)
    assert relative_error(got, ref) <= FP32_TOL


def test_conv_depthwise_multiplier_and_dynamic_weight():
    x = rand(2, 3, 11, 10, seed=8)
    w = rand(6, 1, 3, 3, seed=9)          # 2 output channels per input channel
    got = run_single(lambda v, k: mb.conv(x=v, weight=k, groups=3, pad_type="custom", pad=[1, 0, 2, 1]),
                     {"X": x, "W": w})
    ref = onnx_node("Conv", {"X": x, "W": w}, group=3, pads=[1, 2, 0, 1])
    assert relative_error(got, ref) <= FP32_TOL


def test_conv_transpose_output_shape_and_custom_pads():
    x = rand(1, 4, 6, seed=10)
    w = rand(4, 3, 5, seed=11)
    b = rand(3, seed=12)
    # full = (6-1)*3 + 5 = 20; crop 1 at the start and keep 18 positions (one past end pad 2).
    got = run_single(lambda v: mb.conv_transpose(x=v, weight=w, bias=b, strides=[3], pad_type="custom", pad=[1, 2],
                                                 output_shape=[1, 3, 18]), {"X": x})
    ref = onnx_node("ConvTranspose", {"X": x}, {"W": w, "B": b}, strides=[3], pads=[1, 2], output_padding=[1])
    assert relative_error(got, ref) <= FP32_TOL


def test_conv_transpose_groups_dilations_3d():
    x = rand(1, 4, 3, 4, 3, seed=13)
    w = rand(4, 2, 2, 3, 2, seed=14)
    got = run_single(lambda v: mb.conv_transpose(x=v, weight=w, strides=[2, 1, 2], dilations=[1, 2, 1], groups=2,
                                                 pad_type="custom", pad=[1, 0, 0, 2, 1, 1]), {"X": x})
    ref = onnx_node("ConvTranspose", {"X": x}, {"W": w}, strides=[2, 1, 2], dilations=[1, 2, 1], group=2,
                    pads=[1, 0, 1, 0, 2, 1])
    assert relative_error(got, ref) <= FP32_TOL


@pytest.mark.parametrize("shape,weight,strides,pad", [
    ((1, 4, 9), (4, 2, 5), [2], [1, 2]),                  # depthwise with a channel multiplier
    ((2, 6, 1, 13), (6, 1, 1, 12), [1, 2], [0, 0, 5, 6]),  # BigVGAN's anti-aliasing upsampler, as 2-D
])
def test_conv_transpose_depthwise(shape, weight, strides, pad):
    x, w = rand(*shape, seed=44), rand(*weight, seed=45)
    got = run_single(lambda v: mb.conv_transpose(x=v, weight=w, strides=strides, groups=shape[1], pad_type="custom",
                                                 pad=pad), {"X": x})
    ref = onnx_node("ConvTranspose", {"X": x}, {"W": w}, strides=strides, group=shape[1], pads=_onnx_pads(pad))
    assert relative_error(got, ref) <= FP32_TOL


@pytest.mark.parametrize("shape,weight,strides,dilations,groups,pad", [
    ((1, 3, 4, 5), (3, 1, 3, 2), [2, 3], [2, 1], 1, [1, 0, 0, 2]),  # one output channel: phases side by side, 2-D
    ((2, 6, 7), (6, 1, 5), [2], [3], 3, [2, 1]),                    # reach through a dilation wider than the stride
    ((1, 4, 5, 3), (4, 3, 2, 3), [3, 2], [1, 2], 2, [0, 1, 1, 1]),  # channels x phases rows, 2-D interleave
])
def test_conv_transpose_polyphase_layouts(shape, weight, strides, dilations, groups, pad):
    x, w = rand(*shape, seed=46), rand(*weight, seed=47)
    got = run_single(lambda v: mb.conv_transpose(x=v, weight=w, strides=strides, dilations=dilations, groups=groups,
                                                 pad_type="custom", pad=pad), {"X": x})
    ref = onnx_node("ConvTranspose", {"X": x}, {"W": w}, strides=strides, dilations=dilations, group=groups,
                    pads=_onnx_pads(pad))
    assert relative_error(got, ref) <= FP32_TOL


def test_conv_depthwise_3d():
    # the kernel once named the channel axis and a third spatial axis alike in an einsum
    x, w = rand(1, 3, 5, 6, 7, seed=48), rand(3, 1, 3, 4, 3, seed=49)
    got = run_single(lambda v: mb.conv(x=v, weight=w, groups=3, strides=[2, 3, 2], dilations=[1, 1, 2],
                                       pad_type="custom", pad=[1, 1, 0, 2, 2, 1]), {"X": x})
    ref = onnx_node("Conv", {"X": x}, {"W": w}, group=3, strides=[2, 3, 2], dilations=[1, 1, 2],
                    pads=[1, 0, 2, 1, 2, 1])
    assert relative_error(got, ref) <= FP32_TOL


def _onnx_pads(mil_pad):
    return list(mil_pad[0::2]) + list(mil_pad[1::2])


@pytest.mark.parametrize("exclude", [False, True])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_avg_pool_padding_count_and_ceil_mode(exclude, ceil_mode):
    x = rand(1, 2, 9, 8, seed=15, low=-3, high=3)
    pad = [1, 1, 1, 1]
    got = run_single(lambda v: mb.avg_pool(x=v, kernel_sizes=[3, 2], strides=[2, 3], pad_type="custom", pad=pad,
                                           exclude_padding_from_average=exclude, ceil_mode=ceil_mode), {"X": x})
    ref = onnx_node("AveragePool", {"X": x}, kernel_shape=[3, 2], strides=[2, 3], pads=_onnx_pads(pad),
                    count_include_pad=int(not exclude), ceil_mode=int(ceil_mode))
    assert relative_error(got, ref) <= FP32_TOL


@pytest.mark.parametrize("pad_type,auto_pad", [("same", "SAME_UPPER"), ("same_lower", "SAME_LOWER")])
def test_max_pool_same_pad_types(pad_type, auto_pad):
    x = rand(1, 3, 7, 10, 5, seed=16, low=-3, high=3)
    got = run_single(lambda v: mb.max_pool(x=v, kernel_sizes=[2, 3, 2], strides=[2, 2, 1], pad_type=pad_type),
                     {"X": x}, opset=ct.target.iOS16)
    ref = onnx_node("MaxPool", {"X": x}, kernel_shape=[2, 3, 2], strides=[2, 2, 1], auto_pad=auto_pad)
    assert relative_error(got, ref) <= FP32_TOL


def test_max_pool_ceil_mode_and_l2_pool():
    x = rand(1, 2, 10, seed=17, low=-3, high=3)
    got = run_single(lambda v: mb.max_pool(x=v, kernel_sizes=[3], strides=[2], pad_type="custom", pad=[1, 1],
                                           ceil_mode=True), {"X": x})
    ref = onnx_node("MaxPool", {"X": x}, kernel_shape=[3], strides=[2], pads=[1, 1], ceil_mode=1)
    assert relative_error(got, ref) <= FP32_TOL
    got = run_single(lambda v: mb.l2_pool(x=v, kernel_sizes=[3], strides=[2], pad_type="custom", pad=[1, 0]),
                     {"X": x})
    ref = onnx_node("LpPool", {"X": x}, kernel_shape=[3], strides=[2], pads=[1, 0], p=2)
    assert relative_error(got, ref) <= FP32_TOL


def test_batch_norm_instance_norm_lrn():
    x = rand(2, 5, 6, 4, seed=18, low=-2, high=2)
    mean, var = rand(5, seed=19), rand(5, seed=20, low=0.5, high=2.0)
    gamma, beta = rand(5, seed=21), rand(5, seed=22)
    got = run_single(lambda v: mb.batch_norm(x=v, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3),
                     {"X": x})
    ref = onnx_node("BatchNormalization", {"X": x}, {"s": gamma, "b": beta, "m": mean, "v": var}, epsilon=1e-3)
    assert relative_error(got, ref) <= FP32_TOL
    got = run_single(lambda v: mb.instance_norm(x=v, gamma=gamma, beta=beta, epsilon=1e-4), {"X": x})
    ref = onnx_node("InstanceNormalization", {"X": x}, {"s": gamma, "b": beta}, epsilon=1e-4)
    assert relative_error(got, ref) <= FP32_TOL
    got = run_single(lambda v: mb.local_response_norm(x=v, size=3, alpha=1e-2, beta=0.6, k=2.0), {"X": x})
    ref = onnx_node("LRN", {"X": x}, size=3, alpha=1e-2, beta=0.6, bias=2.0)
    assert relative_error(got, ref) <= FP32_TOL


def test_scaled_dot_product_attention_matches_onnx_graph():
    q, k, v = rand(2, 3, 5, 8, seed=23), rand(2, 3, 7, 8, seed=24), rand(2, 3, 7, 4, seed=25)
    mask = rand(5, 7, seed=26)
    got = run_single(lambda a, b, c, m: mb.scaled_dot_product_attention(query=a, key=b, value=c, attn_mask=m),
                     {"q": q, "k": k, "v": v, "m": mask}, opset=ct.target.iOS18)
    nodes = [oh.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             oh.make_node("MatMul", ["q", "kt"], ["s"]),
             oh.make_node("Mul", ["s", "scale"], ["ss"]),
             oh.make_node("Add", ["ss", "m"], ["sm"]),
             oh.make_node("Softmax", ["sm"], ["p"], axis=-1),
             oh.make_node("MatMul", ["p", "v"], ["out"])]
    feeds = {"q": q, "k": k, "v": v, "m": mask}
    graph = oh.make_graph(nodes, "sdpa", [oh.make_tensor_value_info(n, 1, a.shape) for n, a in feeds.items()],
                          [oh.make_tensor_value_info("out", 1, None)],
                          [oh.make_tensor("scale", 1, [], [1 / np.sqrt(8)])])
    ref = run_ort(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]), feeds)["out"]
    assert relative_error(got, ref) <= FP32_TOL
    bool_mask = rand(5, 7, seed=27) > -0.5
    got = run_single(lambda a, b, c, m: mb.scaled_dot_product_attention(query=a, key=b, value=c, attn_mask=m),
                     {"q": q, "k": k, "v": v, "m": bool_mask}, opset=ct.target.iOS18)
    additive = np.where(bool_mask, 0.0, -1e9).astype(np.float32)
    ref = run_ort(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]), {**feeds, "m": additive})["out"]
    assert relative_error(got, ref) <= FP32_TOL


# ---------------------------------------------------------------------------------------------
# Kernels against coremltools' own value inference (its numpy semantics of the op).

X = rand(2, 3, 4, 5, seed=30, low=-4, high=4)
CHANNEL = rand(3, seed=31, low=0.5, high=1.5)
VALUE_INFERENCE_CASES = [
    ("relu", {}), ("relu6", {}), ("sigmoid", {}), ("softplus", {}), ("softsign", {}),
    ("gelu", {"mode": "EXACT"}), ("gelu", {"mode": "TANH_APPROXIMATION"}), ("gelu", {"mode": "SIGMOID_APPROXIMATION"}),
    ("softmax", {"axis": 1}), ("softmax", {"axis": -1}), ("softmax", {"axis": 3}), ("elu", {"alpha": 0.7}), ("leaky_relu", {"alpha": 0.2}),
    ("linear_activation", {"alpha": 1.5, "beta": -0.5}), ("scaled_tanh", {"alpha": 2.0, "beta": 0.5}),
    ("sigmoid_hard", {"alpha": 0.3, "beta": 0.4}), ("thresholded_relu", {"alpha": 0.5}),
    ("clamped_relu", {"alpha": 0.1, "beta": 2.5}), ("prelu", {"alpha": CHANNEL}),
    ("softplus_parametric", {"alpha": CHANNEL, "beta": CHANNEL[::-1].copy()}),
    ("l2_norm", {"epsilon": 1e-4}), ("layer_norm", {"axes": [1, 3], "gamma": rand(3, 5, seed=32),
                                                   "beta": rand(3, 5, seed=33), "epsilon": 1e-3}),
]


def value_inference(op_type, x, **attrs):
    """coremltools' value inference of ``op_type`` on a constant ``x``."""
    holder = {}

    @mb.program(input_specs=[mb.TensorSpec(shape=(1,))], opset_version=ct.target.iOS17)
    def prog(dummy):
        holder["val"] = getattr(mb, op_type)(x=x, **attrs).val
        return dummy

    return holder["val"]


@pytest.mark.parametrize("op_type,attrs", VALUE_INFERENCE_CASES,
                         ids=[f"{op}_{i}" for i, (op, _) in enumerate(VALUE_INFERENCE_CASES)])
def test_kernel_matches_coremltools_value_inference(op_type, attrs):
    ref = value_inference(op_type, X, **attrs)
    got = run_single(lambda v: getattr(mb, op_type)(x=v, **attrs), {"x": X}, opset=ct.target.iOS17)
    assert relative_error(got, ref) <= FP32_TOL


def test_softmax_short_rows_with_masked_entries_match_value_inference():
    # 48 rows of 12 (the transposed reduction), -inf entries as an attention mask puts them
    x = rand(4, 12, 12, seed=36, low=-30, high=30)
    x[:, :, 5] = -np.inf
    x[1, 3, :] = -np.inf                                    # a fully masked row: NaN, as in coremltools
    with np.errstate(invalid="ignore"):                     # the masked row's -inf - -inf
        ref = value_inference("softmax", x, axis=-1)
    got = run_single(lambda v: mb.softmax(x=v, axis=-1), {"x": x}, opset=ct.target.iOS17)
    assert np.array_equal(np.isnan(got), np.isnan(ref)) and np.isnan(got).sum() == 12
    finite = ~np.isnan(ref)
    assert relative_error(got[finite], ref[finite]) <= FP32_TOL and np.all(got[:, :, 5][finite[:, :, 5]] == 0)


def _erf_grid() -> np.ndarray:
    """A dense float32 grid over [-6, 6] and every 97th float32 in [1e-4, 4] (both signs)."""
    dense = np.linspace(-6, 6, 600_001, dtype=np.float32)
    bits = np.arange(np.float32(1e-4).view(np.int32), np.float32(4).view(np.int32), 97, dtype=np.int32)
    sweep = bits.view(np.float32)
    return np.concatenate([dense, sweep, -sweep])


def test_erf32_max_error_against_math_erf():
    x = _erf_grid()
    ref = np.array([math.erf(v) for v in x.astype(np.float64).tolist()])
    got = erf32(x)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert float(np.max(np.abs(got - ref))) <= ERF_MAX_ERROR
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 100.0], np.float32)
    out = erf32(special)
    assert np.isnan(out[0]) and list(out[1:3]) == [1, -1] and np.signbit(out[4]) and out[5] > 0 and out[6] == 1
    assert erf32(np.array(0.5, np.float32)).shape == () and erf32(np.zeros((0, 3), np.float32)).shape == (0, 3)


def test_exact_gelu_error_against_math_erf():
    # 0.5 * x * (1 + erf(x / sqrt 2)) in float32: erf's error times |x| / 2, plus float32 rounding
    x = np.linspace(-10, 10, 400_001, dtype=np.float32)
    ref = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64).tolist()])
    got = gelu(None, x)
    assert got.dtype == np.float32
    assert float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(x)))) <= 1.5e-7
    # the IEEE values of the float32 formula: inf -> inf, -inf -> -inf * 0 = NaN, NaN -> NaN
    with np.errstate(invalid="ignore"):  # as the interpreter runs
        special = gelu(None, np.array([np.inf, -np.inf, np.nan, 0.0, 100.0, -100.0], np.float32))
    assert special[0] == np.inf and np.isnan(special[1]) and np.isnan(special[2])
    assert special[3] == 0 and special[4] == 100 and special[5] == 0
    assert gelu(None, np.array(0.5, np.float32)).shape == () and gelu(None, np.zeros((0, 3), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("tx,ty", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_linear_einsum_match_value_inference(tx, ty):
    a, b = rand(2, 1, 4, 3, seed=34), rand(5, 3, 6, seed=35)
    a_ = np.swapaxes(a, -1, -2).copy() if tx else a
    b_ = np.swapaxes(b, -1, -2).copy() if ty else b
    holder = {}

    @mb.program(input_specs=[mb.TensorSpec(shape=(1,))])
    def prog(dummy):
        holder["matmul"] = mb.matmul(x=a_, y=b_, transpose_x=tx, transpose_y=ty).val
        return dummy

    got = run_single(lambda x, y: mb.matmul(x=x, y=y, transpose_x=tx, transpose_y=ty), {"a": a_, "b": b_})
    assert relative_error(got, holder["matmul"]) <= FP32_TOL
    w, bias = rand(7, 3, seed=36), rand(7, seed=37)
    got = run_single(lambda x: mb.linear(x=x, weight=w, bias=bias), {"a": a})
    assert relative_error(got, run_ort_gemm_like(a, w, bias)) <= FP32_TOL
    p, q = rand(2, 3, 4, 5, seed=38), rand(2, 5, 4, 6, seed=39)
    got = run_single(lambda x, y: mb.einsum(values=(x, y), equation="abcd,adce->abce"), {"p": p, "q": q})
    ref = run_ort(oh.make_model(oh.make_graph(
        [oh.make_node("Einsum", ["p", "q"], ["out"], equation="abcd,adce->abce")], "einsum",
        [oh.make_tensor_value_info("p", 1, p.shape), oh.make_tensor_value_info("q", 1, q.shape)],
        [oh.make_tensor_value_info("out", 1, None)]), opset_imports=[oh.make_opsetid("", 17)]), {"p": p, "q": q})
    assert relative_error(got, ref["out"]) <= FP32_TOL


def run_ort_gemm_like(a, w, bias):
    graph = oh.make_graph([oh.make_node("MatMul", ["a", "wt"], ["m"]), oh.make_node("Add", ["m", "b"], ["out"])],
                          "linear", [oh.make_tensor_value_info("a", 1, a.shape)],
                          [oh.make_tensor_value_info("out", 1, None)],
                          [oh.make_tensor("wt", 1, w.T.shape, w.T.ravel()), oh.make_tensor("b", 1, bias.shape, bias)])
    return run_ort(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)]), {"a": a})["out"]


# ---------------------------------------------------------------------------------------------
# constexpr ops against coremltools' decompression, including a round trip through a saved model.

def _constexpr_program(make, shape, opset):
    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=opset)
    def prog(x):
        return mb.add(x=x, y=make())

    return prog


def _materialized(prog):
    ops = [op for op in prog.functions["main"].operations if op.op_type.startswith("constexpr_")]
    return ops[0].materialized_val_inference()


CONSTEXPR_CASES = {
    "affine_dequantize_ios16": (ct.target.iOS16, (4, 3), lambda: mb.constexpr_affine_dequantize(
        quantized_data=np.arange(12, dtype=np.uint8).reshape(4, 3), zero_point=np.uint8(3),
        scale=np.array([0.5, 1.0, 2.0], dtype=np.float32), axis=1)),
    "lut_to_dense_ios16": (ct.target.iOS16, (3, 5), lambda: mb.constexpr_lut_to_dense(
        indices=np.array([0b11100100, 0b00011011, 0b10010011, 0b01], dtype=np.uint8),
        lut=np.array([-1.0, 0.5, 2.0, 3.5], dtype=np.float32), shape=np.array([3, 5], dtype=np.uint32))),
    "sparse_to_dense_ios16": (ct.target.iOS16, (2, 5), lambda: mb.constexpr_sparse_to_dense(
        nonzero_data=np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32),
        mask=np.array([0b10010010, 0b01], dtype=np.uint8), shape=np.array([2, 5], dtype=np.uint32))),
    "cast_ios16": (ct.target.iOS16, (2, 3), lambda: mb.constexpr_cast(
        source_val=np.arange(6, dtype=np.float16).reshape(2, 3), output_dtype="fp32")),
    "blockwise_shift_scale_ios18": (ct.target.iOS18, (4, 6), lambda: mb.constexpr_blockwise_shift_scale(
        data=np.random.default_rng(0).integers(-8, 8, (4, 6)).astype(np.int8),
        scale=rand(2, 3, seed=40), offset=np.array([[1, -2, 0], [3, 0, -1]], dtype=np.int8))),
    "lut_to_dense_ios18_vector": (ct.target.iOS18, (4, 6), lambda: mb.constexpr_lut_to_dense(
        indices=np.random.default_rng(1).integers(0, 4, (4, 3)).astype(types.np_uint2_dtype),
        lut=rand(2, 1, 4, 2, seed=41), vector_axis=1)),
    "sparse_to_dense_ios18": (ct.target.iOS18, (3, 4), lambda: mb.constexpr_sparse_to_dense(
        nonzero_data=np.array([1.0, -2.0, 3.0, 5.0, 7.0], dtype=np.float32),
        mask=np.array([[1, 0, 0, 1], [0, 1, 0, 0], [1, 0, 1, 0]], dtype=types.np_uint1_dtype))),
}


@pytest.mark.parametrize("name", list(CONSTEXPR_CASES))
def test_constexpr_matches_coremltools_decompression(name):
    opset, shape, make = CONSTEXPR_CASES[name]
    prog = _constexpr_program(make, shape, opset)
    x = np.zeros(shape, dtype=np.float32)
    got = next(iter(run_program(prog, {"x": x}).values()))
    np.testing.assert_allclose(got, _materialized(prog), rtol=1e-6)


def _sparse_program(make_sparse, shape):
    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS18)
    def prog(x):
        mask, nonzero = make_sparse()
        return mb.add(x=x, y=mb.constexpr_sparse_to_dense(nonzero_data=nonzero, mask=mask))

    return prog


DOC_MASK = np.array([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 1], [0, 1, 1, 0, 1, 0], [0, 0, 0, 1, 0, 0]])


@pytest.mark.parametrize("vector", [False, True])
def test_constexpr_lut_to_sparse_docstring_example(vector):
    """The examples of constexpr_lut_to_sparse's docstring (coremltools defs/iOS18/compression.py)."""
    lut = np.array([[2.0, 2.0], [3.0, 3.0]] if vector else [[2.0], [3.0]], dtype=np.float32).reshape(1, 1, 2, -1)
    prog = _sparse_program(lambda: mb.constexpr_lut_to_sparse(
        indices_mask=DOC_MASK.astype(types.np_uint1_dtype),
        indices_nonzero_data=np.array([0, 1, 1, 0, 1, 1, 0, 0, 1]).astype(types.np_uint1_dtype),
        lut=lut, vector_axis=0 if vector else None), (8, 6) if vector else (4, 6))
    scalar = np.array([[2, 3, 0, 0, 0, 0], [3, 2, 0, 0, 0, 3], [0, 3, 2, 0, 2, 0], [0, 0, 0, 3, 0, 0]], np.float32)
    expected = np.repeat(scalar, 2, axis=0) if vector else scalar
    got = next(iter(run_program(prog, {"x": np.zeros(expected.shape, np.float32)}).values()))
    np.testing.assert_array_equal(got, expected)


def test_constexpr_sparse_blockwise_shift_scale_docstring_example():
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]])
    prog = _sparse_program(lambda: mb.constexpr_sparse_blockwise_shift_scale(
        data_mask=mask.astype(types.np_uint1_dtype), nonzero_data=np.array([10, 11, 3, 4, 5, 6, 7, 8, 9], np.int8),
        scale=np.array([[0.1, 0.2, 0.3, 0.4]], np.float32), offset=np.array([[1, 2, 3, 4]], np.int8)), (4, 4))
    got = next(iter(run_program(prog, {"x": np.zeros((4, 4), np.float32)}).values()))
    expected = np.zeros((4, 4), np.float32)
    expected[mask != 0] = [0.9, 1.8, 0.2, 0.4, 0.6, 0.9, 1.2, 0.7, 1.4]
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_constexpr_int4_round_trip_through_saved_model(tmp_path):
    data = np.random.default_rng(2).integers(-8, 8, (8, 4)).astype(np.int8)
    scale = rand(2, 4, seed=42, low=0.1, high=1.0)

    @mb.program(input_specs=[mb.TensorSpec(shape=(8, 4))], opset_version=ct.target.iOS18)
    def prog(x):
        w = mb.constexpr_blockwise_shift_scale(data=mb.const(val=data.astype(types.np_int4_dtype)), scale=scale)
        return mb.add(x=x, y=w)

    reference = _materialized(prog)
    mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                         compute_precision=ct.precision.FLOAT32)
    saved = onnx2mil.load_saved_program(onnx2mil.save(mlmodel, tmp_path / "int4.mlpackage"))
    assert any(op.op_type == "constexpr_blockwise_shift_scale" for op in saved.functions["main"].operations)
    x = rand(8, 4, seed=43)
    got = next(iter(onnx2mil.predict(saved, {"x": x}).values()))
    np.testing.assert_allclose(got, x + reference, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Executor contract: unsupported ops, control flow, inputs, capture, declared shapes.

def test_unsupported_op_is_refused_before_anything_runs(monkeypatch):
    calls = []
    monkeypatch.setitem(KERNELS, "relu", lambda op, x: calls.append(op.name) or np.maximum(x, 0))

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))])
    def prog(x):
        y = mb.relu(x=x, name="first_relu")
        return mb.add(x=y, y=mb.random_uniform(shape=np.array([2, 3], dtype=np.int32), name="noise"))

    with pytest.raises(onnx2mil.UnsupportedMILOpError) as info:
        run_program(prog, {"x": np.zeros((2, 3), np.float32)})
    assert info.value.op_type == "random_uniform" and info.value.op_name == "noise"
    assert "random_uniform" in str(info.value) and "noise" in str(info.value)
    assert calls == []


def test_cond_and_while_loop_run_their_blocks():
    @mb.program(input_specs=[mb.TensorSpec(shape=(3,)), mb.TensorSpec(shape=(1,))])
    def prog(x, flag):
        pred = mb.greater(x=mb.reduce_sum(x=flag), y=0.0)
        chosen = mb.cond(pred=pred, _true_fn=lambda: mb.mul(x=x, y=2.0), _false_fn=lambda: mb.sub(x=x, y=1.0),
                         name="chosen")

        def cond_fn(i, acc):
            return mb.less(x=i, y=5)

        def body_fn(i, acc):
            return mb.add(x=i, y=1), mb.add(x=acc, y=chosen)

        _, total = mb.while_loop(_cond=cond_fn, _body=body_fn,
                                 loop_vars=(np.int32(0), np.zeros(3, dtype=np.float32)), name="loop")
        return mb.identity(x=total, name="total")

    x = np.array([1.0, -2.0, 3.5], dtype=np.float32)
    out = run_program(prog, {"x": x, "flag": np.array([1.0], np.float32)})
    np.testing.assert_array_equal(out["total"], 5 * (2 * x))
    out = run_program(prog, {"x": x, "flag": np.array([-1.0], np.float32)})
    np.testing.assert_array_equal(out["total"], 5 * (x - 1))


def _two_input_program():
    n = get_new_symbol()

    @mb.program(input_specs=[mb.TensorSpec(shape=(n, 3)), mb.TensorSpec(shape=(n, 3), dtype=types.int32)])
    def prog(a, b):
        return mb.add(x=mb.relu(x=a, name="r"), y=mb.cast(x=b, dtype="fp32"), name="sum")

    return prog


def test_input_checks():
    prog = _two_input_program()
    a, b = np.ones((4, 3), np.float32), np.arange(12, dtype=np.int64).reshape(4, 3)
    out = run_program(prog, {"a": a, "b": b})
    np.testing.assert_array_equal(out["sum"], 1 + b)
    with pytest.raises(InterpreterError, match="missing"):
        run_program(prog, {"a": a})
    with pytest.raises(InterpreterError, match="unexpected"):
        run_program(prog, {"a": a, "b": b, "c": b})
    with pytest.raises(InterpreterError, match="symbolic dim"):
        run_program(prog, {"a": a, "b": b[:3]})
    with pytest.raises(InterpreterError, match="rank"):
        run_program(prog, {"a": a[None], "b": b})
    with pytest.raises(InterpreterError, match="int32 range"):
        run_program(prog, {"a": a, "b": b + 2 ** 40})


def test_capture_returns_every_var_with_its_dtype():
    prog = _two_input_program()
    out = run_program(prog, {"a": -np.ones((2, 3)), "b": np.ones((2, 3), np.int32)}, capture=True)
    produced = {v.name for op in prog.functions["main"].operations for v in op.outputs}
    assert produced | {"a", "b"} <= set(out)
    assert out["a"].dtype == np.float32 and out["r"].dtype == np.float32
    np.testing.assert_array_equal(out["r"], np.zeros((2, 3)))


def test_fp16_vars_hold_float16_arrays():
    @mb.program(input_specs=[mb.TensorSpec(shape=(3,))])
    def prog(x):
        h = mb.cast(x=x, dtype="fp16", name="h")
        return mb.cast(x=mb.relu(x=h, name="hr"), dtype="fp32", name="out")

    out = run_program(prog, {"x": np.array([70000.0, 1.0001, -3.0], np.float32)}, capture=True)
    assert out["h"].dtype == np.float16 and out["hr"].dtype == np.float16
    np.testing.assert_array_equal(out["out"], np.array([np.inf, np.float16(1.0001), 0.0], np.float32))


def test_kernel_output_that_contradicts_the_declared_shape_is_an_error(monkeypatch):
    monkeypatch.setitem(KERNELS, "relu", lambda op, x: np.zeros((5,), x.dtype))

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))])
    def prog(x):
        return mb.relu(x=x, name="bad")

    with pytest.raises(InterpreterError, match=r"'bad'.*\(5,\).*\(2, 3\)"):
        run_program(prog, {"x": np.zeros((2, 3), np.float32)})
