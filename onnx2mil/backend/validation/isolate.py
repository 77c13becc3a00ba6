"""``isolate``: cut one node out of a model with its real inputs and run it through every lowering
variant on every runtime, to tell a converter bug from a runtime (device) bug.

The bundle written to ``out_dir``: ``node.onnx`` (the single node, constant inputs as
initializers), ``inputs.npz`` and ``expected.npz`` (onnxruntime on the full model), one
``<variant>.<precision>.mlpackage`` per lowering variant and precision, ``matrix.json`` and a
``README.md`` summary.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper

from ...errors import Onnx2MilError, RuntimeUnavailableError, ValidationInputError
from ..convert import pipeline as pipeline_mod
from ..convert.config import LOWERING_SITES, LOWERINGS, Config
from ..runtime import coreml
from ..runtime.coreml import COMPUTE_UNITS
from ..runtime.predict import ANE_EMULATION
from ..convert.loader import read_model
from .compare import compare
from .reference import make_inputs, run_reference, topological_nodes
from .validate import run_coreml_side

DEFAULT_VARIANT = "default"


def runtime_label(name: str) -> str:
    return f"{name} (emulation)" if name == ANE_EMULATION else name


def default_runtimes() -> list[str]:
    """The interpreter at fp32 and fp16; on macOS also CoreML on each compute-unit choice."""
    names = ["mil-fp32", "mil-fp16"]
    if coreml.available() is None:
        names += [f"coreml-{u}" for u in COMPUTE_UNITS]
    return names


def parse_runtime(name: str) -> tuple[str, str, Optional[str]]:
    """'mil-fp32' -> ("mil", "fp32", None); 'coreml-CPU_AND_NE' -> ("coreml", "fp16", "CPU_AND_NE")."""
    kind, _, rest = name.partition("-")
    if name == ANE_EMULATION:  # the Neural Engine emulated on the interpreter, on fp16 builds
        return ANE_EMULATION, "fp16", None
    if kind == "mil" and rest in ("fp32", "fp16"):
        return "mil", rest, None
    if kind == "coreml" and rest in COMPUTE_UNITS:
        if coreml.available():
            raise RuntimeUnavailableError(f"runtime '{name}': {coreml.available()}")
        return "coreml", "fp16", rest
    raise ValidationInputError(f"unknown runtime '{name}': use mil-fp32, mil-fp16, {ANE_EMULATION} (emulation) or "
                               f"coreml-{{{','.join(COMPUTE_UNITS)}}}")


@dataclass
class Cell:
    """One variant on one runtime: the worst output's metrics against onnxruntime."""

    variant: str
    runtime: str
    status: str               # "pass" | "fail" | "error"
    max_abs_err: Optional[float] = None
    rel_to_max: Optional[float] = None
    cosine: Optional[float] = None
    snr_db: Optional[float] = None
    reason: str = ""


@dataclass
class IsolationResult:
    node: str
    op_type: str
    out_dir: Path
    variants: list
    runtimes: list
    cells: list = field(default_factory=list)
    lowering_key: Optional[str] = None

    def cell(self, variant: str, runtime: str) -> Cell:
        for c in self.cells:
            if c.variant == variant and c.runtime == runtime:
                return c
        raise KeyError((variant, runtime))

    @property
    def matrix(self) -> dict:
        """{variant: {runtime: status}}."""
        return {v: {r: self.cell(v, r).status for r in self.runtimes} for v in self.variants}

    @property
    def ok(self) -> bool:
        return all(c.status == "pass" for c in self.cells)

    def failing_variants(self) -> list[str]:
        return [v for v in self.variants if any(self.cell(v, r).status != "pass" for r in self.runtimes)]

    def to_dict(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "out_dir": str(self.out_dir),
                "lowering_key": self.lowering_key, "variants": self.variants, "runtimes": self.runtimes,
                "ok": self.ok, "matrix": self.matrix, "cells": [asdict(c) for c in self.cells]}

    def to_json(self, indent: int = 2) -> str:
        from .report import json_finite

        return json.dumps(json_finite(self.to_dict()), indent=indent)

    def rich_table(self):
        from rich.table import Table

        table = Table(title=f"isolate '{self.node}' ({self.op_type}): variant x runtime vs onnxruntime")
        table.add_column("variant")
        for r in self.runtimes:
            table.add_column(runtime_label(r), justify="right")
        for v in self.variants:
            table.add_row(v, *(_cell_text(self.cell(v, r), rich=True) for r in self.runtimes))
        return table

    def print(self, console=None) -> None:
        from rich.console import Console

        (console or Console()).print(self.rich_table())


def _cell_text(c: Cell, rich: bool = False) -> str:
    if c.status == "error":
        return "[red]error[/red]" if rich else "error"
    text = f"{c.status} {c.rel_to_max:.2g}" if c.rel_to_max is not None else c.status
    if rich:
        return f"[green]{text}[/green]" if c.status == "pass" else f"[bold red]{text}[/bold red]"
    return text


def _find_node(model: onnx.ModelProto, node: str):
    for info in topological_nodes(model):
        if info.name == node:
            return info
    for info in topological_nodes(model):
        if node in info.outputs:
            return info
    names = [n.name for n in topological_nodes(model)]
    hint = f" (nodes: {', '.join(names[:8])}{', ...' if len(names) > 8 else ''})"
    raise ValidationInputError(f"no node named '{node}' (or producing a tensor of that name) in the model{hint}")


def _constant_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors that do not depend on a graph input: initializers and what is computed from them."""
    const = {t.name for t in model.graph.initializer}
    for info in topological_nodes(model):
        if all(i in const for i in info.inputs if i):
            const.update(info.outputs)
    return const


def single_node_model(model: onnx.ModelProto, node_name: str, values: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """``node_name`` alone: constant inputs become initializers, the others graph inputs."""
    proto = next(info.proto for info in topological_nodes(model) if info.name == node_name)
    constants = _constant_tensors(model)
    graph_inputs, inits = [], []
    for name in dict.fromkeys(i for i in proto.input if i):
        value = np.asarray(values[name])
        if name in constants:
            inits.append(numpy_helper.from_array(value, name))
        else:
            graph_inputs.append(oh.make_tensor_value_info(name, oh.np_dtype_to_tensor_dtype(value.dtype), value.shape))
    outputs = [oh.make_tensor_value_info(o, oh.np_dtype_to_tensor_dtype(values[o].dtype), values[o].shape)
               for o in proto.output if o]
    node = onnx.NodeProto()
    node.CopyFrom(proto)
    node.name = node_name
    graph = oh.make_graph([node], f"isolated_{node_name}", graph_inputs, outputs, inits)
    single = oh.make_model(graph, opset_imports=list(model.opset_import))
    single.ir_version = model.ir_version
    return single


def lowering_variants(op_type: str, input_rank: Optional[int]) -> tuple[Optional[str], tuple[str, ...]]:
    for key, (site_ops, site_rank) in LOWERING_SITES.items():
        if op_type in site_ops and site_rank in (None, input_rank):
            return key, LOWERINGS[key]
    return None, (DEFAULT_VARIANT,)


def isolate(
    onnx_model,
    node: str,
    out_dir,
    *,
    inputs=None,
    variants: Optional[Sequence[str]] = None,
    runtimes: Optional[Sequence[str]] = None,
    config=None,
    seed: int = 0,
    progress: Optional[Callable[[str], None]] = None,
) -> IsolationResult:
    """Write the bundle for ``node`` (a node name, or the name of a tensor it produces) into
    ``out_dir`` and run the variant x runtime matrix; returns it (see :class:`IsolationResult`).

    ``variants``: lowering variants to build (default: every variant the op has, e.g. as_2d /
    native / split_bias for a 1-D ConvTranspose; "default" for other ops). ``runtimes``:
    "mil-fp32", "mil-fp16", "mil-ane" (the Neural Engine *emulated* on the interpreter: fp16 compute
    and the rank-3 conv_transpose bias hazard, see ``ane_emulation``; opt-in), "coreml-<COMPUTE_UNITS>"
    (default: :func:`default_runtimes`).
    ``config``: base build config; the variant is set per node on top of it.
    """
    from ..convert.build import build_coreml

    say = progress or (lambda _msg: None)
    model = read_model(onnx_model)
    info = _find_node(model, node)
    runtime_names = list(runtimes) if runtimes else default_runtimes()
    parsed = {r: parse_runtime(r) for r in runtime_names}
    feeds = make_inputs(model, inputs, seed)

    say("running onnxruntime on the full model")
    values = {**feeds, **run_reference(model, feeds)}
    values.update({t.name: numpy_helper.to_array(t) for t in model.graph.initializer})
    missing = [o for o in info.outputs if o not in values]
    if missing:
        raise ValidationInputError(f"onnxruntime gave no value for {missing} (shape inference could not type them)")
    single = single_node_model(model, info.name, values)
    rank = np.ndim(values[info.inputs[0]]) if info.inputs and info.inputs[0] in values else None
    key, known = lowering_variants(info.op_type, rank)
    chosen = list(variants) if variants else list(known)
    bad = [v for v in chosen if v not in known]
    if bad:
        raise ValidationInputError(f"variants {bad} do not apply to node '{info.name}' ({info.op_type}); "
                                   f"choose from {', '.join(known)}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(single, str(out / "node.onnx"))
    node_inputs = {i.name: values[i.name] for i in single.graph.input}
    expected = {o: values[o] for o in info.outputs}
    np.savez(out / "inputs.npz", **node_inputs)
    np.savez(out / "expected.npz", **expected)

    base = Config.load(config)
    result = IsolationResult(info.name, info.op_type, out, chosen, runtime_names, lowering_key=key)
    for variant in chosen:
        data = json.loads(json.dumps(base.data))
        # the standalone model has this node only: per-node lowerings of the others do not apply
        data["node_lowering"] = {n: v for n, v in data["node_lowering"].items() if n == info.name}
        if key is not None:
            data["node_lowering"][info.name] = {key: variant}
        packages: dict[str, object] = {}
        for precision in dict.fromkeys(p for _, p, _ in parsed.values()):
            say(f"building variant {variant} ({precision})")
            try:
                ml = build_coreml(single, compute_precision=precision, config=data)
                pipeline_mod.save(ml, out / f"{variant}.{precision}.mlpackage")
                packages[precision] = ml
            except Onnx2MilError as e:
                packages[precision] = e
        for rname, (kind, precision, units) in parsed.items():
            built = packages[precision]
            if isinstance(built, Exception):
                result.cells.append(Cell(variant, rname, "error", reason=f"build failed: {built}"))
                continue
            say(f"running variant {variant} on {rname}")
            result.cells.append(_run_cell(built, variant, rname, kind, units, node_inputs, expected,
                                          base.tolerance(precision)))
    (out / "matrix.json").write_text(result.to_json())
    (out / "README.md").write_text(_readme(result, single, node_inputs, expected))
    return result


def _run_cell(mlmodel, variant, rname, kind, units, feeds, expected, tolerance) -> Cell:
    try:
        outputs, _ = run_coreml_side(mlmodel, feeds, runtime=kind, compute_units=units)
    except Onnx2MilError as e:
        return Cell(variant, rname, "error", reason=str(e))
    missing = [name for name in expected if name not in outputs]
    if missing:
        return Cell(variant, rname, "error", reason=f"outputs {missing} missing from the run")
    results = [compare(ref, outputs[name], tolerance) for name, ref in expected.items()]
    worst = max(results, key=lambda m: (m["status"] == "fail", m.get("rel_to_max") or 0.0))
    return Cell(variant, rname, worst["status"], worst.get("max_abs_err"), worst.get("rel_to_max"),
                worst.get("cosine"), worst.get("snr_db"), worst["reason"])


def _readme(result: IsolationResult, single: onnx.ModelProto, inputs: Mapping, expected: Mapping) -> str:
    node = single.graph.node[0]
    attrs = ", ".join(f"{a.name}={oh.get_attribute_value(a)!r}" for a in node.attribute) or "(none)"
    header = "| variant | " + " | ".join(runtime_label(r) for r in result.runtimes) + " |"
    rule = "|---|" + "---|" * len(result.runtimes)
    rows = [f"| {v} | " + " | ".join(_cell_text(result.cell(v, r)) for r in result.runtimes) + " |"
            for v in result.variants]
    reasons = [f"- {c.variant} on {c.runtime}: {c.reason}" for c in result.cells if c.status != "pass"]
    lowering = (f"Variants set per node with config `node_lowering: {{{result.node}: "
                f"{{{result.lowering_key}: <variant>}}}}`." if result.lowering_key else
                "This op has one lowering (\"default\").")
    return "\n".join([
        f"# Isolated node `{result.node}` ({result.op_type})",
        "",
        f"Attributes: {attrs}",
        "",
        "Inputs (captured from onnxruntime on the full model): "
        + ", ".join(f"`{k}` {list(v.shape)} {v.dtype}" for k, v in inputs.items()),
        "",
        "Expected outputs: " + ", ".join(f"`{k}` {list(v.shape)} {v.dtype}" for k, v in expected.items()),
        "",
        lowering,
        "",
        "## Matrix (status, max abs error / max |reference|)",
        "",
        header, rule, *rows,
        "",
        *(["## Failures", "", *reasons, ""] if reasons else []),
        "## Files",
        "",
        "- `node.onnx`: the node alone; constant inputs are initializers.",
        "- `inputs.npz`, `expected.npz`: its inputs and onnxruntime's outputs.",
        "- `<variant>.<precision>.mlpackage`: one CoreML package per lowering variant and precision.",
        "- `matrix.json`: the matrix above with every metric.",
        "",
        "Reproduce one cell: `onnx2mil run <variant>.fp16.mlpackage --inputs inputs.npz -o out.npz` and "
        "compare `out.npz` with `expected.npz`.",
        "",
    ])
