"""onnx2mil's replacements inside coremltools' pass pipeline (onnx2mil/backend/convert/passes.py)
change no program: built through them and through coremltools' own passes, every model here gives
the same ops under the same names, the same constants and bit-identical outputs, at fp16 (where
onnx2mil's fp16 pass works in place instead of re-creating ops) and fp32.
benchmarks/pass_costs.py and benchmarks/build_speed.py measure what they save."""
import collections
import contextlib

import numpy as np
import onnx
import pytest
from coremltools.converters.mil.mil.passes.defs.quantization import FP16ComputePrecision

import onnx2mil
from onnx2mil import models as reference_models
from onnx2mil.backend.convert import passes, pipeline
from real_exports import corpus

# Every reference model (the 115M BigVGAN: its own test, `-m slow`) and real exports:
# reduce_transposes changes bert_legacy and transformer-tiny; qwen2_legacy has while-free
# rotary slicing and merged reshapes; the tiny BigVGAN has no transpose at all.
MODELS = [n for n in reference_models.names() if n != "bigvgan-qwen2.5-omni"] + [
    "bert_legacy", "qwen2_legacy", "encodec_decoder_legacy"]


def load(name):
    if name in reference_models.names():
        return reference_models.build(name), reference_models.example_inputs(name)
    return onnx.load(str(corpus.path(name))), corpus.make_feeds(name)


def program_ops(mlmodel):
    """Every op in order with its outputs' names and types; constants by type and value (a weight
    transposed at build time is named after the path that folded it: ``t_cast_fp16`` here,
    ``t_cast_fp16_to_fp32_to_fp16`` through coremltools' pass)."""
    ops, consts, stack = [], [], [pipeline.final_program(mlmodel).functions["main"]]
    while stack:
        block = stack.pop()
        for op in block.operations:
            types_ = tuple(str(v.sym_type) for v in op.outputs)
            if op.op_type == "const":
                consts.append((types_, np.asarray(op.outputs[0].val).tobytes()))
            else:
                ops.append((op.op_type, tuple(v.name for v in op.outputs), types_))
            stack.extend(op.blocks)
    return ops, sorted(consts)


@pytest.fixture
def coremltools_passes(monkeypatch):
    """Builds inside run coremltools' own passes, as before onnx2mil replaced any."""
    monkeypatch.setattr(pipeline, "with_own_passes", list)
    monkeypatch.setattr(pipeline, "passes_streamlined", lambda prog: contextlib.nullcontext())
    monkeypatch.setattr(pipeline, "FP16_CAST", "common::add_fp16_cast")  # what ct.convert removes at fp32


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.parametrize("name", MODELS)
def test_same_program_as_coremltools_passes(name, precision, request):
    model, feeds = load(name)
    ours = onnx2mil.build_coreml(model, compute_precision=precision)
    recorded = pipeline.read_pipeline(ours)["passes"]
    assert "common::add_fp16_cast" not in recorded and "common::reduce_transposes" not in recorded
    assert ("onnx2mil::add_fp16_cast" in recorded) == (precision == "fp16")
    request.getfixturevalue("coremltools_passes")
    theirs = onnx2mil.build_coreml(model, compute_precision=precision)
    assert "common::reduce_transposes" in pipeline.read_pipeline(theirs)["passes"]
    assert program_ops(ours) == program_ops(theirs)
    got, expected = onnx2mil.predict(ours, feeds), onnx2mil.predict(theirs, feeds)
    for name_ in expected:
        np.testing.assert_array_equal(got[name_], expected[name_])


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_same_program_as_coremltools_passes_115m(precision, request):
    model = reference_models.build("bigvgan-qwen2.5-omni")
    ours = onnx2mil.build_coreml(model, compute_precision=precision)
    request.getfixturevalue("coremltools_passes")
    assert program_ops(ours) == program_ops(onnx2mil.build_coreml(model, compute_precision=precision))


@pytest.mark.parametrize("values", [
    [1.0, -2.0], [65504.0, -65504.0], [65505.0], [-70000.0, 1.0], [1e38, -3.4e38, 5.0], [1e38, 70000.0],
    [np.inf, -np.inf, 1.0], [np.nan, 1.0], [np.nan, 1e5], [], 3.0e5, -1.0,
])
def test_fp16_overflow_verdict_is_coremltools(values):
    """Same verdict as coremltools' own check, which masks |v| < 1e38 and compares the max to 65504."""
    value = np.array(values, dtype=np.float32)
    magnitude = np.abs(np.expand_dims(value, 0))
    theirs = bool(np.max(magnitude[np.where(magnitude < 1e38)], initial=0.0) > 65504)
    assert passes._const_overflows_fp16(value) == theirs


def test_fp16_pass_keeps_an_overflowing_op_in_fp32():
    """A constant beyond fp16 keeps its op in fp32 through onnx2mil's fp16 pass, as through
    coremltools' (FP16ComputePrecision.is_valid_op)."""
    from onnx import TensorProto, helper, numpy_helper

    big = numpy_helper.from_array(np.full((4,), 70000.0, np.float32), "big")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "big"], ["y"]), helper.make_node("Relu", ["y"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [4])], [big])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    mlmodel = onnx2mil.build_coreml(model)
    ops = {op.op_type: op for op in pipeline.final_program(mlmodel).functions["main"].operations}
    assert ops["mul"].outputs[0].dtype.__name__ == "fp32" and ops["relu"].outputs[0].dtype.__name__ == "fp16"
    x = np.array([1.0, -1.0, 0.5, 0.25], np.float32)
    # the mul is exact in fp32; relu then stores fp16 (70000 is beyond it: inf, as fp16 gives)
    expected = np.maximum(x * 70000.0, 0).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(onnx2mil.predict(mlmodel, {"x": x})["z"], expected)
    assert issubclass(passes.add_fp16_cast, FP16ComputePrecision)


def test_fp16_op_selector_reaches_onnx2mil_fp16_pass():
    """``compute_precision=ct.transform.FP16ComputePrecision(op_selector=...)``, as in ct.convert:
    the ops the selector refuses stay fp32, the others become fp16."""
    import coremltools as ct

    model, feeds = load("bigvgan-tiny")
    keep_fp32 = {"sin", "pow"}
    mlmodel = onnx2mil.build_coreml(model, compute_precision=ct.transform.FP16ComputePrecision(
        op_selector=lambda op: op.op_type not in keep_fp32))
    ops = [op for op in pipeline.final_program(mlmodel).functions["main"].operations if op.op_type != "const"]
    dtypes = {(op.op_type, op.outputs[0].dtype.__name__) for op in ops}
    assert {("sin", "fp32"), ("pow", "fp32"), ("conv", "fp16")} <= dtypes
    assert not {("sin", "fp16"), ("pow", "fp16")} & dtypes
    reference = onnx2mil.predict(onnx2mil.build_coreml(model, compute_precision="fp32"), feeds)
    got = onnx2mil.predict(mlmodel, feeds)
    for name, ref in reference.items():  # still an fp16 program: within the fp16 tolerance of fp32
        assert np.abs(got[name] - ref).max() <= 1e-2 * np.abs(ref).max()


@pytest.mark.parametrize("values", [[0.0, 1e-9, -1e-9, 1.0], [6e-8, -6e-8, 2.0], [1e-8, 0.5], [np.nan, 1e-9, 3.0],
                                    [1e-9] * 500, [0.25] * 3])
def test_small_constants_are_nudged_as_coremltools_does(values, request):
    """fp32 constants that fp16 would round to zero become the smallest fp16 subnormal of their
    sign in arrays under 400 elements, exactly as through coremltools' pass (the final programs'
    constants compared by value)."""
    from onnx import TensorProto, helper, numpy_helper

    c = numpy_helper.from_array(np.array(values, np.float32), "c")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "c"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(values)])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [len(values)])], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ours = program_ops(onnx2mil.build_coreml(model))
    request.getfixturevalue("coremltools_passes")
    theirs = program_ops(onnx2mil.build_coreml(model))
    assert ours == theirs


@pytest.mark.parametrize("values, warns", [
    ([1e38], True), ([-3.4e38, 0.0], True), ([np.nan, 1e38], True), ([np.inf, 1.0], False), ([1e37, -1e37], False),
    ([np.nan, 2.0], False), ([-np.inf, np.inf], False), ([65505.0], False),
])
def test_fp16_infinity_warning_names_finite_magnitudes_from_1e38(values, warns):
    """An fp16 build warns about a constant with a finite magnitude >= 1e38 (coremltools' fp16 pass
    stores it as ±inf), and only then; the check's fast path skips arrays whose max and min are
    finite and below 1e38."""
    import warnings

    from onnx2mil.backend.convert.loader import OnnxNode
    from onnx2mil.errors import PrecisionWarning
    from onnx import helper

    node = OnnxNode(helper.make_node("Add", ["x", "c"], ["y"], name="/add"), 17, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.warn_fp16_overflow([node], {"c": np.array(values, np.float32)})
    hits = [w for w in caught if issubclass(w.category, PrecisionWarning)]
    assert bool(hits) == warns
    if warns:
        assert "node '/add' (Add): constant 'c'" in str(hits[0].message)


# ---- the gates (passes.GATES): the curated pipeline skips a pass only where it cannot match ------

# every reference model but the 115M BigVGAN (its own test below, `-m slow`) and real exports whose
# programs some gated pass changes: gelu/matmul fusions and transposes (bert), rotary slicing and
# reshapes (qwen2), stack/split (encodec), silu (efficientnet), conv + batch_norm (resnet_dynamo),
# the small vocoder (conv_transpose lowering, no transpose)
GATED_MODELS = [n for n in reference_models.names() if n != "bigvgan-qwen2.5-omni"] + [
    "bert_legacy", "qwen2_legacy", "encodec_decoder_legacy", "efficientnet_legacy", "resnet_dynamo",
    "qwen25omni_bigvgan_dynamo"]


def saved_conv_transposes(mlmodel, path):
    ops, stack = [], [onnx2mil.load_saved_program(onnx2mil.save(mlmodel, path)).functions["main"]]
    while stack:
        block = stack.pop()
        for op in block.operations:
            if op.op_type == "conv_transpose":
                ops.append(op)
            stack.extend(op.blocks)
    return ops


def check_gated_equals_ungated(model, feeds, precision, tmp_path, monkeypatch, predict=True):
    ours = onnx2mil.build_coreml(model, compute_precision=precision)
    recorded = pipeline.read_pipeline(ours)
    assert recorded["ran"] and set(recorded) >= {"passes", "removed", "ran", "gated"}
    for key, (skipped, why) in recorded["gated"].items():
        name_ = key.split("/", 1)[1]
        assert skipped >= 1 and (name_ in passes.GATES and why.startswith("no ")
                                 or name_ in passes.IDEMPOTENT and why.startswith("ran just before"))
    with monkeypatch.context() as m:
        m.setattr(passes, "GATES", {})
        m.setattr(passes, "IDEMPOTENT", {})
        ungated = onnx2mil.build_coreml(model, compute_precision=precision)
    assert pipeline.read_pipeline(ungated)["gated"] == {}
    assert program_ops(ours) == program_ops(ungated)
    if predict:
        got, expected = onnx2mil.predict(ours, feeds), onnx2mil.predict(ungated, feeds)
        for name_ in expected:
            np.testing.assert_array_equal(got[name_], expected[name_])
    # the saved artifact keeps the conv_transpose lowering: 4-D (1-D lowered as 2-D), no output_shape
    for op in saved_conv_transposes(ours, tmp_path / "gated.mlpackage"):
        assert op.x.rank == 4 and op.output_shape is None
    return ours


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.parametrize("name", GATED_MODELS)
def test_gated_pipeline_gives_the_ungated_program(name, precision, tmp_path, monkeypatch):
    model, feeds = load(name)
    check_gated_equals_ungated(model, feeds, precision, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_gated_pipeline_gives_the_ungated_program_115m(precision, tmp_path, monkeypatch):
    check_gated_equals_ungated(reference_models.build("bigvgan-qwen2.5-omni"), None, precision, tmp_path,
                               monkeypatch, predict=False)


def test_gated_pipeline_keeps_the_ups_stack_lowering(tmp_path, monkeypatch):
    """The hazard model: a stack of conv_transpose with bias (the builder fuses the bias)."""
    from test_conv_transpose_lowering import ups_stack

    mlmodel = check_gated_equals_ungated(ups_stack(), {"mel": np.ones((1, 32, 9), np.float32)}, "fp32",
                                         tmp_path, monkeypatch)
    assert len(saved_conv_transposes(mlmodel, tmp_path / "again.mlpackage")) == 4


def test_every_pipeline_pass_is_gated_or_ungated_with_a_reason():
    import coremltools as ct

    ran = set(ct.PassPipeline.DEFAULT.passes) | set(ct.PassPipeline._PIPELINE_NAME_TO_PASSES["backend_mlprogram"])
    ran = set(passes.with_own_passes(sorted(ran))) | {passes.COREMLTOOLS_FP16_CAST, "common::reduce_transposes"}
    removed = set(pipeline.HAZARDOUS_PASSES)
    assert not set(passes.GATES) & set(passes.UNGATED)
    assert ran - removed <= set(passes.GATES) | set(passes.UNGATED)
    for groups, reason in passes.GATES.values():
        assert groups and all(groups) and reason


def test_pattern_gates_come_from_coremltools_patterns():
    """For the passes that match a pattern program, every pattern holds an op of each gate group."""
    from coremltools.converters.mil.mil.passes.defs import optimize_activation as act

    for name, patterns in {
        "common::fuse_gelu_tanh_approximation": [act.fuse_gelu_tanh_approximation.get_gelu_pattern1(),
                                                 act.fuse_gelu_tanh_approximation.get_gelu_pattern2()],
        "common::fuse_prelu": [act.FusePreluPattern1.get_prelu_pattern(), act.FusePreluPattern2.get_prelu_pattern()],
    }.items():
        for pattern in patterns:
            present = passes.op_types(pattern)
            assert all(group & present for group in passes.GATES[name][0]), (name, present)


def strong_fingerprint(prog) -> tuple:
    """Every op of every block: type, name, inputs by var name, outputs by name and type, const
    values; and each block's outputs."""
    items = []
    for f in prog.functions.values():
        for block in passes._blocks(f):
            items.append(("outputs", tuple(v.name for v in block.outputs)))
            for op in block.operations:
                inputs = tuple((k, tuple(x.name for x in v) if isinstance(v, (list, tuple)) else v.name)
                               for k, v in op.inputs.items())
                value = np.asarray(op.outputs[0].val).tobytes() if op.op_type == "const" else None
                items.append((op.op_type, op.name, inputs, tuple((v.name, str(v.sym_type)) for v in op.outputs),
                              value))
    return tuple(items)


SOUNDNESS_SAMPLE = 1  # every op case (989 cases, fp16 and fp32 alternately: ~50 s)


def test_gates_are_sound_on_op_cases(monkeypatch):
    """Through the ungated pipeline, on the op-builder cases: every run of a gated pass whose gate
    would be closed leaves the program exactly as it was (every change is made by a pass whose
    anchors were present), before every pass the tracked op types hold every op type of the
    program, and each pass of ``passes.IDEMPOTENT`` run again at once changes nothing."""
    import warnings

    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from op_cases import all_cases

    gates = dict(passes.GATES)
    by_class = {PASS_REGISTRY.passes[name]: name for name in gates}  # the registry makes an instance per use
    idempotent = {PASS_REGISTRY.passes[name]: name for name in passes.IDEMPOTENT}
    idempotent_runs = [0]
    original = AbstractGraphPass.__call__
    closed_runs, changed_runs, unsound, builds = [0], collections.Counter(), [], 0

    def checked(self, prog):
        seen = getattr(prog, passes.OP_TYPES_SEEN, None)
        if seen is not None and not passes.op_types(prog) <= seen:
            unsound.append(f"before {self}: op types {passes.op_types(prog) - seen} not tracked")
        name = by_class.get(type(self))
        if type(self) in idempotent:  # run it again at once: nothing may change
            result = original(self, prog)
            before = strong_fingerprint(prog)
            original(self, prog)
            if strong_fingerprint(prog) != before:
                unsound.append(f"{idempotent[type(self)]} is not idempotent")
            idempotent_runs[0] += 1
            return result
        why = passes.gate_closed(name, passes.op_types(prog), gates) if name else None
        before = strong_fingerprint(prog) if name else None
        result = original(self, prog)
        if name:
            changed = strong_fingerprint(prog) != before
            if why and changed:  # recorded, not raised: the build would turn it into a ConversionError
                unsound.append(f"{name} changed a program its gate closes ({why})")
            closed_runs[0] += why is not None
            changed_runs[name] += changed
        return result

    monkeypatch.setattr(passes, "GATES", {})
    monkeypatch.setattr(passes, "IDEMPOTENT", {})
    monkeypatch.setattr(AbstractGraphPass, "__call__", checked)
    for i, case in enumerate(all_cases()[::SOUNDNESS_SAMPLE]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                onnx2mil.build_coreml(case.model(), compute_precision=("fp16", "fp32")[i % 2],
                                      **({"minimum_deployment_target": case.target} if case.target else {}),
                                      **({"config": case.config} if case.config else {}))
            except onnx2mil.Onnx2MilError:
                continue
        builds += 1
    assert unsound == []
    assert builds > 900 and closed_runs[0] > 40000 and idempotent_runs[0] > 9000
    assert len(changed_runs) and sum(changed_runs.values()) > 0  # the checker sees changes where they happen


def test_chunked_fp16_cast_and_extrema_are_numpys():
    """``to_fp16`` and ``_extrema`` (over threads from 1M elements) give astype's bits and max/min
    exactly, under the caller's numpy error state: every float32 bit pattern class (subnormals, halfway cases, the fp16 overflow edge,
    ±inf, NaN payloads), in arrays above and below the threshold, C-contiguous or not."""
    import warnings

    rng = np.random.default_rng(0)
    n = passes._PARALLEL_MIN * 3 + 9
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)  # every exponent, every mantissa
    edges = np.array([65504, 65519.996, 65520, 65536, 6e-8, 2.98e-8, 5.96e-8, -0.0, np.inf, -np.inf, np.nan],
                     np.float32)
    value = bits.view(np.float32).copy()
    value[:: 1000][: edges.size] = edges
    for array in (value, value[: 1000], value.reshape(3, -1)[:, :-1], value[::2], np.full(n, np.nan, np.float32)):
        with warnings.catch_warnings(record=True) as caught, np.errstate(over="ignore"):
            warnings.simplefilter("always")
            got = passes.to_fp16(array)  # the caller's numpy error state reaches the threads
            expected = array.astype(np.float16)
        assert not [w for w in caught if "overflow" in str(w.message)]
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
        high, low = passes._extrema(array)
        np.testing.assert_array_equal([high, low], [array.max(), array.min()])
    finite = value[np.isfinite(value)]
    assert passes._extrema(finite) == (finite.max(), finite.min())


def test_fp16_cast_pool_works_in_a_forked_child():
    """A child forked after the pool started gets its own pool (the parent's threads are not in it)."""
    import multiprocessing
    import sys

    if sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork")
    value = np.linspace(-6e4, 6e4, passes._PARALLEL_MIN * 2, dtype=np.float32)
    passes.to_fp16(value)  # the parent's pool exists now
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(passes.to_fp16, (value,)).get(timeout=60)
    np.testing.assert_array_equal(got.view(np.uint16), value.astype(np.float16).view(np.uint16))


@pytest.mark.parametrize("name", ["bigvgan-tiny", "transformer-tiny", "qwen2_legacy"])
def test_memoized_type_queries_change_no_program(name, monkeypatch):
    """A build with coremltools' type queries memoized gives the program of one without, and
    leaves coremltools' functions as they were."""
    from coremltools.converters.mil.mil.ops.defs.iOS15.control_flow import Const
    from coremltools.converters.mil.mil.types import type_mapping, type_tensor

    originals = type_mapping.get_type_info, type_tensor.get_type_info, Const.type_inference, Const.value_inference
    model, feeds = load(name)
    for precision in ("fp16", "fp32"):
        ours = onnx2mil.build_coreml(model, compute_precision=precision)
        assert (type_mapping.get_type_info, type_tensor.get_type_info, Const.type_inference,
                Const.value_inference) == originals
        with monkeypatch.context() as m:
            m.setattr(pipeline, "type_queries_memoized", contextlib.nullcontext)
            plain = onnx2mil.build_coreml(model, compute_precision=precision)
        assert program_ops(ours) == program_ops(plain)
        got, expected = onnx2mil.predict(ours, feeds), onnx2mil.predict(plain, feeds)
        for name_ in expected:
            np.testing.assert_array_equal(got[name_], expected[name_])
