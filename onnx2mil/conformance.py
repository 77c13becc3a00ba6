"""ONNX's conformance suite through build_coreml (fp32) and the MIL interpreter.

Each node case of ``onnx.backend.test.case.node.collect_testcases()`` ends as one of:
  pass         -- built, run, and equal to ONNX's expected outputs at the case's tolerances;
  unsupported  -- a typed refusal naming node, op and reason (or an op MIL cannot express);
  wrong        -- built and ran, but the values differ;
  crash        -- anything else (a bug: the goal is zero).

``python -m onnx2mil.conformance`` runs every case and writes docs/conformance.md and
docs/conformance.json (the baseline the CI test compares against). ``--symbolic`` re-runs every
case with each data input's dims flexible (``RangeDim(d, d + 8)``, one symbol per distinct size,
as an export with dynamic axes declares them) on the same data, into conformance_symbolic.md/json.
"""
from __future__ import annotations

import argparse
import functools
import glob
import json
import logging
import multiprocessing
import os
import re
import time
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
from onnx import numpy_helper

# ONNX ops MIL cannot express, with the reason (cases of these ops are not applicable).
NOT_EXPRESSIBLE: dict[str, str] = {
    # training and losses
    "Adagrad": "training optimizer (ai.onnx.preview.training)",
    "Adam": "training optimizer (ai.onnx.preview.training)",
    "Momentum": "training optimizer (ai.onnx.preview.training)",
    "Gradient": "training op",
    "NegativeLogLikelihoodLoss": "training loss",
    "SoftmaxCrossEntropyLoss": "training loss",
    # strings and images
    "StringConcat": "string tensors (MIL has no string tensor type)",
    "StringNormalizer": "string tensors",
    "StringSplit": "string tensors",
    "RegexFullMatch": "string tensors",
    "TfIdfVectorizer": "string/n-gram tensors",
    "ImageDecoder": "encoded image bytes",
    # sequences and optionals
    "SequenceInsert": "sequence type (MIL has no sequence tensors at the model interface)",
    "SequenceMap": "sequence type",
    "SplitToSequence": "sequence type",
    "SequenceAt": "sequence type",
    "SequenceConstruct": "sequence type",
    "SequenceEmpty": "sequence type",
    "SequenceErase": "sequence type",
    "SequenceLength": "sequence type",
    "ConcatFromSequence": "sequence type",
    "OptionalGetElement": "optional type",
    "OptionalHasElement": "optional type",
    "Optional": "optional type",
    # randomness
    "Bernoulli": "random generator (outputs cannot match a seeded reference)",
    "RandomNormal": "random generator",
    "RandomNormalLike": "random generator",
    "RandomUniform": "random generator",
    "RandomUniformLike": "random generator",
    "Multinomial": "random generator",
    # bit-level and integer-arithmetic ops on types MIL lacks
    "BitCast": "reinterprets bits between dtypes; MIL has no bitcast",
    "BitShift": "uint8-uint64 bit shifts; MIL has no shift ops",
    "BitwiseAnd": "bitwise integer ops; MIL has none",
    "BitwiseOr": "bitwise integer ops; MIL has none",
    "BitwiseXor": "bitwise integer ops; MIL has none",
    "BitwiseNot": "bitwise integer ops; MIL has none",
    "ConvInteger": "int8 x int8 -> int32 accumulation; MIL conv has no integer accumulation",
    "MatMulInteger": "int8 x int8 -> int32 accumulation; MIL matmul has no integer accumulation",
    "QLinearConv": "integer-domain conv with int32 accumulation",
    "QLinearMatMul": "integer-domain matmul with int32 accumulation",
    "DynamicQuantizeLinear": "data-dependent quantization parameters",
    # signal processing and data-dependent shapes
    "DFT": "complex FFT; MIL has no FFT op in iOS15-18",
    "STFT": "complex FFT",
    "MelWeightMatrix": "generates a filterbank from scalar inputs only (no tensor input)",
    "BlackmanWindow": "generates a window from a scalar input only (no tensor input)",
    "HammingWindow": "generates a window from a scalar input only (no tensor input)",
    "HannWindow": "generates a window from a scalar input only (no tensor input)",
    "Unique": "data-dependent output shapes of four outputs",
    "Compress": "data-dependent output shape along an axis",
    "Det": "matrix determinant; MIL has no determinant or LU op",
    "Col2Im": "no MIL equivalent for arbitrary block scatter",
    "DeformConv": "data-dependent sampling offsets per kernel tap",
    "MaxUnpool": "scatter by pooled indices that MIL max_pool cannot produce",
    "TensorScatter": "KV-cache scatter with write indices per batch (opset 24)",
    "CausalConvWithState": "stateful conv (opset 26 preview)",
    "LinearAttention": "stateful linear attention (opset 26 preview)",
}
NOT_EXPRESSIBLE_DOMAINS = {
    "ai.onnx.ml": "classical ML operators (trees, encoders); CoreML's neural-network program has no equivalent",
    "ai.onnx.preview.training": "training operators",
    "ai.onnx.preview": "preview operators without a stable schema",
}


@dataclass
class CaseResult:
    name: str
    op_type: str
    opset: int
    status: str            # pass | unsupported | wrong | crash | not_applicable
    detail: str = ""
    seconds: float = 0.0
    frozen: list = field(default_factory=list)   # parameter inputs given as initializers


def _op_under_test(case, single_ops: dict[str, str]) -> tuple[str, str]:
    base = re.sub(r"_expanded(_ver\d+)?$", "", case.name)
    if base in single_ops:
        return single_ops[base]
    node = case.model.graph.node[0]
    return node.domain, node.op_type


def _compare(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> Optional[str]:
    expected = np.asarray(expected)
    got = np.asarray(got)
    if expected.shape != got.shape:
        return f"shape {got.shape} != expected {expected.shape}"
    if expected.dtype == bool or got.dtype == bool:
        return None if np.array_equal(expected.astype(bool), got.astype(bool)) else "boolean values differ"
    e, g = expected.astype(np.float64), got.astype(np.float64)
    same_nan = np.isnan(e) == np.isnan(g)
    close = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    if same_nan.all() and close.all():
        return None
    worst = np.nanmax(np.abs(np.where(close, 0, g - e))) if e.size else 0
    return f"{int((~close).sum())}/{e.size} values differ (max abs err {worst:.3g})"


# Tensor element types Core ML's ML programs cannot compute on (cases using them are not
# applicable). uint32 appears in MIL only as a const parameter type (shapes, factors); no op
# computes on uint32/uint64 tensors, and model inputs take fp16/fp32/int32 only.
_LACKING_DTYPES = {
    onnx.TensorProto.BFLOAT16, onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E4M3FNUZ,
    onnx.TensorProto.FLOAT8E5M2, onnx.TensorProto.FLOAT8E5M2FNUZ, onnx.TensorProto.UINT4,
    onnx.TensorProto.INT4, onnx.TensorProto.STRING, onnx.TensorProto.COMPLEX64,
    onnx.TensorProto.COMPLEX128, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64,
} | {getattr(onnx.TensorProto, n) for n in ("FLOAT4E2M1", "FLOAT8E8M0", "INT2", "UINT2")
     if hasattr(onnx.TensorProto, n)}


def _dtypes_mil_lacks(model: onnx.ModelProto) -> list[str]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {vi.type.tensor_type.elem_type for vi in list(g.input) + list(g.output) + list(g.value_info)
             if vi.type.HasField("tensor_type")}
    types |= {t.data_type for t in g.initializer}
    for node in g.node:
        for a in node.attribute:
            if a.name == "to":
                types.add(a.i)
            if a.type == onnx.AttributeProto.TENSOR:
                types.add(a.t.data_type)
    return sorted(onnx.TensorProto.DataType.Name(t) for t in types & _LACKING_DTYPES)


def _array(value) -> np.ndarray:
    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


# Formal ONNX inputs that are parameters, not data: most were attributes in earlier opsets, and
# exporters emit them as initializers or Constant nodes.
PARAMETER_INPUTS = {
    "axes", "pads", "constant_value", "split", "shape", "sizes", "scales", "roi", "starts", "ends",
    "steps", "K", "k", "repeats", "min", "max", "depth", "axis", "num_outputs", "size", "values",
    "max_output_boxes_per_class", "iou_threshold", "score_threshold", "ratio", "training_mode",
}


def _random_dropout(model: onnx.ModelProto) -> bool:
    """A Dropout in training mode with a non-zero ratio draws random masks: no reference can match."""
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2] in values:
            ratio = values.get(node.input[1], np.array(0.5)) if len(node.input) > 1 and node.input[1] else np.array(0.5)
            if bool(values[node.input[2]]) and float(ratio) != 0.0:
                return True
    return False


def _parameter_inputs(model: onnx.ModelProto) -> set:
    opsets = {o.domain or "": o.version for o in model.opset_import}
    names = set()
    for node in model.graph.node:
        try:
            schema = onnx.defs.get_schema(node.op_type, opsets.get(node.domain or "", 1), node.domain or "")
        except onnx.defs.SchemaError:
            continue
        formal = [i.name for i in schema.inputs]
        names.update(actual for actual, name in zip(node.input, formal) if actual and name in PARAMETER_INPUTS)
    return names


def freeze_parameter_inputs(model: onnx.ModelProto, feeds: dict) -> tuple[onnx.ModelProto, dict, set]:
    """Give parameter inputs (axes, pads, shape, sizes, scales, K, min/max...: see PARAMETER_INPUTS,
    and integer tensors of rank <= 1 that are no node's first input) as initializers, as exporters
    emit them; ONNX's cases feed them as graph inputs, while MIL takes
    most of them as constants. Nothing is frozen if that would leave the model without inputs."""
    data_inputs = {n.input[0] for n in model.graph.node if n.input}
    small_ints = {k for k, v in feeds.items() if v.dtype.kind in "iu" and v.ndim <= 1 and k not in data_inputs}
    frozen = (_parameter_inputs(model) | small_ints) & set(feeds)
    if not frozen or frozen == set(feeds):
        return model, feeds, set()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [i for i in out.graph.input if i.name not in frozen]
    del out.graph.input[:]
    out.graph.input.extend(kept)
    out.graph.initializer.extend(numpy_helper.from_array(feeds[k], k) for k in sorted(frozen))
    return out, {k: v for k, v in feeds.items() if k not in frozen}, frozen


def symbolic_inputs(feeds: dict, static: frozenset = frozenset()) -> list:
    """ct.TensorTypes making every dim of every input flexible: RangeDim(d, d + 8, default=d), one
    per distinct size (dims of equal size share a symbol, as an export's shared dim_params do),
    except the (input, axis) pairs in ``static``."""
    import coremltools as ct

    dims: dict = {}
    return [ct.TensorType(name=k, shape=tuple(
        dims.setdefault(d, ct.RangeDim(d, d + 8, default=d)) if d >= 1 and (k, axis) not in static else d
        for axis, d in enumerate(np.shape(v))))
        for k, v in feeds.items()]


def _build_symbolic(model, feeds: dict):
    """The build with every input dim flexible but those the weights fix (a Conv's channels), which
    an export with dynamic axes declares static too: each StaticAxisError fixes its axes."""
    import onnx2mil

    static: frozenset = frozenset()
    for _ in range(sum(np.ndim(v) for v in feeds.values()) + 1):
        try:
            return onnx2mil.build_coreml(model, compute_precision="fp32", inputs=symbolic_inputs(feeds, static),
                                         minimum_deployment_target=_target())
        except onnx2mil.StaticAxisError as e:
            static = static | frozenset(e.axes)
    raise AssertionError("unreachable: every axis is static after as many rounds as there are dims")


def run_case(case, op: tuple[str, str], symbolic: bool = False) -> CaseResult:
    import onnx2mil

    domain, op_type = op
    opset = next((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    start = time.perf_counter()
    result = CaseResult(case.name, f"{domain}::{op_type}" if domain else op_type, opset, "pass")
    if domain in NOT_EXPRESSIBLE_DOMAINS or op_type in NOT_EXPRESSIBLE:
        result.status = "not_applicable"
        result.detail = NOT_EXPRESSIBLE_DOMAINS.get(domain) or NOT_EXPRESSIBLE[op_type]
        return result
    initializers = {i.name for i in case.model.graph.initializer}
    input_names = [i.name for i in case.model.graph.input if i.name not in initializers]
    output_names = [o.name for o in case.model.graph.output]
    lacking = _dtypes_mil_lacks(case.model)
    if lacking:
        result.status = "not_applicable"
        result.detail = f"tensor dtype(s) Core ML programs cannot compute on: {', '.join(lacking)}"
        return result
    if any(_array(v).size == 0 for _, outputs in case.data_sets for v in outputs
           if isinstance(v, (np.ndarray, onnx.TensorProto))):  # sequences/optionals are refused later
        result.status = "not_applicable"
        result.detail = "expects a zero-size output; Core ML has no zero-size tensors"
        return result
    try:
        for inputs, outputs in case.data_sets:
            feeds = {k: _array(v) for k, v in zip(input_names, inputs)}
            model, feeds, frozen = freeze_parameter_inputs(case.model, feeds)
            if frozen:
                result.frozen = sorted(frozen)
            if _random_dropout(model):
                result.status, result.detail = "not_applicable", "training-mode Dropout draws random masks"
                return result
            mlmodel = _build_symbolic(model, feeds) if symbolic else onnx2mil.build_coreml(
                model, compute_precision="fp32", inputs={k: np.shape(v) for k, v in feeds.items()},
                minimum_deployment_target=_target())
            got = onnx2mil.predict(mlmodel, feeds)
            for name, expected in zip(output_names, map(_array, outputs)):
                problem = _compare(expected, got[name], case.rtol, case.atol)
                if problem:
                    result.status, result.detail = "wrong", f"{name}: {problem}"
                    break
            if result.status != "pass":
                break
    except (onnx2mil.UnsupportedOperatorError, onnx2mil.UnsupportedMILOpError,
            onnx2mil.InvalidModelError) as e:
        result.status, result.detail = "unsupported", f"{type(e).__name__}: {e}".replace("\n", " ")
    except Exception as e:  # noqa: BLE001 - every other exception is a crash, reported, never hidden
        result.status, result.detail = "crash", f"{type(e).__name__}: {e}".replace("\n", " ")[:400]
    result.seconds = time.perf_counter() - start
    return result


def _target():
    import coremltools as ct

    return ct.target.iOS18


@functools.lru_cache(maxsize=4)
def _collect(pattern: Optional[str]):
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [c for c in collect_testcases() if c.model is not None]
    single = {c.name: (c.model.graph.node[0].domain, c.model.graph.node[0].op_type)
              for c in cases if len(c.model.graph.node) == 1}
    chosen = [c for c in cases if not pattern or re.search(pattern, c.name)]
    return [(c, _op_under_test(c, single)) for c in chosen]


@dataclass
class DataCase:
    """A case stored as files (model.onnx + test_data_set_*/input_*.pb, output_*.pb), shaped like
    a node case for ``run_case``."""

    name: str
    model: onnx.ModelProto
    data_sets: list
    rtol: float
    atol: float


def _tensors(folder: str, prefix: str) -> list:
    files = glob.glob(os.path.join(folder, f"{prefix}_*.pb"))
    return [onnx.load_tensor(f) for f in sorted(files, key=lambda f: int(re.findall(r"_(\d+)\.pb$", f)[0]))]


@functools.lru_cache(maxsize=4)
def _collect_pytorch_converted(pattern: Optional[str]):
    """onnx's ``pytorch-converted`` data (torch modules exported at old opsets, with expected
    outputs); the op under test is the first non-Constant node's."""
    from onnx.backend.test.loader import load_model_tests

    out = []
    for test in load_model_tests(kind="pytorch-converted"):
        if pattern and not re.search(pattern, test.name):
            continue
        model = onnx.load(os.path.join(test.model_dir, "model.onnx"))
        data_sets = [(_tensors(d, "input"), _tensors(d, "output"))
                     for d in sorted(glob.glob(os.path.join(test.model_dir, "test_data_set_*")))]
        op = next(((n.domain, n.op_type) for n in model.graph.node if n.op_type != "Constant"), ("", "Constant"))
        out.append((DataCase(test.name, model, data_sets, test.rtol, test.atol), op))
    return out


SUITES = {"node": _collect, "pytorch-converted": _collect_pytorch_converted}


def _worker(args):
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    index, pattern, symbolic, suite = args
    case, op = SUITES[suite](pattern)[index]
    return run_case(case, op, symbolic)


def run_all(pattern: Optional[str] = None, jobs: int = 2, symbolic: bool = False,
            suite: str = "node") -> list[CaseResult]:
    n = len(SUITES[suite](pattern))
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        return list(pool.imap(_worker, [(i, pattern, symbolic, suite) for i in range(n)], chunksize=8))


def summarize(results: list[CaseResult]) -> dict:
    per_op: dict[str, dict] = defaultdict(lambda: {"pass": 0, "unsupported": 0, "wrong": 0, "crash": 0,
                                                   "not_applicable": 0, "opsets": set()})
    for r in results:
        per_op[r.op_type][r.status] += 1
        per_op[r.op_type]["opsets"].add(r.opset)
    totals = {s: sum(1 for r in results if r.status == s)
              for s in ("pass", "unsupported", "wrong", "crash", "not_applicable")}
    applicable = len(results) - totals["not_applicable"]
    supported_ops = sorted(op for op, c in per_op.items() if c["pass"] > 0)
    return {
        "cases": len(results), "applicable": applicable, **totals,
        "pass_rate": totals["pass"] / applicable if applicable else 0.0,
        "op_types_passing": len(supported_ops),
        "per_op": {op: {**{k: v for k, v in c.items() if k != "opsets"}, "opsets": sorted(c["opsets"])}
                   for op, c in sorted(per_op.items())},
    }


def write_pytorch_converted_report(results: list[CaseResult], docs: Path) -> dict:
    summary = summarize(results)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "conformance_pytorch_converted.json").write_text(json.dumps(
        {"summary": summary, "cases": [asdict(r) for r in results]}, indent=1) + "\n")
    lines = ["# onnx's pytorch-converted models through onnx2mil", "",
             "Generated by `python -m onnx2mil.conformance --suite pytorch-converted`: the torch modules onnx "
             "ships exported at old opsets (`onnx/backend/test/data/pytorch-converted`), built at fp32, run "
             "by the MIL interpreter, compared with their expected outputs at the case's tolerances.", "",
             f"- cases: {summary['cases']}; applicable: {summary['applicable']}",
             f"- pass: {summary['pass']} ({summary['pass_rate']:.1%} of applicable); unsupported: "
             f"{summary['unsupported']}; wrong: {summary['wrong']}; crash: {summary['crash']}", "",
             "| case | op under test | status | detail |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.op_type} | {r.status} | {r.detail[:300].replace('|', '/')} |" for r in results]
    (docs / "conformance_pytorch_converted.md").write_text("\n".join(lines) + "\n")
    return summary


def write_reports(results: list[CaseResult], docs: Path, symbolic: bool = False) -> dict:
    summary = summarize(results)
    docs.mkdir(parents=True, exist_ok=True)
    stem = "conformance_symbolic" if symbolic else "conformance"
    # the static report shows, per op, how many cases also pass with symbolic dims (if that run exists)
    symbolic_source = docs / "conformance_symbolic.json"
    symbolic_summary = (json.loads(symbolic_source.read_text())["summary"]
                        if not symbolic and symbolic_source.is_file() else None)
    (docs / f"{stem}.json").write_text(json.dumps(
        {"summary": summary, "cases": [asdict(r) for r in results]}, indent=1) + "\n")
    lines = [
        "# ONNX conformance through onnx2mil",
        "",
        "Generated by `python -m onnx2mil.conformance` from ONNX's node test cases "
        "(`onnx.backend.test.case.node.collect_testcases()`): each case is built with "
        "`build_coreml(compute_precision=\"fp32\", minimum_deployment_target=iOS18)`, run by the MIL "
        "interpreter and compared with ONNX's expected outputs at the case's own tolerances. "
        "Parameter inputs (formal inputs named " + ", ".join(sorted(PARAMETER_INPUTS)) + ", and integer "
        "tensors of rank <= 1 that are no node's first input) are given as initializers, as exporters "
        f"emit them ({sum(1 for r in results if r.frozen)} cases had such inputs). Not applicable: "
        "cases of ops listed below as not expressible, cases on dtypes Core ML programs cannot compute "
        "on (bfloat16, float8, int4/uint4, uint32/uint64, string...), cases that expect a zero-size "
        "output (Core ML has no zero-size tensors) and random training-mode Dropout.",
        *(["", "**Symbolic dims** (`--symbolic`): every data input's dims given as `RangeDim(d, d + 8)` "
            "(one symbol per distinct size), run on the case's own data: what a builder does with the "
            "dims an export with dynamic axes declares."] if symbolic else []),
        "",
        f"- cases: {summary['cases']}; applicable (op expressible in MIL): {summary['applicable']}",
        f"- pass: {summary['pass']} ({summary['pass_rate']:.1%} of applicable); unsupported: "
        f"{summary['unsupported']}; wrong: {summary['wrong']}; crash: {summary['crash']}",
        f"- op types with at least one passing case: {summary['op_types_passing']}",
        *([f"- with symbolic dims (`--symbolic`, {symbolic_source.name}): {symbolic_summary['pass']} pass "
           f"({symbolic_summary['pass_rate']:.1%} of applicable); column *symbolic*"] if symbolic_summary else []),
        "",
        "| op type | pass | applicable | unsupported | wrong | crash |" + (" symbolic |" if symbolic_summary else "")
        + " opsets of the cases |",
        "|---|---:|---:|---:|---:|---:|" + ("---:|" if symbolic_summary else "") + "---|",
    ]
    for op, c in summary["per_op"].items():
        applicable = c["pass"] + c["unsupported"] + c["wrong"] + c["crash"]
        if applicable:
            sym = ""
            if symbolic_summary:
                sym = f" {symbolic_summary['per_op'].get(op, {}).get('pass', 0)} |"
            lines.append(f"| {op} | {c['pass']} | {applicable} | {c['unsupported']} | {c['wrong']} | "
                         f"{c['crash']} |{sym} {', '.join(map(str, c['opsets']))} |")
    lines += ["", "## Not expressible in MIL (not applicable)", "",
              "| op type or domain | reason |", "|---|---|"]
    lines += [f"| {op} | {why} |" for op, why in sorted(NOT_EXPRESSIBLE.items())]
    lines += [f"| domain `{d}` | {why} |" for d, why in sorted(NOT_EXPRESSIBLE_DOMAINS.items())]
    lines += ["", "## Cases that do not pass", "", "| case | op | status | detail |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.op_type} | {r.status} | {r.detail[:300].replace('|', '/')} |"
              for r in results if r.status in ("unsupported", "wrong", "crash")]
    (docs / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onnx2mil.conformance", description=__doc__.split("\n")[0])
    parser.add_argument("-k", "--pattern", help="regex on case names")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--docs", default="docs", help="where conformance.md/json are written")
    parser.add_argument("--symbolic", action="store_true",
                        help="every input dim flexible (RangeDim); writes conformance_symbolic.md/json")
    parser.add_argument("--suite", choices=tuple(SUITES), default="node",
                        help="node: ONNX's node cases; pytorch-converted: onnx's exported torch modules "
                             "(writes conformance_pytorch_converted.md/json)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run_all(args.pattern, args.jobs, args.symbolic, args.suite)
    if args.pattern:
        summary = summarize(results)
    elif args.suite == "pytorch-converted":
        summary = write_pytorch_converted_report(results, Path(args.docs))
    else:
        summary = write_reports(results, Path(args.docs), args.symbolic)
    print(f"{summary['pass']}/{summary['applicable']} applicable cases pass "
          f"({summary['unsupported']} unsupported, {summary['wrong']} wrong, {summary['crash']} crash) "
          f"in {time.perf_counter() - start:.0f}s; {summary['op_types_passing']} op types pass")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
