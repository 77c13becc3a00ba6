"""Known CoreML / Neural Engine hazards as data, and the 1-D lowering helpers that avoid some.

Each :class:`Hazard` says what goes wrong (``symptom``), on which compute units, where it was
reported (``references``: public URLs), how to find it — ``mil_pattern`` on the program as saved
(after coremltools' passes, what CoreML receives), ``onnx_pattern`` on the ONNX graph (the nodes
where it could arise) — and the rewrite that avoids it, if onnx2mil has one: a lowering variant of
``config.LOWERINGS`` or a rewrite every build applies. ``onnx2mil lint`` (``backend/validation/lint.py``)
reads this table; adding a hazard is one entry here and one test case in tests/test_lint.py.

A MIL pattern returns the ops that carry the hazard in the emitted program; an ONNX site with no
such op was rewritten away. A hazard without a MIL pattern is judged on the ONNX graph alone; one
that depends on the data (``range_ops``) is found by the fp16 range analysis on the user's inputs.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Optional

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

# Compute-unit names as in ct.ComputeUnit.
NE_UNITS = ("CPU_AND_NE", "ALL")
NOT_CPU_UNITS = ("CPU_AND_GPU", "CPU_AND_NE", "ALL")

WRONG = "wrong values"        # the op computes wrong results where the hazard applies
FALLBACK = "runs off the NE"  # the op leaves the Neural Engine (slower, results unaffected)


@dataclass(frozen=True)
class Rewrite:
    """How onnx2mil avoids a hazard: a lowering variant (``lowering`` key of config.LOWERINGS and
    the ``variants`` that avoid it) or a rewrite every build applies (``lowering`` None)."""

    description: str
    lowering: Optional[str] = None
    variants: tuple[str, ...] = ()
    removed_pass: Optional[str] = None  # a coremltools pass the build removes for it

    def applied(self, config, node: Optional[str] = None) -> bool:
        if self.lowering is None:
            return True
        return config.lowering(self.lowering, node) in self.variants

    def __str__(self) -> str:
        if self.lowering is None:
            return self.description
        return f"lowering.{self.lowering}: {'|'.join(self.variants)}"


@dataclass(frozen=True)
class Hazard:
    key: str
    op: str                                   # the op family, as a user would name it
    symptom: str
    references: tuple[str, ...]               # public URLs (or the report's name when it has none)
    compute_units: tuple[str, ...] = ()       # affected units; () when the report does not say
    os_versions: str = ""                     # where it was observed, if the report says
    severity: str = WRONG
    rewrite: Optional[Rewrite] = None
    mil_pattern: Optional[Callable] = None    # Program -> [mil op]
    onnx_pattern: Optional[Callable] = None   # LoadedGraph -> [OnnxNode]
    # Data-dependent hazards: the MIL ops whose fp16 range ``lint --fp16-range`` checks for it.
    range_ops: tuple[str, ...] = ()

    @property
    def default_applied(self) -> bool:
        """Whether build_coreml applies the rewrite with the default config."""
        if self.rewrite is None:
            return False
        from .config import Config

        return self.rewrite.applied(Config())

    def to_dict(self) -> dict:
        return {"key": self.key, "op": self.op, "symptom": self.symptom, "references": list(self.references),
                "compute_units": list(self.compute_units), "os_versions": self.os_versions,
                "severity": self.severity, "rewrite": str(self.rewrite) if self.rewrite else None,
                "default_applied": self.default_applied}


# ---- MIL patterns (on the program as saved) ------------------------------------------------------

def mil_ops(prog) -> Iterator:
    """Every op of the program's main function, nested blocks included."""
    def walk(block):
        for op in block.operations:
            yield op
            for b in op.blocks:
                yield from walk(b)
    yield from walk(prog.functions["main"])


def _nonzero_const(var) -> bool:
    """A var that is not a constant of zeros (a non-const var counts as nonzero)."""
    if var is None:
        return False
    return var.val is None or bool(np.any(np.asarray(var.val) != 0))


def _asymmetric(pad) -> bool:
    pad = list(np.asarray(pad).reshape(-1))
    return any(pad[i] != pad[i + 1] for i in range(0, len(pad) - 1, 2))


def _custom_pad(op):
    if op.pad_type is None or op.pad_type.val != "custom" or op.pad is None or op.pad.val is None:
        return None
    return op.pad.val


def _strided(op) -> bool:
    return op.strides is not None and op.strides.val is not None and any(int(s) > 1 for s in op.strides.val)


def _is_fp16(var) -> bool:
    return var is not None and types.is_tensor(var.sym_type) and types.builtin_to_string(var.dtype) == "fp16"


def _of_type(*op_types):
    return lambda prog: [op for op in mil_ops(prog) if op.op_type in op_types]


def _conv_transpose_rank3_bias(prog):
    return [op for op in mil_ops(prog) if op.op_type == "conv_transpose" and op.x.rank == 3
            and _nonzero_const(op.bias)]


def _conv_transpose_output_shape(prog):
    return [op for op in mil_ops(prog) if op.op_type == "conv_transpose" and op.output_shape is not None]


def _conv_transpose_asymmetric_pads(prog):
    return [op for op in mil_ops(prog) if op.op_type == "conv_transpose"
            and _custom_pad(op) is not None and _asymmetric(_custom_pad(op))]


def _conv_transpose_1d_fp16_shift(prog):
    return [op for op in mil_ops(prog) if op.op_type == "conv_transpose" and op.x.rank == 3 and _is_fp16(op.x)
            and _strided(op) and _custom_pad(op) is not None and _asymmetric(_custom_pad(op))]


def _conv2d_reported_geometry(prog):
    """coremltools#2515's configuration: 2-D conv, >1 input channel, a non-square kernel, stride > 1
    and padding (the report could not narrow the affected set further)."""
    hits = []
    for op in mil_ops(prog):
        if op.op_type != "conv" or op.x.rank != 4 or op.weight.shape is None:
            continue
        kernel = op.weight.shape[2:]
        pad = _custom_pad(op)
        if (isinstance(op.x.shape[1], int) and op.x.shape[1] > 1 and kernel[0] != kernel[1] and _strided(op)
                and pad is not None and any(int(p) > 0 for p in pad)):
            hits.append(op)
    return hits


def _avg_pool_reported_geometry(prog):
    """coremltools#1901's configuration: avg_pool, kernel 7x7, stride 4, padding 3 inside the op."""
    return [op for op in mil_ops(prog) if op.op_type == "avg_pool"
            and list(map(int, op.kernel_sizes.val)) == [7, 7] and op.strides is not None
            and list(map(int, op.strides.val)) == [4, 4]
            and _custom_pad(op) is not None and list(map(int, _custom_pad(op))) == [3, 3, 3, 3]]


def _log_of_softmax(prog):
    return [op for op in mil_ops(prog) if op.op_type == "log" and op.x.op is not None
            and op.x.op.op_type == "softmax"]


def _log_cumsum_exp(prog):
    hits = []
    for op in mil_ops(prog):
        if op.op_type != "log" or op.x.op is None or op.x.op.op_type != "cumsum":
            continue
        inner = op.x.op.x.op
        if inner is not None and inner.op_type == "exp":
            hits.append(op)
    return hits


MAX_DIM = 16384


def _dim_over_limit(prog):
    hits = []
    for op in mil_ops(prog):
        if op.op_type == "const":
            continue
        for v in op.outputs:
            if types.is_tensor(v.sym_type) and any(isinstance(d, int) and d > MAX_DIM for d in v.shape):
                hits.append(op)
                break
    return hits


def _pool_beyond_ne(prog):
    return [op for op in mil_ops(prog) if op.op_type in ("avg_pool", "max_pool", "l2_pool")
            and (any(int(k) > 13 for k in op.kernel_sizes.val)
                 or (op.strides is not None and any(int(s) > 2 for s in op.strides.val)))]


def _upsample_not_2(prog):
    hits = []
    for op in mil_ops(prog):
        if op.op_type in ("upsample_nearest_neighbor", "upsample_bilinear"):
            factors = [op.scale_factor_height.val, op.scale_factor_width.val]
            if any(f is not None and float(f) not in (1.0, 2.0) for f in factors):
                hits.append(op)
    return hits


# ---- ONNX patterns (where a hazard could arise) --------------------------------------------------

def _onnx_conv_transpose(graph, rank: Optional[int] = None):
    for node in graph.nodes:
        if node.op_type != "ConvTranspose":
            continue
        w = graph.constants.get(node.inputs[1]) if len(node.inputs) > 1 else None
        k = w.ndim - 2 if w is not None else None
        if rank is None or k == rank:
            yield node, w, k


def _onnx_conv_transpose_1d_bias(graph):
    return [n for n, _, _ in _onnx_conv_transpose(graph, 1)
            if n.has_input(2) and _nonzero(graph.constants.get(n.inputs[2]))]


def _nonzero(value) -> bool:
    return value is None or bool(np.any(np.asarray(value) != 0))


def _onnx_output_shape(graph):
    return [n for n, _, _ in _onnx_conv_transpose(graph) if n.attr("output_shape") is not None
            or n.attr("auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")]


def _onnx_asymmetric(node, k) -> bool:
    pads = node.attr("pads")
    output_padding = node.attr("output_padding") or []
    asym = pads is not None and k and any(pads[i] != pads[i + k] for i in range(k))
    return bool(asym or any(output_padding))


def _onnx_asymmetric_pads(graph):
    return [n for n, _, k in _onnx_conv_transpose(graph) if _onnx_asymmetric(n, k)]


def _onnx_1d_strided_asymmetric(graph):
    return [n for n, _, k in _onnx_conv_transpose(graph, 1)
            if any(s > 1 for s in (n.attr("strides") or [1])) and _onnx_asymmetric(n, k)]


def _onnx_avg_pool_reported_geometry(graph):
    return [n for n in graph.nodes if n.op_type == "AveragePool" and list(n.attr("kernel_shape") or []) == [7, 7]
            and list(n.attr("strides") or []) == [4, 4] and list(n.attr("pads") or []) == [3, 3, 3, 3]]


def _onnx_op(*op_types):
    return lambda graph: [n for n in graph.nodes if n.op_type in op_types]


# ---- the table -----------------------------------------------------------------------------------

MNN_REPORT = "MNN CoreML backend report on Qwen2.5-Omni BigVGAN (no public URL)"

HAZARDS: tuple[Hazard, ...] = (
    Hazard(
        "conv_transpose_1d_bias", "ConvTranspose (1-D) with bias",
        "on the Neural Engine a rank-3 conv_transpose adds its bias to the first elements of each "
        "channel only (size-dependent; CPU and GPU are right)",
        (MNN_REPORT,), NE_UNITS,
        rewrite=Rewrite("expand_dims -> 4-D conv_transpose -> squeeze", "conv_transpose_1d", ("as_2d", "split_bias")),
        mil_pattern=_conv_transpose_rank3_bias, onnx_pattern=_onnx_conv_transpose_1d_bias),
    Hazard(
        "conv_transpose_output_shape", "ConvTranspose with output_shape",
        "conv_transpose given output_shape computes different outputs on CPU_ONLY and ALL",
        ("https://github.com/apple/coremltools/issues/2281", "https://github.com/microsoft/onnxruntime/pull/21416"),
        ("CPU_ONLY", "ALL"),
        rewrite=Rewrite("explicit pads; pass common::add_conv_transpose_output_shape removed",
                        removed_pass="common::add_conv_transpose_output_shape"),
        mil_pattern=_conv_transpose_output_shape, onnx_pattern=_onnx_output_shape),
    Hazard(
        "conv_transpose_asymmetric_pads", "ConvTranspose with asymmetric pads (or output_padding)",
        "conv_transpose with begin != end pads is inconsistent across devices: CPU is right, other "
        "devices are not (macOS); onnxruntime's CoreML EP refuses such nodes",
        ("https://github.com/microsoft/onnxruntime/blob/main/onnxruntime/core/providers/coreml/builders/impl/"
         "convtranspose_op_builder.cc",),
        NOT_CPU_UNITS, os_versions="macOS",
        mil_pattern=_conv_transpose_asymmetric_pads, onnx_pattern=_onnx_asymmetric_pads),
    Hazard(
        "conv_transpose_1d_fp16_shift", "ConvTranspose (1-D), fp16, strided, asymmetric custom pad",
        "a rank-3 fp16 conv_transpose with stride 2 and custom pad [1, 0] gives a shifted, wrong output",
        ("https://github.com/apple/coremltools/issues/2324",), os_versions="macOS 14.3 (M1)",
        rewrite=Rewrite("emitted as 4-D (the report is on the rank-3 form)", "conv_transpose_1d", ("as_2d",)),
        mil_pattern=_conv_transpose_1d_fp16_shift, onnx_pattern=_onnx_1d_strided_asymmetric),
    Hazard(
        "conv2d_last_element", "Conv (2-D), non-square kernel, strided, padded",
        "with more than one channel the last output element y[:, :, -1, -1] is wrong (reported for "
        "kernel 3x2, padding 1, stride 2; the affected set is not known exactly)",
        ("https://github.com/apple/coremltools/issues/2515",),
        mil_pattern=_conv2d_reported_geometry),
    Hazard(
        "avg_pool_7_4_3", "AveragePool, kernel 7x7, stride 4, padding 3",
        "wrong average pooling output for kernel 7, padding 3, stride 4 (count_include_pad), on the Mac and "
        "on device; the other settings reported are right",
        ("https://github.com/apple/coremltools/issues/1901",),
        mil_pattern=_avg_pool_reported_geometry, onnx_pattern=_onnx_avg_pool_reported_geometry),
    Hazard(
        "softplus_fp16", "Softplus (and Mish)",
        "the Neural Engine computes in fp16 whatever the declared precision: softplus drops to 0 "
        "for x > ~10.4",
        ("https://github.com/apple/coremltools/issues/2687",), NE_UNITS,
        mil_pattern=_of_type("softplus"), onnx_pattern=_onnx_op("Softplus", "Mish")),
    Hazard(
        "logsumexp_fp16", "ReduceLogSumExp (and LogSoftmax, emitted with it)",
        "reduce_log_sum_exp on the Neural Engine overflows fp16 (no max shift): the output drops to 0 "
        "once sum(exp(x)) > 65504 (x ~ 7.63 over 32 equal channels)",
        ("https://github.com/apple/coremltools/issues/2690",), NE_UNITS,
        mil_pattern=_of_type("reduce_log_sum_exp"), onnx_pattern=_onnx_op("ReduceLogSumExp", "LogSoftmax")),
    Hazard(
        "log_softmax_fp16", "log(softmax(x))",
        "on the Neural Engine in fp16 the probabilities of non-dominant classes underflow to 0 and "
        "their log is -inf",
        ("https://github.com/apple/coremltools/issues/2728",), NE_UNITS,
        mil_pattern=_log_of_softmax),
    Hazard(
        "logcumsumexp_fp16", "log(cumsum(exp(x)))",
        "on the Neural Engine in fp16 exp overflows for x > ~11.09: the output becomes inf, then NaN",
        ("https://github.com/apple/coremltools/issues/2729",), NE_UNITS,
        mil_pattern=_log_cumsum_exp),
    Hazard(
        "norm_fp16_overflow", "LayerNormalization / GroupNormalization / InstanceNormalization (fused norms)",
        "a norm computed in fp16 squares its centred input: finite inputs whose deviations from the mean "
        "exceed ~256 give (x - mean)^2 > 65504, the variance becomes inf and the output collapses to "
        "beta (data-dependent: found by lint --fp16-range, not by the graph's form)",
        ("https://github.com/apple/coremltools/issues/2110", "https://github.com/apple/coremltools/issues/1671",
         "https://github.com/ml-explore/mlx/issues/4228", "https://github.com/microsoft/onnxruntime/issues/17692"),
        NE_UNITS, rewrite=Rewrite("(x - mean) / s with eps / s^2, s = max(1, max|x - mean|)", "norm_fp16",
                                  ("scaled",)),
        range_ops=("layer_norm", "instance_norm")),
    Hazard(
        "rnn_off_ne", "LSTM / GRU / RNN",
        "RNN and LSTM are not supported on the Neural Engine: the model runs them on the CPU",
        ("https://github.com/apple/coremltools/issues/1780",), NE_UNITS, severity=FALLBACK,
        mil_pattern=_of_type("lstm", "gru", "rnn"), onnx_pattern=_onnx_op("LSTM", "GRU", "RNN")),
    Hazard(
        "pool_beyond_ne", "pooling with kernel > 13 or stride > 2",
        "the Neural Engine compiler rejects pooling kernels wider than 13 and strides above 2 "
        "(Espresso kernel validation, neural-network models, iOS 14 era)",
        ("https://github.com/hollance/neural-engine/issues/2",), NE_UNITS, severity=FALLBACK,
        mil_pattern=_pool_beyond_ne),
    Hazard(
        "upsample_not_2", "upsampling by a factor other than 2",
        "the Neural Engine supports upsample scaling factor 2 only (Espresso kernel validation, "
        "neural-network models, iOS 14 era)",
        ("https://github.com/hollance/neural-engine/issues/2",), NE_UNITS, severity=FALLBACK,
        mil_pattern=_upsample_not_2),
    Hazard(
        "dim_over_16384", f"any tensor with a dimension > {MAX_DIM}",
        f"Core ML does not support tensor dimensions above {MAX_DIM} (the Neural Engine's per-dimension "
        "range); onnxruntime's CoreML EP refuses such inputs",
        ("https://github.com/microsoft/onnxruntime/issues/19543", "https://github.com/apple/coremltools/issues/1003"),
        NE_UNITS, severity=FALLBACK, mil_pattern=_dim_over_limit),
)

BY_KEY = {h.key: h for h in HAZARDS}


# ---- rewrites a build applied --------------------------------------------------------------------

@dataclass(frozen=True)
class AppliedRewrite:
    """A hazard the build's config mitigates, and where (``scope``: "model", "model except <nodes>"
    or a node name)."""

    hazard: str
    rewrite: str
    scope: str
    reference: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = "" if self.scope == "model" else f" ({self.scope})"
        return f"{self.hazard}: {self.rewrite}{where} [{self.reference}]"


def applied(mlmodel) -> list[AppliedRewrite]:
    """The hazards the build of ``mlmodel`` (MLModel or .mlpackage path) mitigated, from the config
    and pass pipeline stored in its metadata. A model not built by onnx2mil has none."""
    from . import pipeline as pipeline_mod
    from .config import Config

    mlmodel = pipeline_mod.open_model(mlmodel)
    meta = mlmodel.user_defined_metadata
    if pipeline_mod.META_CONFIG not in meta:
        return []
    config = Config(json.loads(meta[pipeline_mod.META_CONFIG]))
    removed = set(json.loads(meta[pipeline_mod.META_PIPELINE]).get("removed", [])) \
        if pipeline_mod.META_PIPELINE in meta else set()
    out = []
    for hazard in HAZARDS:
        rw = hazard.rewrite
        if rw is None:
            continue
        if rw.lowering is None:
            if rw.removed_pass is None or rw.removed_pass in removed:
                out.append(AppliedRewrite(hazard.key, rw.description, "model", hazard.references[0]))
            continue
        per_node = {node: o[rw.lowering] for node, o in config.data["node_lowering"].items() if rw.lowering in o}
        if rw.applied(config):
            exceptions = [node for node, variant in per_node.items() if variant not in rw.variants]
            scope = "model" if not exceptions else f"model except {', '.join(exceptions)}"
            out.append(AppliedRewrite(hazard.key, f"lowering.{rw.lowering}={config.lowering(rw.lowering)}",
                                      scope, hazard.references[0]))
            continue
        for node, variant in per_node.items():
            if variant in rw.variants:
                out.append(AppliedRewrite(hazard.key, f"lowering.{rw.lowering}={variant}", node,
                                          hazard.references[0]))
    return out


# ---- 1-D lowering helpers (used by the Conv / ConvTranspose builders) ----------------------------

def expand_1d(x, name: str):
    """(N, C, L) -> (N, C, 1, L)."""
    return mb.expand_dims(x=x, axes=[-2], name=name)


def squeeze_1d(x, name: str):
    """(N, C, 1, L) -> (N, C, L)."""
    return mb.squeeze(x=x, axes=[-2], name=name)


def weight_1d_as_2d(weight: np.ndarray) -> np.ndarray:
    """(A, B, K) -> (A, B, 1, K)."""
    return weight[:, :, None, :]


def params_1d_as_2d(strides, dilations, pads):
    """Spatial params of a 1-D op for the (1, L) 2-D form; pads are MIL's [begin, end]."""
    return [1, *strides], [1, *dilations], [0, 0, *pads]
