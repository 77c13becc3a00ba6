"""``lint``: which nodes of a model sit on a known CoreML / Neural Engine hazard (``hazards.HAZARDS``),
and whether the build's rewrite avoided it.

The emitted program is judged as saved (loaded back from the spec and weights: after coremltools'
passes, what CoreML receives), so a pass that folds a lowering back, or fuses an add into a
rank-3 conv_transpose's bias, is caught. Each MIL op found is named by the ONNX node it computes:
its debug handle when the in-memory program is at hand, else the ONNX tensor its output holds.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

import coremltools as ct
import onnx

from ...errors import Onnx2MilError
from ..convert import hazards as hazards_mod
from ..convert import pipeline as pipeline_mod


class LintInputError(Onnx2MilError):
    """The model given to lint cannot be read or built."""


@dataclass
class Finding:
    hazard: str
    node: str                  # ONNX node name (the ONNX tensor or MIL op name when no node is known)
    op_type: str               # ONNX op type ("mil:<op>" when no node is known)
    mitigated: bool
    rewrite: str               # what avoided it ("" when nothing did)
    severity: str
    compute_units: list
    reference: str
    mil_op: Optional[str] = None


@dataclass
class LintReport:
    model: str
    precision: Optional[str]
    findings: list = field(default_factory=list)
    applied: list = field(default_factory=list)   # hazards.AppliedRewrite
    fp16_range: Optional[list] = None             # RangeFinding, when the analysis ran

    @property
    def unmitigated(self) -> list:
        return [f for f in self.findings if not f.mitigated]

    @property
    def clean(self) -> bool:
        """No hazard left unmitigated (and, when the fp16 range analysis ran, no value out of range)."""
        return not self.unmitigated and not self.fp16_range

    def hazards_at(self, node: str) -> list[str]:
        return [f.hazard for f in self.findings if f.node == node]

    def to_dict(self) -> dict:
        return {"model": self.model, "precision": self.precision, "clean": self.clean,
                "unmitigated": len(self.unmitigated), "findings": [asdict(f) for f in self.findings],
                "applied": [a.to_dict() for a in self.applied],
                "fp16_range": None if self.fp16_range is None else [asdict(r) for r in self.fp16_range]}

    def to_json(self, indent: int = 2) -> str:
        from .report import json_finite  # JSON has no infinities: an infinite peak becomes null

        return json.dumps(json_finite(self.to_dict()), indent=indent)

    def rich_table(self):
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"lint {self.model} ({self.precision}): known CoreML / Neural Engine hazards")
        for col in ("node", "op", "hazard", "compute units", "reference", "rewrite applied?"):
            table.add_column(col)
        for f in sorted(self.findings, key=lambda f: (f.mitigated, f.hazard, f.node)):
            applied = f"[green]yes[/green]: {escape(f.rewrite)}" if f.mitigated else "[bold red]no[/bold red]"
            table.add_row(escape(f.node), f.op_type, f"{f.hazard} ({f.severity})",
                          ", ".join(f.compute_units) or "?", escape(f.reference), applied)
        return table

    def summary(self) -> str:
        n = len(self.unmitigated)
        if not self.findings and not self.fp16_range:
            return "clean: no node matches a known hazard" + (
                "; every value within fp16's range" if self.fp16_range is not None else "")
        mitigated = len(self.findings) - n
        if n == 0 and not self.fp16_range:
            return f"clean: {mitigated} hazard site(s), every one mitigated by the build"
        text = f"{n} unmitigated hazard site(s) ({mitigated} mitigated)"
        if self.fp16_range:
            text += f"; {len(self.fp16_range)} value(s) beyond fp16's range"
        return text

    def print(self, console=None) -> None:
        from rich.console import Console

        console = console or Console()
        if self.findings:
            console.print(self.rich_table())
        if self.applied:
            from rich.markup import escape

            console.print(escape("rewrites applied by the build: " + "; ".join(str(a) for a in self.applied)))
        if self.fp16_range:
            console.print(self.range_table())
        console.print(self.summary())

    def range_table(self):
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(f"fp16 range: values an fp16 run (any fp16 build; the Neural Engine always) "
                                   f"cannot hold [{FP16_RANGE_REFERENCE}]"))
        for col in ("node", "op", "where", "peak |value| (fp32)", "detail", "rewrite"):
            table.add_column(col)
        for r in self.fp16_range:
            table.add_row(escape(r.node), r.op_type, r.kind, f"{r.peak:.3g}", escape(r.detail),
                          escape(f"{r.hazard}: {r.rewrite}" if r.rewrite else "none known"))
        return table


def _is_package(model) -> bool:
    if isinstance(model, ct.models.MLModel):
        return True
    return isinstance(model, (str, Path)) and Path(model).suffix in (".mlpackage", ".mlmodel")


def _label(model) -> str:
    if isinstance(model, (str, Path)):
        return Path(model).name
    if isinstance(model, onnx.ModelProto):
        return model.graph.name or "model"
    return "model"


class _Namer:
    """Names a MIL op by the ONNX node it computes."""

    def __init__(self, mlmodel, graph):
        from ..convert.pipeline import base_name, debug_handle, read_name_map

        self.graph = graph
        self.base = base_name
        self.handles: dict[str, int] = {}
        final = getattr(mlmodel, "_mil_program", None)
        if final is not None:
            for op in hazards_mod.mil_ops(final):
                h = debug_handle(op)
                if h is not None:
                    self.handles.update({v.name: h for v in op.outputs})
        self.tensor_of: dict[str, str] = {}
        try:
            tensors = read_name_map(mlmodel).get("tensors", {})
        except ValueError:
            tensors = {}
        for onnx_name, mil_name in tensors.items():
            if mil_name:
                self.tensor_of.setdefault(mil_name, onnx_name)
                self.tensor_of.setdefault(self.base(mil_name), onnx_name)
        self.producer = ({o: n for n in graph.nodes for o in n.outputs} if graph is not None else {})

    def __call__(self, op) -> tuple[str, str]:
        for v in op.outputs:
            h = self.handles.get(v.name)
            if h is not None and self.graph is not None and h < len(self.graph.nodes):
                node = self.graph.nodes[h]
                return node.name, node.op_type
        for v in op.outputs:
            tensor = self.tensor_of.get(v.name) or self.tensor_of.get(self.base(v.name))
            if tensor is not None:
                node = self.producer.get(tensor)
                return (node.name, node.op_type) if node is not None else (tensor, f"mil:{op.op_type}")
        return op.name, f"mil:{op.op_type}"


def _how(rewrite, config, node: str) -> str:
    """What avoided a hazard at ``node``: the lowering variant used there, or the rewrite."""
    if rewrite is None:
        return "absent from the emitted program"
    if rewrite.lowering is not None and config is not None:
        return f"lowering.{rewrite.lowering}={config.lowering(rewrite.lowering, node)}"
    return str(rewrite)


def lint_built(mlmodel, graph=None, label: str = "model") -> LintReport:
    """Lint a model built by onnx2mil (MLModel or .mlpackage path); ``graph`` (a loader.LoadedGraph of
    the ONNX model it was built from) names nodes and lists the sites the build rewrote away."""
    from ..convert.config import Config
    from .validate import stored_config

    mlmodel = pipeline_mod.open_model(mlmodel)
    prog = pipeline_mod.load_saved_program(mlmodel)
    stored = stored_config(mlmodel)
    config = Config(stored) if stored is not None else None
    try:
        precision = pipeline_mod.read_name_map(mlmodel).get("precision")
    except ValueError:
        precision = None
    name = _Namer(mlmodel, graph)
    report = LintReport(model=label, precision=precision, applied=hazards_mod.applied(mlmodel))
    for hazard in hazards_mod.HAZARDS:
        ref = hazard.references[0]
        present: dict[str, Finding] = {}
        for op in hazard.mil_pattern(prog) if hazard.mil_pattern else []:
            node, op_type = name(op)
            present.setdefault(node, Finding(hazard.key, node, op_type, False, "", hazard.severity,
                                             list(hazard.compute_units), ref, mil_op=op.name))
        report.findings.extend(present.values())
        if graph is None or hazard.onnx_pattern is None:
            continue
        for node in hazard.onnx_pattern(graph):
            if node.name in present:
                continue
            if hazard.mil_pattern is None:
                mitigated = hazard.rewrite is not None and config is not None and \
                    hazard.rewrite.applied(config, node.name)
            else:
                mitigated = True
            how = _how(hazard.rewrite, config, node.name) if mitigated else ""
            report.findings.append(Finding(hazard.key, node.name, node.op_type, mitigated, how, hazard.severity,
                                           list(hazard.compute_units), ref))
    return report


def lint(model: Union[str, Path, onnx.ModelProto, ct.models.MLModel], *, source=None, check_fp16_range: bool = False,
         feeds=None, **build_options) -> LintReport:
    """Known CoreML / Neural Engine hazards in ``model``.

    ``model``: an ONNX model (path or ModelProto), built here with ``build_options`` (those of
    ``build_coreml``: ``compute_precision``, ``config``, ``minimum_deployment_target``, ``inputs``…),
    or an ``.mlpackage`` / MLModel built by onnx2mil; ``source`` is then the ONNX model it was built
    from (optional: it names the nodes and lists the sites the build rewrote away).
    ``check_fp16_range``: also run :func:`fp16_range` on ``feeds`` (ONNX models only).
    """
    from ..convert.build import build_coreml
    from ..convert.loader import load_graph

    if _is_package(model):
        if check_fp16_range:
            raise LintInputError("the fp16 range analysis builds the ONNX model at fp32: give the .onnx, not a package")
        if build_options:
            raise LintInputError(f"build options {sorted(build_options)} apply to an ONNX model, not to a built "
                                 "package")
        if isinstance(model, (str, Path)) and not Path(model).exists():
            raise LintInputError(f"{model}: no such model")
        mlmodel = pipeline_mod.open_model(model)
        if pipeline_mod.META_NAME_MAP not in mlmodel.user_defined_metadata:
            raise LintInputError(f"{_label(model)} was not built by onnx2mil (no name map in its metadata)")
        graph = load_graph(source) if source is not None else None
        return lint_built(mlmodel, graph, _label(model))
    if isinstance(model, (str, Path)) and not Path(model).is_file():
        raise LintInputError(f"{model}: no such ONNX file")
    mlmodel = build_coreml(model, **build_options)
    report = lint_built(mlmodel, load_graph(model), _label(model))
    if check_fp16_range:
        options = {k: v for k, v in build_options.items() if k != "compute_precision"}
        report.fp16_range = fp16_range(model, feeds, **options)
    return report


# ---- fp16 range analysis -------------------------------------------------------------------------

FP16_MAX = 65504.0
FP16_RANGE_REFERENCE = "https://github.com/apple/coremltools/issues/2110"
_F32_MAX = float(__import__("numpy").finfo("float32").max)
# Fused ops that square their input internally: what the square reaches is not a var of the program.
_SQUARING = {"layer_norm": "(x - mean)^2", "instance_norm": "(x - mean)^2", "l2_norm": "x^2",
             "reduce_l2_norm": "x^2", "reduce_sum_square": "x^2"}


@dataclass
class RangeFinding:
    node: str
    op_type: str
    var: str               # the MIL var (or, for an intermediate, the op) whose values leave fp16's range
    peak: float            # max |value| in fp32 (of the intermediate for "intermediate")
    kind: str              # "output" | "intermediate"
    detail: str
    hazard: str = ""       # the hazards.HAZARDS entry it is, when one is known
    rewrite: str = ""      # the config that avoids it, when onnx2mil has one


def _squared_peak(op, values) -> float:
    import numpy as np

    x = values.get(op.x.name)
    if x is None:
        return 0.0
    x = np.asarray(x, np.float64)
    if _SQUARING[op.op_type].startswith("(x - mean)"):
        if op.op_type == "layer_norm" and op.axes is not None:
            axes = tuple(int(a) % x.ndim for a in op.axes.val)
        else:
            axes = tuple(range(2, x.ndim))
        x = x - x.mean(axis=axes, keepdims=True)
    return float(np.max(x * x)) if x.size else 0.0


def _range_hazard(mil_op: str, op_type: str, node: str) -> tuple[str, str]:
    """The data-dependent hazard (``Hazard.range_ops``) a fused op's overflow is, and the config
    that avoids it at ``node`` when onnx2mil has a rewrite for that ONNX op."""
    from ..convert.config import LOWERING_SITES

    for hazard in hazards_mod.HAZARDS:
        if mil_op in hazard.range_ops:
            rw = hazard.rewrite
            if rw is None or rw.lowering is None or op_type not in LOWERING_SITES[rw.lowering][0]:
                return hazard.key, ""
            return hazard.key, f"node_lowering: {{{node}: {{{rw.lowering}: {rw.variants[0]}}}}}"
    return "", ""


def fp16_range(model, feeds=None, *, seed: int = 0, **build_options) -> list[RangeFinding]:
    """Where an fp16 run — any fp16 build, and every run on the Neural Engine, which computes in fp16
    whatever the declared precision — would leave fp16's range: ``model`` (an ONNX model) is built
    at fp32 with ``build_options`` and run on the interpreter on ``feeds`` (arrays, shapes or an
    .npz keyed by ONNX input name; generated and seeded when missing, as ``validate`` does).
    Reports every op output whose finite values exceed 65504 (values already at float32's limit or
    infinite are masks and are skipped) and every fused norm whose internal square does, each named
    by its ONNX node."""
    import numpy as np

    from ..convert.build import build_coreml
    from ..convert.loader import load_graph, read_model
    from ..runtime.predict import predict
    from .reference import make_inputs

    if build_options.get("compute_precision") not in (None, "fp32"):
        raise LintInputError("fp16 range analysis builds at fp32: do not pass compute_precision")
    build_options = {k: v for k, v in build_options.items() if k != "compute_precision"}
    proto = read_model(model)
    feeds = make_inputs(proto, feeds, seed)
    mlmodel = build_coreml(proto, compute_precision="fp32", **build_options)
    values = predict(mlmodel, feeds, capture=True)["tensors"]
    name = _Namer(mlmodel, load_graph(proto))
    found: list[RangeFinding] = []
    for op in hazards_mod.mil_ops(pipeline_mod.load_saved_program(mlmodel)):
        if op.op_type == "const":
            continue
        node, op_type = name(op)
        for v in op.outputs:
            value = values.get(v.name)
            if value is None or np.asarray(value).dtype.kind != "f":
                continue
            finite = np.abs(np.asarray(value, np.float64))
            finite = finite[np.isfinite(finite) & (finite < _F32_MAX)]
            peak = float(finite.max()) if finite.size else 0.0
            if peak > FP16_MAX:
                found.append(RangeFinding(node, op_type, v.name, peak, "output",
                                          f"{op.op_type} output reaches {peak:.3g} > fp16 max {FP16_MAX:g}"))
        if op.op_type in _SQUARING:
            peak = _squared_peak(op, values)
            if peak > FP16_MAX:
                found.append(RangeFinding(node, op_type, op.name, peak, "intermediate",
                                          f"{op.op_type}'s {_SQUARING[op.op_type]} reaches {peak:.3g} > fp16 max "
                                          f"{FP16_MAX:g}", *_range_hazard(op.op_type, op_type, node)))
    return found
