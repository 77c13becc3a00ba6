"""The hazard that started the project: a torch-style ``ups`` stack of ConvTranspose1d with bias.
Checked on the *saved* .mlpackage, loaded back with coremltools' milproto loader."""
import numpy as np
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import onnx2mil
from onnx2mil.backend.convert import pipeline

RATES, KERNELS = (5, 3, 2, 2), (11, 7, 4, 4)


def ups_stack():
    rng = np.random.default_rng(0)
    channels, nodes, inits = 32, [], []
    x = "mel"
    for i, (u, k) in enumerate(zip(RATES, KERNELS)):
        cin, cout = channels >> i, channels >> (i + 1)
        w, b = f"ups.{i}.weight", f"ups.{i}.bias"
        inits += [numpy_helper.from_array(rng.standard_normal((cin, cout, k)).astype(np.float32) * 0.1, w),
                  numpy_helper.from_array(rng.uniform(0.5, 1.5, cout).astype(np.float32), b)]
        y = f"/ups.{i}/ConvTranspose_output_0" if i < len(RATES) - 1 else "audio"
        nodes.append(oh.make_node("ConvTranspose", [x, w, b], [y], name=f"/ups.{i}/ConvTranspose",
                                  strides=[u], pads=[(k - u) // 2] * 2, kernel_shape=[k]))
        x = y
    graph = oh.make_graph(nodes, "ups", [oh.make_tensor_value_info("mel", 1, [1, channels, 9])],
                          [oh.make_tensor_value_info("audio", 1, [1, channels >> len(RATES), "time"])], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


def saved_conv_transposes(mlmodel, tmp_path):
    prog = onnx2mil.load_saved_program(onnx2mil.save(mlmodel, tmp_path / "ups.mlpackage"))
    return [op for op in prog.functions["main"].operations if op.op_type == "conv_transpose"]


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.parametrize("variant,rank,fused_bias", [("as_2d", 4, True), ("native", 3, True),
                                                      ("split_bias", 3, False)])
def test_saved_ups_stack_keeps_lowering(variant, rank, fused_bias, precision, tmp_path):
    mlmodel = onnx2mil.build_coreml(ups_stack(), compute_precision=precision,
                                    config={"lowering": {"conv_transpose_1d": variant}})
    ops = saved_conv_transposes(mlmodel, tmp_path)
    assert len(ops) == len(RATES)
    for op in ops:
        assert op.x.rank == rank
        assert op.output_shape is None  # coremltools#2281: never pinned by add_conv_transpose_output_shape
        assert (op.bias is not None) == fused_bias
    lengths = [op.outputs[0].shape[-1] for op in ops]
    assert lengths == sorted(lengths) and len(set(lengths)) == len(lengths)
    if variant == "split_bias":  # the bias lives in an add right after each conv_transpose
        for op in ops:
            consumers = op.outputs[0].child_ops
            assert [c.op_type for c in consumers] in (["add"], ["pad"])
    recorded = pipeline.read_pipeline(mlmodel)
    assert "common::add_conv_transpose_output_shape" in recorded["removed"]
    assert "common::add_conv_transpose_output_shape" not in recorded["passes"]
    assert ("common::fuse_conv_bias" in recorded["removed"]) == (variant == "split_bias")


def test_per_node_lowering_overrides_default(tmp_path):
    cfg = {"node_lowering": {"/ups.1/ConvTranspose": {"conv_transpose_1d": "native"}}}
    ops = saved_conv_transposes(onnx2mil.build_coreml(ups_stack(), config=cfg), tmp_path)
    assert [op.x.rank for op in ops] == [4, 3, 4, 4]


def test_coremltools_default_pipeline_would_pin_output_shape(tmp_path):
    """The reason we own the pipeline: with coremltools' default passes the hazard comes back."""
    import coremltools as ct
    from onnx2mil.backend.convert.build import BuildContext, emit_program
    from onnx2mil.backend.convert.config import Config
    from onnx2mil.backend.convert.loader import load_graph

    ctx = BuildContext(load_graph(ups_stack()), Config(), ct.target.iOS15)
    prog = emit_program(ctx)
    mlmodel = pipeline.convert(prog, target=ct.target.iOS15, compute_precision=ct.precision.FLOAT32,
                               compute_units=ct.ComputeUnit.ALL, pipeline=ct.PassPipeline.DEFAULT)
    ops = saved_conv_transposes(mlmodel, tmp_path)
    assert all(op.output_shape is not None for op in ops)
