"""The one module that owns coremltools' pass pipeline, ``ct.convert``, saving and loading back.

coremltools' default pipeline rewrites what our builders chose on purpose, so we remove:
- ``common::add_conv_transpose_output_shape``: adds ``output_shape`` to conv_transpose, which CoreML
  CPU and ANE then disagree on (coremltools#2281);
- ``common::compose_conv1d``: folds an expand_dims -> conv -> squeeze lowering back to rank-3.
The pipeline used is recorded in the model's metadata.
"""
from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
from unittest import mock
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

import coremltools as ct
from coremltools.converters.mil.frontend.milproto import load as milproto_load
from coremltools.converters.mil.mil import Program
from coremltools.converters.mil.mil.passes import pass_pipeline as _pass_pipeline_module
from coremltools.converters.mil.mil.scope import ScopeSource

HAZARDOUS_PASSES = ("common::add_conv_transpose_output_shape", "common::compose_conv1d")

META_NAME_MAP = "onnx2mil.name_map"
META_PIPELINE = "onnx2mil.pass_pipeline"
META_CONFIG = "onnx2mil.config"
META_VERSION = "onnx2mil.version"


def removed_passes(config) -> tuple[str, ...]:
    """Passes that would undo a lowering the config asks for."""
    removed = HAZARDOUS_PASSES
    uses_split_bias = config.lowering("conv_transpose_1d") == "split_bias" or any(
        v.get("conv_transpose_1d") == "split_bias" for v in config.data["node_lowering"].values())
    if uses_split_bias:  # fuse_conv_bias would fold the separate add back into the conv_transpose
        removed += ("common::fuse_conv_bias",)
    return removed


def pass_pipeline(config, base: Optional[ct.PassPipeline] = None) -> ct.PassPipeline:
    """``base`` (coremltools' DEFAULT if None) without the passes that undo our lowerings."""
    pipeline = ct.PassPipeline(pass_names=list((base or ct.PassPipeline.DEFAULT).passes),
                               pipeline_name=getattr(base, "_pipeline_name", "default") if base else "default")
    if base is not None:
        pipeline.set_options_by_another_pipeline(base)
    pipeline.remove_passes([p for p in removed_passes(config) if p in pipeline.passes])
    return pipeline


@contextlib.contextmanager
def quiet(verbose: bool = False):
    """Silence coremltools' pass progress bars and info logs unless ``verbose``."""
    if verbose:
        yield
        return
    log = logging.getLogger("coremltools")
    old_level = log.level
    log.setLevel(logging.ERROR)
    # tqdm reads TQDM_DISABLE at import time, so the progress bar is replaced where it is used.
    with mock.patch.object(_pass_pipeline_module, "tqdm", lambda iterable, **_: iterable):
        try:
            yield
        finally:
            log.setLevel(old_level)


@contextlib.contextmanager
def _validate_once():
    """coremltools re-validates the whole program after each of its ~100 passes (half the
    conversion time of a 1k-node model); validate once, after the last pass, instead."""
    real = Program.validate
    last: list = []
    with mock.patch.object(Program, "validate", lambda self, *a, **k: last.append(self)):
        yield
    for prog in {id(p): p for p in last}.values():
        real(prog, check_essential_scope=True)


def convert(prog: Program, *, target, compute_precision, compute_units, pipeline: ct.PassPipeline,
            inputs=None, verbose: bool = False) -> ct.models.MLModel:
    # ct.convert ends with a full gc.collect(), whose cost grows with the caller's heap (0.25 s per
    # conversion in a test process); objects that exist before the call are frozen out of it.
    gc.freeze()
    try:
        with quiet(verbose), _validate_once():
            return ct.convert(
                prog,
                convert_to="mlprogram",
                minimum_deployment_target=target,
                compute_precision=compute_precision,
                compute_units=compute_units,
                pass_pipeline=pipeline,
                inputs=inputs,
            )
    finally:
        gc.unfreeze()


def final_program(mlmodel: ct.models.MLModel) -> Program:
    """The program as it is stored: after every pass, i.e. what CoreML receives."""
    prog = getattr(mlmodel, "_mil_program", None)
    return prog if prog is not None else load_saved_program(mlmodel)


# Passes that keep a var's value while replacing or renaming it: not worth naming in a report.
_BOOKKEEPING_PASSES = frozenset({"add_fp16_cast", "topological_reorder", "dead_code_elimination",
                                 "const_elimination", "noop_elimination", "const_deduplication"})
# Renamings of a var whose value they keep: the fp16 pass (``x`` -> ``x_cast_fp16``, casts
# ``x_to_fp16``/``x_to_fp32``) and divide_to_multiply (``x`` -> ``_inversed_x``).
_SAME_VALUE_SUFFIXES = ("_cast_fp16", "_cast_fp32", "_to_fp16", "_to_fp32")
_SAME_VALUE_PREFIXES = ("_inversed_",)


def _base_name(name: str) -> str:
    """``name`` without the renamings of value-keeping passes."""
    changed = True
    while changed:
        changed = False
        for suffix in _SAME_VALUE_SUFFIXES:
            if name.endswith(suffix):
                name, changed = name[: -len(suffix)], True
        for prefix in _SAME_VALUE_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def debug_handle(op) -> Optional[int]:
    """The index of the top-level ONNX node ``op`` computes (see ``graph.node_scope``), if any."""
    handle = op.scopes.get(ScopeSource.EXIR_DEBUG_HANDLE) if op is not None else None
    return handle[0] if handle else None


def resolve_names(prog: Program, pre_pass: dict[str, str], producers: dict[str, int]) -> tuple[dict, dict]:
    """Which var holds each ONNX tensor after the passes: ``({onnx: var name or None}, {onnx: why
    none})``.

    A name alone proves nothing: passes create auto-named vars (``transpose_1``, ``add_3``) that
    collide with exporter names, and reuse names for other values. A var holds ONNX tensor ``t``
    only if its op carries the debug handle of ``t``'s producing node (coremltools copies a
    replaced var's scopes onto its replacement) AND its name is ``t``'s pre-pass name up to the
    renamings of value-keeping passes. ``producers``: ONNX tensor -> top-level node index.
    """
    by_handle: dict[int, list] = {}
    for op in _all_ops(prog.functions["main"]):
        handle = debug_handle(op)
        if handle is not None:
            by_handle.setdefault(handle, []).append(op)
    inputs = set(prog.functions["main"].inputs)
    tensors: dict[str, Optional[str]] = {}
    why: dict[str, str] = {}
    for onnx_name, mil_name in pre_pass.items():
        if onnx_name not in producers:
            continue
        if mil_name in inputs:  # an identity-like node bound to a graph input
            tensors[onnx_name] = mil_name
            continue
        ops = by_handle.get(producers[onnx_name], [])
        held = [v.name for op in ops for v in op.outputs if _base_name(v.name) == mil_name]
        # the var of the original name first, then its fp16 form
        held.sort(key=lambda n: (n != mil_name, len(n)))
        tensors[onnx_name] = held[0] if held else None
        if not held:
            passes = sorted({p for op in ops for p in op.scopes.get(ScopeSource.COREMLTOOLS_GRAPH_PASS, [])}
                            - _BOOKKEEPING_PASSES)
            why[onnx_name] = (f"rewritten by {', '.join(passes)}: no var holds it" if passes else
                              "fused away by the passes: no var holds it")
    return tensors, why


def _all_ops(block):
    for op in block.operations:
        yield op
        for b in op.blocks:
            yield from _all_ops(b)


def write_metadata(mlmodel: ct.models.MLModel, *, name_map: dict, pipeline: ct.PassPipeline,
                   config, version: str) -> None:
    meta = mlmodel.user_defined_metadata
    meta[META_NAME_MAP] = json.dumps(name_map, separators=(",", ":"))
    meta[META_PIPELINE] = json.dumps({"passes": list(pipeline.passes), "removed": list(removed_passes(config))})
    meta[META_CONFIG] = json.dumps(config.data, separators=(",", ":"))
    meta[META_VERSION] = version


def read_name_map(mlmodel: ct.models.MLModel) -> dict:
    """{"inputs": {onnx: mil}, "outputs": {onnx: mil}, "tensors": {onnx: mil or None}}."""
    if META_NAME_MAP not in mlmodel.user_defined_metadata:
        raise ValueError("this model was not built by onnx2mil (no name map in its metadata)")
    return json.loads(mlmodel.user_defined_metadata[META_NAME_MAP])


def read_pipeline(mlmodel: ct.models.MLModel) -> dict:
    return json.loads(mlmodel.user_defined_metadata[META_PIPELINE])


def open_model(model: Union[str, Path, ct.models.MLModel]) -> ct.models.MLModel:
    if isinstance(model, ct.models.MLModel):
        return model
    return ct.models.MLModel(str(model), skip_model_load=True)


def load_saved_program(model: Union[str, Path, ct.models.MLModel]) -> Program:
    """Read the ML Program back from a .mlpackage (or an MLModel's spec and weights)."""
    mlmodel = open_model(model)
    spec = mlmodel.get_spec()
    return milproto_load.load(spec, specification_version=spec.specificationVersion,
                              file_weights_dir=mlmodel.weights_dir)


def save(mlmodel: ct.models.MLModel, path: Union[str, Path]) -> Path:
    """Save to a temporary folder beside ``path`` and rename: a failure leaves nothing behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = tmp / path.name
        mlmodel.save(str(staged))
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(staged, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
