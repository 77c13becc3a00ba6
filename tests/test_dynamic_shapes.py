"""Variable-length models as exporters emit them: a symbolic time axis built once with a RangeDim,
run at several lengths (both bounds included), each compared with onnxruntime on the same ONNX."""
from __future__ import annotations

import math
import re

import coremltools as ct
import numpy as np
import onnx
import pytest

import onnx2mil
from harness import run_ort
from onnx2mil import models
from onnx2mil.backend.convert import loader
from onnx2mil.backend.convert.loader import load_graph
from onnx2mil.errors import InputError, InputShapeError, UnsupportedOperatorError
from onnx2mil.models import bigvgan
from onnx2mil.models._torch_like import TorchLikeGraph
from op_cases import rnn as rnn_cases
import real_exports

TOLERANCE = {"fp32": 1e-5, "fp16": 1e-2}  # error / max|reference|


def symbolic_time(model: onnx.ModelProto, axis: int = 2) -> onnx.ModelProto:
    """``model`` as exported with ``dynamic_axes={input: {axis: "T"}}``: the inputs' ``axis``
    symbolic, output and intermediate shapes left to inference."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for vi in out.graph.input:
        vi.type.tensor_type.shape.dim[axis].dim_param = "T"
    for vi in out.graph.output:
        vi.type.tensor_type.ClearField("shape")
    del out.graph.value_info[:]
    return out


def hifigan_reflect(mel_dim: int = 8, channels: int = 16, rates=(4, 2), seed: int = 0) -> onnx.ModelProto:
    """A HiFi-GAN / MelGAN-style generator: ReflectionPad1d before its unpadded convs (input,
    dilated residual convs, output), LeakyReLU, ConvTranspose1d upsampling, Tanh."""
    g = TorchLikeGraph("hifigan", seed)

    def conv(scope, x, c_in, c_out, k, dilation=1, reflect=0):
        if reflect:
            pads = g.const(scope, [0, 0, reflect, 0, 0, reflect], np.int64)
            x = g.op(scope, "Pad", [x, pads], mode="reflect")
        bound = math.sqrt(3.0 / (c_in * k))
        w = g.param(f"{scope[1:]}.weight", g.uniform((c_out, c_in, k), bound))
        b = g.param(f"{scope[1:]}.bias", g.uniform((c_out,), bound))
        return g.op(scope, "Conv", [x, w, b], kernel_shape=[k], dilations=[dilation], pads=[0, 0], strides=[1])

    x = conv("/conv_pre", g.input("mel", (1, mel_dim, 16)), mel_dim, channels, 7, reflect=3)
    for i, rate in enumerate(rates):
        c_in, c = channels >> i, channels >> (i + 1)
        x = g.op(f"/ups.{i}", "LeakyRelu", [x], alpha=0.2)
        bound = math.sqrt(3.0 / (c * 2 * rate))
        w = g.param(f"ups.{i}.weight", g.uniform((c_in, c, 2 * rate), bound))
        b = g.param(f"ups.{i}.bias", g.uniform((c,), bound))
        x = g.op(f"/ups.{i}", "ConvTranspose", [x, w, b], kernel_shape=[2 * rate], strides=[rate],
                 pads=[rate // 2 + rate % 2, rate // 2], output_padding=[rate % 2])
        for j, d in enumerate((1, 3, 9)):
            scope = f"/resblocks.{i}.{j}"
            y = g.op(scope, "LeakyRelu", [x], alpha=0.2)
            y = conv(f"{scope}/conv1", y, c, c, 3, dilation=d, reflect=d)
            y = g.op(scope, "LeakyRelu", [y], alpha=0.2)
            y = conv(f"{scope}/conv2", y, c, c, 1)
            x = g.op(scope, "Add", [x, y])
    x = g.op("/post", "LeakyRelu", [x], alpha=0.2)
    x = conv("/conv_post", x, channels >> len(rates), 1, 7, reflect=3)
    g.op("/post", "Tanh", [x], outputs=["audio"])
    g.output("audio", (1, 1, 16 * int(np.prod(rates))))
    return g.model(doc="HiFi-GAN-style generator with reflection pads")


def mel(length: int, mel_dim: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed + length)
    return rng.normal(-5.0, 2.0, size=(1, mel_dim, length)).astype(np.float32)


def assert_matches_ort(onnx_model, mlmodel, feeds: dict, precision: str) -> float:
    """Every output within TOLERANCE[precision] of onnxruntime (relative to max |reference|)."""
    ref = run_ort(onnx_model, feeds)
    got = onnx2mil.predict(mlmodel, feeds)
    worst = 0.0
    for name, r in ref.items():
        assert got[name].shape == r.shape, (name, got[name].shape, r.shape)
        err = float(np.abs(got[name].astype(np.float64) - r).max() / max(np.abs(r).max(), 1e-30))
        assert err <= TOLERANCE[precision], f"{name} at {feeds_shapes(feeds)}: error / max|ref| = {err:.3g}"
        worst = max(worst, err)
    return worst


def feeds_shapes(feeds: dict) -> dict:
    return {k: v.shape for k, v in feeds.items()}


def saved_conv_transposes(mlmodel, tmp_path):
    prog = onnx2mil.load_saved_program(onnx2mil.save(mlmodel, tmp_path / "model.mlpackage"))
    return [op for op in prog.functions["main"].operations if op.op_type == "conv_transpose"]


VOCODERS = {
    "bigvgan-tiny": (lambda: symbolic_time(models.build("bigvgan-tiny")), 16, 96),
    "hifigan-reflect": (lambda: symbolic_time(hifigan_reflect()), 12, 80),
}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("vocoder", list(VOCODERS))
def test_vocoder_with_symbolic_time_runs_at_every_length(vocoder, precision, tmp_path):
    make, low, high = VOCODERS[vocoder]
    model = make()
    mlmodel = onnx2mil.build_coreml(
        model, inputs=[ct.TensorType(name="mel", shape=(1, 8, ct.RangeDim(low, high, default=32)))],
        compute_precision=precision)
    for length in (low, low + 1, 37, high):
        assert_matches_ort(model, mlmodel, {"mel": mel(length)}, precision)
        report = onnx2mil.validate(model, mlmodel, inputs={"mel": mel(length)})
        assert report.ok, (length, report.summary())
    # ANE adds a rank-3 conv_transpose bias to the first elements only: the 4-D lowering holds
    # (identical upsampling filters on the same tensor are merged by coremltools' CSE pass)
    ops = saved_conv_transposes(mlmodel, tmp_path)
    ups = [re.sub(r"\W", "_", n.output[0]) for n in model.graph.node
           if n.name.startswith("/ups.") and n.op_type == "ConvTranspose"]
    assert ups and all(any(op.name.startswith(u) for op in ops) for u in ups)
    assert all(op.x.rank == 4 and op.output_shape is None for op in ops)


def test_static_vocoder_given_a_range_dim_is_reinferred(tmp_path):
    """A static export given a RangeDim: nothing is folded for the exported length."""
    model = models.build("bigvgan-tiny")
    mlmodel = onnx2mil.build_coreml(
        model, inputs=[ct.TensorType(name="mel", shape=(1, 8, ct.RangeDim(16, 64, default=16)))],
        compute_precision="fp32")
    for length in (16, 23, 64):
        assert_matches_ort(symbolic_time(model), mlmodel, {"mel": mel(length)}, "fp32")


def test_edge_pad_below_the_lower_bound_is_refused():
    """BigVGAN's anti-aliased activation pads its input by 5 and the upsampled signal (twice as
    long) by 6 (edge): a length of 2 is too short for both."""
    model = symbolic_time(bigvgan.activation1d_model(channels=4, length=16))
    with pytest.raises(UnsupportedOperatorError) as e:
        onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, 4, ct.RangeDim(2, 64)))])
    reasons = {r.node: r.reason for r in e.value.refusals}
    assert list(reasons) == ["/activation/upsample/Pad", "/activation/downsample/Pad"]
    assert "by 5, but that axis can be as short as 2" in reasons["/activation/upsample/Pad"]
    assert "by 6, but that axis can be as short as 4" in reasons["/activation/downsample/Pad"]
    assert all("raise the lower bound" in r for r in reasons.values())
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, 4, ct.RangeDim(5, 64)))],
                                    compute_precision="fp32")
    for length in (5, 6, 64):
        assert_matches_ort(model, mlmodel, {"x": mel(length, mel_dim=4)}, "fp32")


def test_bigvgan_without_bounds_runs_from_length_one():
    """No inputs=: the symbolic axis runs 1..16384; BigVGAN's pads fit even at length 1."""
    model = symbolic_time(models.build("bigvgan-tiny"))
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32")
    for length in (1, 2, 50):
        assert_matches_ort(model, mlmodel, {"mel": mel(length)}, "fp32")


def test_reflect_pad_without_bounds_uses_the_default_lower_bound():
    """A symbolic axis the user gave no bounds for runs from length 1: a reflect pad by 3 refused."""
    with pytest.raises(UnsupportedOperatorError, match="can be as short as 1"):
        onnx2mil.build_coreml(symbolic_time(hifigan_reflect()))


def one_node(op_type: str, x_shape, attrs=None, weights=None, opset: int = 17) -> onnx.ModelProto:
    """A single ``op_type`` node on input ``x`` (symbolic dims as names), constants as initializers."""
    weights = weights or {}
    node = onnx.helper.make_node(op_type, ["x", *weights], ["y"], name=f"/{op_type}", **(attrs or {}))
    graph = onnx.helper.make_graph(
        [node], op_type, [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x_shape))],
        [onnx.helper.make_empty_tensor_value_info("y")],
        [onnx.numpy_helper.from_array(v, k) for k, v in weights.items()])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])


def rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


def range_shape(x_shape, low, high):
    return tuple(ct.RangeDim(low, high, default=low) if isinstance(d, str) else d for d in x_shape)


def check_lengths(model, x_shape, lengths, precision="fp32", low=None, high=None):
    """Build once with the symbolic dims of ``x_shape`` as RangeDim(min(lengths), max(lengths)),
    then run at each length; returns the worst error / max|ref|."""
    low, high = low or min(lengths), high or max(lengths)
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=range_shape(x_shape, low, high))],
                                    compute_precision=precision)
    worst = 0.0
    for n in lengths:
        x = rand(*(n if isinstance(d, str) else d for d in x_shape), seed=n)
        worst = max(worst, assert_matches_ort(model, mlmodel, {"x": x}, precision))
    return worst


CONV_TRANSPOSE_CASES = {
    "1d_pads": ((1, 4, "T"), dict(strides=[3], pads=[2, 1]), (4, 2, 5)),
    "1d_output_padding": ((1, 4, "T"), dict(strides=[3], pads=[1, 1], output_padding=[2]), (4, 2, 5)),
    "1d_same_upper": ((1, 4, "T"), dict(strides=[2], auto_pad="SAME_UPPER"), (4, 2, 5)),
    "1d_same_lower": ((1, 4, "T"), dict(strides=[2], auto_pad="SAME_LOWER"), (4, 2, 5)),
    "1d_valid_dilated_groups": ((1, 4, "T"), dict(strides=[2], dilations=[2], group=2, auto_pad="VALID"), (4, 3, 3)),
    "2d_pads": ((1, 4, "H", "W"), dict(strides=[2, 3], pads=[1, 0, 0, 2]), (4, 2, 3, 4)),
}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case", list(CONV_TRANSPOSE_CASES))
def test_conv_transpose_with_symbolic_spatial_dims(case, precision):
    x_shape, attrs, w_shape = CONV_TRANSPOSE_CASES[case]
    weights = {"w": rand(*w_shape, seed=1), "b": rand(w_shape[1] * attrs.get("group", 1), seed=2)}
    check_lengths(one_node("ConvTranspose", x_shape, attrs, weights), x_shape, (3, 4, 17), precision)


def test_conv_transpose_output_shape_with_symbolic_input_is_refused():
    model = one_node("ConvTranspose", (1, 4, "T"), dict(strides=[2], output_shape=[20]), {"w": rand(4, 2, 3)})
    with pytest.raises(UnsupportedOperatorError, match="output_shape with symbolic spatial input dims"):
        onnx2mil.build_coreml(model)


PAD_CASES = {
    "reflect": ((1, 3, "T"), "reflect", [0, 0, 3, 0, 0, 2], 4),
    "edge": ((1, 3, "T"), "edge", [0, 0, 4, 0, 0, 1], 4),
    "wrap": ((1, 3, "T"), "wrap", [0, 0, 2, 0, 0, 4], 4),
    "edge_leading_axis": (("T", 3, 5), "edge", [3, 0, 1, 2, 1, 1], 3),
    "reflect_two_axes": ((1, "H", "W"), "reflect", [0, 2, 1, 0, 1, 3], 4),
}


@pytest.mark.parametrize("case", list(PAD_CASES))
def test_pad_on_symbolic_axes_within_the_lower_bound(case):
    x_shape, mode, pads, low = PAD_CASES[case]
    model = one_node("Pad", x_shape, dict(mode=mode), {"pads": np.array(pads, np.int64)})
    check_lengths(model, x_shape, (low, low + 3, 30))


@pytest.mark.parametrize("mode,pad,low", [("reflect", 4, 4), ("edge", 5, 4), ("wrap", 5, 4)])
def test_pad_beyond_the_lower_bound_is_refused(mode, pad, low):
    model = one_node("Pad", (1, 3, "T"), dict(mode=mode), {"pads": np.array([0, 0, pad, 0, 0, 0], np.int64)})
    with pytest.raises(UnsupportedOperatorError, match=f"as short as {low}"):
        onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, 3, ct.RangeDim(low, 64)))])


def encodec_like(layers: int = 3, length: int = 37, channels: int = 4, kernel: int = 7, stride: int = 2,
                 time: object = None) -> onnx.ModelProto:
    """EnCodec's SConv1d as the legacy exporter writes it: each conv's reflect pads are computed
    from its input's own shape (Shape -> Gather -> Cast -> Sub/Div -> Ceil -> ... -> Concat -> Pad).
    Layer k's pads are static only once layer k-1's Pad output shape is known: one fold -> re-infer
    round per layer."""
    g = TorchLikeGraph("encodec_like", 0)
    x = g.input("x", (1, channels, time or length))
    padding_total = kernel - stride
    for i in range(layers):
        s = f"/layers.{i}"
        n = g.op(s, "Gather", [g.op(s, "Shape", [x]), g.const(s, 2, np.int64)], axis=0)
        n = g.op(s, "Cast", [n], to=onnx.TensorProto.FLOAT)
        frames = g.op(s, "Add", [g.op(s, "Div", [g.op(s, "Sub", [n, g.const(s, float(kernel - padding_total))]),
                                                  g.const(s, float(stride))]), g.const(s, 1.0)])
        ideal = g.op(s, "Add", [g.op(s, "Mul", [g.op(s, "Sub", [g.op(s, "Ceil", [frames]), g.const(s, 1.0)]),
                                                 g.const(s, float(stride))]),
                                g.const(s, float(kernel - padding_total))])
        extra = g.op(s, "Cast", [g.op(s, "Sub", [ideal, n])], to=onnx.TensorProto.INT64)
        right = g.op(s, "Add", [g.const(s, [padding_total - padding_total // 2], np.int64),
                                g.op(s, "Unsqueeze", [extra, g.const(s, [0], np.int64)])])
        pads = g.op(s, "Concat", [g.const(s, [0, 0, padding_total // 2, 0, 0], np.int64), right], axis=0)
        x = g.op(s, "Pad", [x, pads], mode="reflect")
        bound = math.sqrt(3.0 / (channels * kernel))
        w = g.param(f"layers.{i}.weight", g.uniform((channels, channels, kernel), bound))
        x = g.op(s, "Conv", [x, w], kernel_shape=[kernel], strides=[stride], pads=[0, 0])
    g.op("/out", "Identity", [x], outputs=["y"])
    g.output("y", (1, channels, "frames"))
    return g.model(doc="EnCodec-style convs with shape-computed reflect pads")


def test_shape_chains_fold_to_a_fixpoint():
    model = encodec_like(layers=3)
    graph = load_graph(model)
    assert graph.fold_rounds == 3  # one fold -> re-infer round per layer
    assert [n.op_type for n in graph.nodes] == ["Pad", "Conv"] * 3 + ["Identity"]
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32")
    assert_matches_ort(model, mlmodel, {"x": rand(1, 4, 37)}, "fp32")


def test_fold_round_bound_warns_and_leaves_the_rest_to_builders(monkeypatch):
    monkeypatch.setattr(loader, "MAX_FOLD_ROUNDS", 1)
    with pytest.warns(UserWarning, match="constant folding stopped after 1 fold -> re-infer rounds"):
        graph = load_graph(encodec_like(layers=3))
    assert sum(n.op_type == "Shape" for n in graph.nodes) == 2


def conv_model(time="T") -> onnx.ModelProto:
    return one_node("Conv", (1, 2, time), dict(pads=[1, 1]), {"w": rand(3, 2, 3)})


def test_flexible_channels_on_a_static_export_are_refused_naming_input_dim_and_node():
    """inputs= may make a static export's time axis flexible, not an axis its weights fix."""
    static = conv_model(time=16)
    with pytest.raises(InputError, match=r"input 'x': dim 1 is flexible in inputs=, but the ONNX model has it "
                                         r"static \(2\) and node '/Conv' \(Conv\) needs it static") as e:
        onnx2mil.build_coreml(static, inputs=[ct.TensorType(name="x", shape=(1, ct.RangeDim(1, 8), 16))])
    assert e.value.name == "x"
    oh = onnx.helper
    relu_matmul = oh.make_model(oh.make_graph(
        [oh.make_node("Relu", ["x"], ["r"], name="relu"), oh.make_node("MatMul", ["r", "w"], ["y"], name="proj")],
        "proj", [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 5, 8])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5, 4])],
        [onnx.numpy_helper.from_array(rand(8, 4), "w")]), opset_imports=[oh.make_opsetid("", 17)])
    with pytest.raises(InputError, match=r"dim 2 .* node 'proj' \(MatMul\) needs it static"):
        onnx2mil.build_coreml(relu_matmul, inputs=[ct.TensorType(name="x", shape=(1, 5, ct.RangeDim(1, 8)))])
    # the time / sequence axis stays flexible
    symbolic = onnx.ModelProto()
    symbolic.CopyFrom(relu_matmul)
    symbolic.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "T"
    symbolic.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "T"
    for model, reference, shape, x in ((static, conv_model(), (1, 2, ct.RangeDim(8, 64)), rand(1, 2, 23)),
                                       (relu_matmul, symbolic, (1, ct.RangeDim(1, 16), 8), rand(1, 11, 8))):
        mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=shape)], compute_precision="fp32")
        assert_matches_ort(reference, mlmodel, {"x": x}, "fp32")


@pytest.mark.parametrize("length", [7, 65])
def test_predict_refuses_lengths_outside_the_range_dim(length, tmp_path):
    mlmodel = onnx2mil.build_coreml(conv_model(), inputs=[ct.TensorType(name="x", shape=(1, 2, ct.RangeDim(8, 64)))])
    saved = onnx2mil.save(mlmodel, tmp_path / "conv.mlpackage")
    for model in (mlmodel, saved):
        with pytest.raises(InputShapeError, match=r"input 'x' has shape \(1, 2, %d\); the model takes rank 3 \(1, 2, 8\.\.64\)"
                           % length) as e:
            onnx2mil.predict(model, {"x": rand(1, 2, length)})
        assert (e.value.input_name, e.value.shape) == ("x", (1, 2, length))
    for length in (8, 64):  # both bounds are inside
        assert onnx2mil.predict(saved, {"x": rand(1, 2, length)})["y"].shape == (1, 3, length)


def test_predict_refuses_lengths_outside_the_default_bounds():
    mlmodel = onnx2mil.build_coreml(conv_model())  # symbolic, no inputs=: 1..16384
    with pytest.raises(InputShapeError, match=r"1\.\.16384"):
        onnx2mil.predict(mlmodel, {"x": rand(1, 2, 16385)})
    for length in (1, 16384):
        assert onnx2mil.predict(mlmodel, {"x": rand(1, 2, length)})["y"].shape == (1, 3, length)


def test_predict_refuses_wrong_ranks_and_static_mismatches():
    mlmodel = onnx2mil.build_coreml(conv_model(), inputs=[ct.TensorType(name="x", shape=(1, 2, ct.RangeDim(8, 64)))])
    with pytest.raises(InputShapeError, match="rank 3"):
        onnx2mil.predict(mlmodel, {"x": rand(2, 16)})
    with pytest.raises(InputShapeError, match=r"\(1, 3, 16\)"):
        onnx2mil.predict(mlmodel, {"x": rand(1, 3, 16)})
    static = onnx2mil.build_coreml(conv_model(time=16))
    with pytest.raises(InputShapeError, match=r"the model takes rank 3 \(1, 2, 16\)"):
        onnx2mil.predict(static, {"x": rand(1, 2, 17)})


def test_predict_refuses_shapes_not_enumerated():
    shapes = ct.EnumeratedShapes(shapes=[(1, 2, 8), (1, 2, 20)], default=(1, 2, 8))
    mlmodel = onnx2mil.build_coreml(conv_model(), inputs=[ct.TensorType(name="x", shape=shapes)],
                                    compute_precision="fp32")
    with pytest.raises(InputShapeError, match=r"one of \(1, 2, 8\), \(1, 2, 20\)"):
        onnx2mil.predict(mlmodel, {"x": rand(1, 2, 12)})
    for length in (8, 20):
        assert_matches_ort(conv_model(), mlmodel, {"x": rand(1, 2, length)}, "fp32")


def test_validate_refuses_inputs_outside_the_bounds():
    model = conv_model()
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, 2, ct.RangeDim(8, 64)))])
    with pytest.raises(InputShapeError, match="input 'x'"):
        onnx2mil.validate(model, mlmodel, inputs={"x": rand(1, 2, 100)})
    assert onnx2mil.validate(model, mlmodel, inputs={"x": rand(1, 2, 64)}).ok


# ---- shape chains: static exports given a RangeDim are re-inferred, symbolic ones run as is ------
def _int64(name, value):
    return onnx.numpy_helper.from_array(np.array(value, np.int64), name)


def _chain(nodes, inits, time=16) -> onnx.ModelProto:
    """``x`` (1, 8, time) through ``nodes`` to ``y``; ``time`` a dim_param for a symbolic export."""
    graph = onnx.helper.make_graph(
        nodes, "shape_chain", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, time])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])


N = onnx.helper.make_node
_TIME = [N("Shape", ["x"], ["shape"]), N("Gather", ["shape", "two"], ["t"], axis=0)]  # t = x.shape[2]
SHAPE_CHAINS = {
    # x.reshape(1, 16, T // 2)
    "reshape": (_TIME + [N("Div", ["t", "two"], ["half"]), N("Unsqueeze", ["half", "axis0"], ["half1"]),
                         N("Concat", ["head", "half1"], ["target"], axis=0), N("Reshape", ["x", "target"], ["y"])],
                [_int64("two", 2), _int64("axis0", [0]), _int64("head", [1, 16])]),
    # x[:, :, 1:T - 2]
    "slice": (_TIME + [N("Sub", ["t", "two"], ["end"]), N("Unsqueeze", ["end", "axis0"], ["end1"]),
                       N("Slice", ["x", "one", "end1", "axis2"], ["y"])],
              [_int64("two", 2), _int64("axis0", [0]), _int64("one", [1]), _int64("axis2", [2])]),
    # x - x.mean(2).expand(x.shape)
    "expand": ([N("Shape", ["x"], ["shape"]), N("ReduceMean", ["x"], ["mean"], axes=[2], keepdims=1),
                N("Expand", ["mean", "shape"], ["wide"]), N("Sub", ["x", "wide"], ["y"])], []),
    # x + arange(T)
    "range": (_TIME + [N("Range", ["zero", "t", "step"], ["r"]), N("Cast", ["r"], ["rf"], to=onnx.TensorProto.FLOAT),
                       N("Add", ["x", "rf"], ["y"])],
              [_int64("two", 2), _int64("zero", 0), _int64("step", 1)]),
    # x * full(x.shape, 2)
    "constant_of_shape": ([N("Shape", ["x"], ["shape"]),
                           N("ConstantOfShape", ["shape"], ["full"], value=onnx.numpy_helper.from_array(np.array([2.0], np.float32))),
                           N("Mul", ["x", "full"], ["y"])], []),
    # x.squeeze(): the batch dim only, T >= 8
    "squeeze": ([N("Squeeze", ["x"], ["y"])], []),
}


@pytest.mark.parametrize("export", ["static", "symbolic"])
@pytest.mark.parametrize("chain", list(SHAPE_CHAINS))
def test_shape_chains_follow_the_runtime_length(chain, export):
    """A static export would have every chain folded for length 16; given a RangeDim it is
    re-inferred with a symbolic length, so each length gets its own shapes."""
    nodes, inits = SHAPE_CHAINS[chain]
    symbolic = _chain(nodes, inits, time="T")
    model = _chain(nodes, inits) if export == "static" else symbolic
    mlmodel = onnx2mil.build_coreml(
        model, inputs=[ct.TensorType(name="x", shape=(1, 8, ct.RangeDim(8, 64, default=16)))], compute_precision="fp32")
    for length in (8, 10, 16, 64):
        assert_matches_ort(symbolic, mlmodel, {"x": rand(1, 8, length, seed=length)}, "fp32")


def test_squeeze_without_axes_on_a_dim_that_may_be_one_is_refused():
    model = _chain(*SHAPE_CHAINS["squeeze"], time="T")
    with pytest.raises(UnsupportedOperatorError, match=r"dim 2 \(T\) runs 1\.\.64 over the inputs' bounds"):
        onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, 8, ct.RangeDim(1, 64)))])


# ---- recurrences over a runtime sequence length (while_loop) -------------------------------------
RNN_CASES = {c.id: c for c in rnn_cases.CASES}


def symbolic_sequence(case):
    """The case's model with the sequence axis of X symbolic, and X's RangeDim shape."""
    model = case.model()
    axis = 1 if case.attrs.get("layout", 0) else 0
    for vi in model.graph.input:
        if vi.name == "X":
            vi.type.tensor_type.shape.dim[axis].dim_param = "T"
    del model.graph.value_info[:]
    for vi in model.graph.output:
        vi.type.tensor_type.ClearField("shape")
    shape = list(case.inputs["X"].shape)
    shape[axis] = ct.RangeDim(1, 40, default=4)
    return model, axis, tuple(shape)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case_id", list(RNN_CASES))
def test_recurrence_over_a_symbolic_sequence(case_id, precision):
    case = RNN_CASES[case_id]
    model, axis, shape = symbolic_sequence(case)
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="X", shape=shape)], compute_precision=precision)
    lens = case.inputs.get("L", case.weights.get("L"))
    for length in (1, 4, 7, 40):
        if lens is not None and lens.max() > length:
            continue  # ONNX: sequence_lens at most the sequence length
        feeds = dict(case.inputs)
        x_shape = list(case.inputs["X"].shape)
        x_shape[axis] = length
        feeds["X"] = rand(*x_shape, seed=length) * 2
        assert_matches_ort(model, mlmodel, feeds, precision)


def test_static_sequence_loops():
    """A static sequence runs in a while_loop too: no block of ops per step."""
    case = RNN_CASES["lstm_sequence_lens_graph_bidirectional"]
    model = case.model()
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32")
    assert any(op.op_type == "while_loop" for op in onnx2mil.load_saved_program(mlmodel).functions["main"].operations)
    assert_matches_ort(model, mlmodel, case.inputs, "fp32")


# ---- a transformer encoder exported with a dynamic sequence and an attention mask ------------------
def transformer_encoder(hidden: int = 32, heads: int = 4, ffn: int = 64, layers: int = 2, seed: int = 0):
    """BERT-style post-norm layers as torch exports them with ``dynamic_axes={"x": {1: "S"}}``: head
    reshapes from Shape -> Gather -> Unsqueeze -> Concat chains, the mask (1, S) of 1 (keep) / 0
    (pad) made additive as (1 - mask) * -10000 and broadcast over heads and queries."""
    g = TorchLikeGraph("encoder", seed)
    x = g.input("x", (1, "S", hidden))
    mask = g.input("mask", (1, "S"))
    head_dim = hidden // heads
    m = g.op("/mask", "Unsqueeze", [mask, g.const("/mask", [1, 2], np.int64)])
    m = g.op("/mask", "Mul", [g.op("/mask", "Sub", [g.const("/mask", 1.0), m]), g.const("/mask", -10000.0)])

    def linear(scope, v, n_in, n_out):
        bound = 1.0 / math.sqrt(n_in)
        w = g.param(f"{scope[1:].replace('/', '.')}.weight", g.uniform((n_in, n_out), bound))
        b = g.param(f"{scope[1:].replace('/', '.')}.bias", g.uniform((n_out,), bound))
        return g.op(scope, "Add", [g.op(scope, "MatMul", [v, w]), b])

    def seq_len(scope, v):
        n = g.op(scope, "Gather", [g.op(scope, "Shape", [v]), g.const(scope, 1, np.int64)], axis=0)
        return g.op(scope, "Unsqueeze", [n, g.const(scope, [0], np.int64)])

    def layer_norm(scope, v):
        return g.op(scope, "LayerNormalization", [v, g.param(f"{scope[1:]}.weight", 1 + g.uniform((hidden,), 0.1)),
                                                  g.param(f"{scope[1:]}.bias", g.uniform((hidden,), 0.1))],
                    axis=-1, epsilon=1e-5)

    for i in range(layers):
        s = f"/layers.{i}/attention"
        split = g.op(s, "Concat", [g.const(s, [1], np.int64), seq_len(s, x), g.const(s, [heads, head_dim], np.int64)],
                     axis=0)
        q, k, v = (g.op(s, "Transpose", [g.op(s, "Reshape", [linear(f"{s}/{n}", x, hidden, hidden), split])],
                        perm=[0, 2, 1, 3]) for n in ("query", "key", "value"))
        scores = g.op(s, "Div", [g.op(s, "MatMul", [q, g.op(s, "Transpose", [k], perm=[0, 1, 3, 2])]),
                                 g.const(s, math.sqrt(head_dim))])
        probs = g.op(s, "Softmax", [g.op(s, "Add", [scores, m])], axis=-1)
        context = g.op(s, "Transpose", [g.op(s, "MatMul", [probs, v])], perm=[0, 2, 1, 3])
        merge = g.op(s, "Concat", [g.const(s, [1], np.int64), seq_len(s, context), g.const(s, [hidden], np.int64)],
                     axis=0)
        attended = linear(f"{s}/output", g.op(s, "Reshape", [context, merge]), hidden, hidden)
        x = layer_norm(f"/layers.{i}/norm1", g.op(s, "Add", [x, attended]))
        f = f"/layers.{i}/ffn"
        hidden_ffn = g.op(f, "Relu", [linear(f"{f}/up", x, hidden, ffn)])
        x = layer_norm(f"/layers.{i}/norm2", g.op(f, "Add", [x, linear(f"{f}/down", hidden_ffn, ffn, hidden)]))
    g.op("/out", "Identity", [x], outputs=["y"])
    g.output("y", (1, "S", hidden))
    return g.model(doc="transformer encoder with a dynamic sequence and an attention mask")


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_transformer_encoder_with_attention_mask_at_every_length(precision):
    model = transformer_encoder()
    seq = ct.RangeDim(1, 96, default=16)
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, seq, 32)),
                                                   ct.TensorType(name="mask", shape=(1, seq))],
                                    compute_precision=precision)
    for length in (1, 5, 16, 96):
        mask = np.ones((1, length), np.float32)
        mask[0, (2 * length) // 3 + 1:] = 0.0  # padded tail
        assert_matches_ort(model, mlmodel, {"x": rand(1, length, 32, seed=length), "mask": mask}, precision)


def test_static_export_with_baked_reshape_targets_is_refused():
    """The reference transformer bakes its head reshapes as constants: it runs at one length only."""
    with pytest.raises(UnsupportedOperatorError) as e:
        onnx2mil.build_coreml(models.build("transformer-tiny"),
                              inputs=[ct.TensorType(name="hidden_states", shape=(1, ct.RangeDim(1, 128), 64))])
    assert {r.node for r in e.value.refusals} == {f"/layers/layers.0/attention/Reshape{k}" for k in ("", "_1", "_2")}
    assert all("the export baked one length" in r.reason for r in e.value.refusals)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_encodec_like_convs_with_a_symbolic_length(precision):
    """The pads are computed at run time from the symbolic length: reflect pads by gathering."""
    model = encodec_like(layers=3, time="T")
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, 4, ct.RangeDim(16, 64)))],
                                    compute_precision=precision)
    for length in (16, 17, 33, 64):
        assert_matches_ort(model, mlmodel, {"x": rand(1, 4, length, seed=length)}, precision)


@pytest.mark.parametrize("mode", ["edge", "reflect"])
def test_pad_with_runtime_pads(mode):
    """Pads fed as a graph input: every axis may be padded, each gathered at computed indices."""
    node = onnx.helper.make_node("Pad", ["x", "pads"], ["y"], mode=mode, name="/Pad")
    graph = onnx.helper.make_graph(
        [node], "pad", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, "T"]),
                        onnx.helper.make_tensor_value_info("pads", onnx.TensorProto.INT64, [6])],
        [onnx.helper.make_empty_tensor_value_info("y")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(2, 3, ct.RangeDim(5, 40))),
                                                   ct.TensorType(name="pads", shape=(6,))], compute_precision="fp32")
    for length, pads in ((5, [0, 1, 4, 1, 0, 2]), (9, [1, 0, 0, 0, 2, 7]), (40, [0, 0, 3, 0, 0, 0])):
        assert_matches_ort(model, mlmodel, {"x": rand(2, 3, length, seed=length), "pads": np.array(pads, np.int64)},
                           "fp32")


def test_vocoder_with_enumerated_lengths():
    """EnumeratedShapes bound the symbolic axis by the smallest and largest length listed."""
    model = symbolic_time(bigvgan.activation1d_model(channels=4, length=16))
    shapes = ct.EnumeratedShapes(shapes=[(1, 4, 6), (1, 4, 24), (1, 4, 50)], default=(1, 4, 24))
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=shapes)], compute_precision="fp32")
    for length in (6, 24, 50):
        assert_matches_ort(model, mlmodel, {"x": mel(length, mel_dim=4)}, "fp32")
    with pytest.raises(InputShapeError):
        onnx2mil.predict(mlmodel, {"x": mel(7, mel_dim=4)})
    too_short = ct.EnumeratedShapes(shapes=[(1, 4, 2), (1, 4, 24)], default=(1, 4, 24))
    with pytest.raises(UnsupportedOperatorError, match="can be as short as 2"):
        onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=too_short)])


def legacy_interpolate(mode: str, coord: str, factor: float = 2.0, nearest: str = "floor") -> onnx.ModelProto:
    """``F.interpolate(x, scale_factor=factor)`` as the legacy exporter writes it on (1, 3, H, W)
    with dynamic H, W: sizes = concat(shape[:2], int64(floor(float(shape[2:]) * factor)))."""
    g = TorchLikeGraph("interpolate", 0)
    x = g.input("x", (1, 3, "H", "W"))
    shape = g.op("", "Shape", [x])
    head = g.op("", "Slice", [shape, g.const("", [0], np.int64), g.const("", [2], np.int64)])
    spatial = g.op("", "Cast", [g.op("", "Slice", [shape, g.const("", [2], np.int64), g.const("", [4], np.int64)])],
                   to=onnx.TensorProto.FLOAT)
    scaled = g.op("", "Floor", [g.op("", "Mul", [spatial, g.const("", [factor, factor])])])
    sizes = g.op("", "Concat", [head, g.op("", "Cast", [scaled], to=onnx.TensorProto.INT64)], axis=0)
    attrs = dict(mode=mode, coordinate_transformation_mode=coord)
    if mode == "nearest":
        attrs["nearest_mode"] = nearest
    g.op("", "Resize", [x, "", "", sizes], outputs=["y"], **attrs)
    g.output("y", (1, 3, "H2", "W2"))
    return g.model(doc="legacy interpolate export")


@pytest.mark.parametrize("mode,coord", [("nearest", "asymmetric"), ("linear", "pytorch_half_pixel"),
                                        ("linear", "align_corners")])
def test_resize_with_sizes_from_a_symbolic_shape(mode, coord):
    model = legacy_interpolate(mode, coord)
    dim = ct.RangeDim(2, 24, default=8)
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, 3, dim, ct.RangeDim(2, 24)))],
                                    compute_precision="fp32")
    for h, w in ((2, 2), (3, 7), (24, 24)):
        assert_matches_ort(model, mlmodel, {"x": rand(1, 3, h, w, seed=h * w)}, "fp32")


def test_resize_with_a_non_integer_runtime_ratio_is_refused():
    model = legacy_interpolate("nearest", "asymmetric", factor=1.5)
    with pytest.raises(UnsupportedOperatorError, match=r"sizes must be a constant .*an integer multiple.*"
                                                        r"computed at run time from the shape at node '/Shape'"):
        onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(1, 3, ct.RangeDim(2, 24), 8))])


def test_squeeze_of_a_symbolic_axis_needs_it_to_be_one():
    """MIL squeeze keeps a symbolic dim: a dim bounded to 1 is removed by a reshape instead; one
    that may exceed 1 is refused."""
    model = one_node("Squeeze", ("B", 3, "T"), weights={"axes": np.array([0], np.int64)})
    with pytest.raises(UnsupportedOperatorError, match=r"axis 0 \(B\) runs 1\.\.4 over the inputs' bounds"):
        onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(ct.RangeDim(1, 4), 3, ct.RangeDim(2, 9)))])
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="x", shape=(ct.RangeDim(1, 1), 3, ct.RangeDim(2, 9)))],
                                    compute_precision="fp32")
    for length in (2, 9):
        assert_matches_ort(model, mlmodel, {"x": rand(1, 3, length, seed=length)}, "fp32")


# ---- real torch exports (static, tests/real_exports) given a RangeDim ------------------------------
REAL_VOCODERS = {  # model: (input, time axis, lower, upper)
    "speecht5_hifigan_legacy": ("spectrogram", 1, 4, 64),
    "qwen25omni_bigvgan_dynamo": ("mel_spectrogram", 2, 4, 48),
}


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("name", list(REAL_VOCODERS))
def test_real_vocoder_export_given_a_range_dim(name, precision):
    """transformers' SpeechT5 HiFi-GAN and Qwen2.5-Omni token2wav BigVGAN, exported static: given a
    RangeDim on the time axis they are re-inferred symbolically and match onnxruntime (running the
    same export with that axis symbolic) at both bounds and between."""
    inp, axis, low, high = REAL_VOCODERS[name]
    model = onnx.load(str(real_exports.path(real_exports.entry(name))))
    static = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    shape = list(static)
    shape[axis] = ct.RangeDim(low, high, default=static[axis])
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name=inp, shape=tuple(shape))],
                                    compute_precision=precision)
    reference = symbolic_time(model, axis)
    for length in (low, low + 5, high):
        x_shape = list(static)
        x_shape[axis] = length
        feeds = {inp: np.random.default_rng(length).uniform(-10.0, 1.0, size=x_shape).astype(np.float32)}
        assert_matches_ort(reference, mlmodel, feeds, precision)


@pytest.mark.parametrize("name,axis,node", [("dac_decoder_legacy", 2, "/block.0/snake1/Reshape_1"),
                                            ("wav2vec2_legacy", 1, "/model/encoder/layers.0/attention/Reshape")])
def test_real_export_with_baked_lengths_is_refused(name, axis, node):
    """Exports whose reshape targets carry the traced length run at that length only."""
    model = onnx.load(str(real_exports.path(real_exports.entry(name))))
    vi = model.graph.input[0]
    shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    shape[axis] = ct.RangeDim(shape[axis] // 2, shape[axis] * 2)
    with pytest.raises(UnsupportedOperatorError) as e:
        onnx2mil.build_coreml(model, inputs=[ct.TensorType(name=vi.name, shape=tuple(shape))])
    assert node in {r.node for r in e.value.refusals}
    assert all("the export baked one length" in r.reason for r in e.value.refusals)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("case_id", ["rnn_defaults", "gru_bidirectional", "lstm_defaults", "lstm_reverse"])
def test_recurrence_over_a_symbolic_batch_and_sequence(case_id, precision):
    """Batch and sequence both symbolic: zero initial states are filled to the runtime batch."""
    case = RNN_CASES[case_id]
    model = case.model()
    for vi in model.graph.input:
        if vi.name == "X":
            vi.type.tensor_type.shape.dim[0].dim_param = "T"
            vi.type.tensor_type.shape.dim[1].dim_param = "B"
    del model.graph.value_info[:]
    for vi in model.graph.output:
        vi.type.tensor_type.ClearField("shape")
    size = case.inputs["X"].shape[2]
    dims = (ct.RangeDim(1, 40, default=4), ct.RangeDim(1, 8, default=2), size)
    mlmodel = onnx2mil.build_coreml(model, inputs=[ct.TensorType(name="X", shape=dims)], compute_precision=precision)
    for length, batch in ((4, 2), (7, 1), (40, 8)):
        assert_matches_ort(model, mlmodel, {"X": rand(length, batch, size, seed=length) * 2}, precision)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_qwen_size_bigvgan_with_symbolic_time_runs_at_every_length(precision):
    """The 115M-parameter BigVGAN of models/ exported with a dynamic time axis, built once."""
    model = symbolic_time(models.build("bigvgan-qwen2.5-omni"))
    mlmodel = onnx2mil.build_coreml(
        model, inputs=[ct.TensorType(name="mel", shape=(1, 80, ct.RangeDim(16, 128, default=32)))],
        compute_precision=precision)
    # fp16: 0.57 / 0.61 / 0.70 / 0.73% of max|ref| at these lengths; 1.10 / 1.22 / 1.33 / 1.26% with the
    # anti-aliasing filters rounded to nearest (precision.fp16_depthwise_weights, README "fp16 drift").
    for length in (16, 17, 50, 128):
        feeds = {"mel": mel(length, mel_dim=80)}
        assert_matches_ort(model, mlmodel, feeds, precision)
        report = onnx2mil.validate(model, mlmodel, inputs=feeds)
        assert report.ok, (length, report.summary())
