"""The one module that owns coremltools' pass pipeline, ``ct.convert``, saving and loading back.

coremltools' default pipeline rewrites what our builders chose on purpose, so we remove:
- ``common::add_conv_transpose_output_shape``: adds ``output_shape`` to conv_transpose, which CoreML
  CPU and ANE then disagree on (coremltools#2281);
- ``common::compose_conv1d``: folds an expand_dims -> conv -> squeeze lowering back to rank-3.
The pipeline used is recorded in the model's metadata.

coremltools keeps process-wide state (the MIL builder's current block, its logger, the pass
pipeline's progress bar): every use of it by onnx2mil holds ``COREMLTOOLS_LOCK``, so builds from
several threads run one at a time, and whatever a call changes is restored before the lock is
released.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import gc
import hashlib
import io
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import uuid
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Union

import coremltools as ct
import numpy as np
from coremltools.converters.mil.converter import _reset_conversion_state
from coremltools.converters.mil.frontend.milproto import load as milproto_load
from coremltools.converters.mil.mil import Program
from coremltools.converters.mil.mil.passes import pass_pipeline as _pass_pipeline_module
from coremltools.converters.mil.mil.passes.defs.quantization import FP16ComputePrecision
from coremltools.converters.mil.mil.passes.graph_pass import PassOption
from coremltools.converters.mil.mil.scope import ScopeSource
from coremltools.models import model as _ct_model_module
from coremltools.models import utils as _ct_model_utils
from coremltools.proto import Model_pb2
from google.protobuf.message import DecodeError

from .fp16_weights import FP16_MAX
from .passes import (FP16_CAST, FP16_PASS_INFINITY, PASS_LOG, REPLACED, passes_streamlined, type_queries_memoized,
                     with_own_passes)
from ...errors import ConversionError, Onnx2MilError, PackageError, PrecisionWarning, SaveError

COREMLTOOLS_LOCK = threading.RLock()

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
    pipeline = ct.PassPipeline(pass_names=with_own_passes(list((base or ct.PassPipeline.DEFAULT).passes)),
                               pipeline_name=getattr(base, "_pipeline_name", "default") if base else "default")
    if base is not None:
        pipeline.set_options_by_another_pipeline(base)
        for theirs, ours in REPLACED.items():  # options given for a pass we replace apply to ours
            if theirs in base._pass_options:
                pipeline._pass_options[ours] = base._pass_options[theirs]
    pipeline.remove_passes([p for p in removed_passes(config) if p in pipeline.passes])
    return pipeline


@contextlib.contextmanager
def coremltools_session():
    """Hold ``COREMLTOOLS_LOCK`` for a whole build (emission and conversion), from coremltools' clean
    naming state: its builder numbers auto-named vars (``h_transpose_x_0``) with process-wide
    counters that only the end of ``ct.convert`` resets, so builds interleaved between emission and
    conversion, or a program loaded back in between, would name them differently."""
    with COREMLTOOLS_LOCK, type_queries_memoized():
        _reset_conversion_state()
        yield


def _no_progress(iterable, **_):
    return iterable


@contextlib.contextmanager
def quiet(verbose: bool = False):
    """Silence coremltools' pass progress bars and info logs unless ``verbose``; both are
    process-wide, so they are changed under ``COREMLTOOLS_LOCK`` and restored on the way out."""
    with COREMLTOOLS_LOCK:
        if verbose:
            yield
            return
        log = logging.getLogger("coremltools")
        old_level, old_tqdm = log.level, _pass_pipeline_module.tqdm
        log.setLevel(logging.ERROR)
        # tqdm reads TQDM_DISABLE at import time, so the progress bar is replaced where it is used.
        _pass_pipeline_module.tqdm = _no_progress
        try:
            yield
        finally:
            _pass_pipeline_module.tqdm = old_tqdm
            log.setLevel(old_level)


@contextlib.contextmanager
def _validate_once(prog: Program):
    """coremltools re-validates the whole program after each of its ~100 passes (half the
    conversion time of a 1k-node model); validate once, after the last pass, instead. Only this
    program's method is shadowed (an instance attribute), never the class's."""
    prog.validate = lambda *args, **kwargs: None
    try:
        yield
    finally:
        del prog.validate
    prog.validate(check_essential_scope=True)


# Where a package keeps its spec and weights (coremltools' layout: Data/com.apple.CoreML/...).
_PACKAGE_DATA = Path("Data") / _ct_model_utils._MLPACKAGE_AUTHOR_NAME
_PACKAGE_WEIGHTS = _PACKAGE_DATA / _ct_model_utils._WEIGHTS_DIR_NAME


@contextlib.contextmanager
def _weights_moved_into_package():
    """Within this thread's ``ct.convert``: the weight files are moved into the package, not copied.

    coremltools' ``mil_convert`` writes them into a temporary folder of its own, then
    ``_create_mlpackage`` copies that folder into the package (``ModelPackage.addItem``: 0.9 s for the
    115M BigVGAN's 464 MB) and deletes it. Here the package is created by coremltools' own function
    around an empty weights folder, then the files are renamed into it: the same package (its
    manifest names the folder, not the files), without the copy. Calls from other threads, and
    calls without a weights folder, go to coremltools' function unchanged (``MLModel(spec,
    weights_dir=...)`` must never lose a user's files)."""
    original = _ct_model_module._create_mlpackage
    owner = threading.get_ident()

    def create(proto_spec, weights_dir=None, package_path=None):
        if weights_dir is None or threading.get_ident() != owner:
            return original(proto_spec, weights_dir, package_path)
        with tempfile.TemporaryDirectory(prefix=f"{BUILD_PREFIX}{os.getpid()}-weights-") as empty:
            package = original(proto_spec, empty, package_path)
        target = Path(package) / _PACKAGE_WEIGHTS
        for entry in os.scandir(weights_dir):
            shutil.move(entry.path, target / entry.name)  # a rename on one filesystem
        return package

    _ct_model_module._create_mlpackage = create
    try:
        yield
    finally:
        _ct_model_module._create_mlpackage = original


def _converted(convert_in) -> ct.models.MLModel:
    """Run ``convert_in(package_dir)`` with a fresh onnx2mil package folder for the MLModel it
    returns (removed with the MLModel, or at once if the conversion fails); a coremltools error
    becomes a ConversionError."""
    package_dir = _build_package_dir()
    try:
        mlmodel = convert_in(package_dir)
    except BaseException as e:
        shutil.rmtree(package_dir, ignore_errors=True)
        if isinstance(e, Exception) and not isinstance(e, Onnx2MilError):
            raise ConversionError(f"coremltools could not convert the program: {type(e).__name__}: {e}") from e
        raise
    weakref.finalize(mlmodel, shutil.rmtree, package_dir, ignore_errors=True)
    return mlmodel


def convert(prog: Program, *, target, compute_precision, compute_units, pipeline: ct.PassPipeline,
            inputs=None, verbose: bool = False) -> ct.models.MLModel:
    """``ct.convert`` of a pymil program. The package it writes lives in onnx2mil's own temporary
    folder (see ``_build_package_dir``) and is removed when the MLModel is garbage collected."""

    # ct.convert removes, or gives an FP16ComputePrecision's op_selector to, coremltools' own fp16 pass only
    if isinstance(compute_precision, FP16ComputePrecision):
        if compute_precision.op_selector is not None:
            pipeline._pass_options[FP16_CAST] = [PassOption(option_name="op_selector",
                                                            option_val=compute_precision.op_selector)]
        compute_precision = ct.precision.FLOAT16  # the selector is ours now; ct.convert would set it on its pass
    elif compute_precision != ct.precision.FLOAT16:
        pipeline.remove_passes([FP16_CAST])

    def run(package_dir):
        with quiet(verbose):
            # ct.convert ends with a full gc.collect(), whose cost grows with the caller's heap (0.25 s
            # per conversion in a test process); objects that exist before the call are frozen out.
            gc.freeze()
            # coremltools casts fp32 constants >= 1e38 (``finfo.min`` attention masks) to fp16 infinity on
            # purpose and numpy warns "overflow encountered in cast" for each, anonymously; the build
            # names those nodes instead (``warn_fp16_overflow``). numpy's error state is thread-local.
            try:
                with _validate_once(prog), passes_streamlined(prog), np.errstate(over="ignore"), \
                        _weights_moved_into_package():
                    return ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=target,
                                      compute_precision=compute_precision, compute_units=compute_units,
                                      pass_pipeline=pipeline, inputs=inputs, package_dir=package_dir)
            finally:
                gc.unfreeze()

    return _converted(run)


def reconvert(mlmodel: ct.models.MLModel, passes: ct.PassPipeline) -> ct.models.MLModel:
    """``mlmodel``'s saved program through ``passes`` only (no default pipeline re-run, unlike
    coremltools' compression APIs), converted back with its description and metadata, in
    onnx2mil's temporary package folder, under the lock."""
    from coremltools.converters.mil.converter import mil_convert

    spec = mlmodel.get_spec()
    prog = load_saved_program(mlmodel)

    def run(package_dir):
        # the compression passes draw their own tqdm bar on stderr, whatever the log level
        with coremltools_session(), quiet(), contextlib.redirect_stderr(io.StringIO()), \
                _weights_moved_into_package():
            return mil_convert(prog, convert_from="milinternal", convert_to="mlprogram",
                               specification_version=spec.specificationVersion, compute_units=mlmodel.compute_unit,
                               model_description=spec.description, pass_pipeline=passes, skip_model_load=True,
                               package_dir=package_dir)

    return _converted(run)




def warn_fp16_overflow(nodes, constants) -> None:
    """Warn (``PrecisionWarning``), once per node, about float constants an fp16 build stores as
    ±inf: finite values of magnitude >= 1e38, which coremltools' fp16 pass casts to infinity
    (``FP16ComputePrecision.fp16_overflow``) — a fully masked softmax row then gives NaN."""
    for node in nodes:
        for name in dict.fromkeys(i for i in node.inputs if i in constants):
            value = constants[name]
            if value.dtype.kind != "f" or value.dtype.itemsize < 4 or not value.size:
                continue
            if -FP16_PASS_INFINITY < value.min() and value.max() < FP16_PASS_INFINITY:
                continue  # two reductions; NaN and ±inf compare False and take the masked check below
            finite = np.abs(value[np.isfinite(value)])
            if finite.size and finite.max() >= FP16_PASS_INFINITY:
                warnings.warn(
                    f"fp16: node '{node.name}' ({node.op_type}): constant '{name}' holds magnitudes up to "
                    f"{finite.max():.3g}, beyond fp16's {FP16_MAX:g}; the fp16 program stores them as ±inf",
                    PrecisionWarning, stacklevel=3)
                break


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


def base_name(name: str) -> str:
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


def resolve_names(prog: Program, pre_pass: dict[str, str], producers: dict[str, int],
                  consumers: Optional[dict[str, list]] = None) -> tuple[dict, dict]:
    """Which var holds each ONNX tensor after the passes: ``({onnx: var name or None}, {onnx: why
    none})``.

    A name alone proves nothing: passes create auto-named vars (``transpose_1``, ``add_3``) that
    collide with exporter names, and reuse names for other values. A var holds ONNX tensor ``t``
    only if its op carries the debug handle of ``t``'s producing node (coremltools copies a
    replaced var's scopes onto its replacement) AND its name is ``t``'s pre-pass name up to the
    renamings of value-keeping passes. ``producers``: ONNX tensor -> top-level node index;
    ``consumers``: ONNX tensor -> indexes of the nodes that read it (to name the pass that fused a
    tensor into its consumer).
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
        held = [v.name for op in ops for v in op.outputs if base_name(v.name) == mil_name]
        # the var of the original name first, then its fp16 form
        held.sort(key=lambda n: (n != mil_name, len(n)))
        tensors[onnx_name] = held[0] if held else None
        if not held:
            near = ops + [op for k in (consumers or {}).get(onnx_name, []) for op in by_handle.get(k, [])]
            passes = sorted({p for op in near for p in op.scopes.get(ScopeSource.COREMLTOOLS_GRAPH_PASS, [])}
                            - _BOOKKEEPING_PASSES)
            why[onnx_name] = (f"fused away by {', '.join(passes)}: no var holds it" if passes else
                              "fused away by the passes: no var holds it")
    return tensors, why


def _all_ops(block):
    for op in block.operations:
        yield op
        for b in op.blocks:
            yield from _all_ops(b)


def pass_runs(prog: Optional[Program]) -> dict:
    """What the gated runner (``passes.GATES``) did, for the metadata: ``"ran"``, every pass run in
    order as ``pipeline/pass`` (coremltools' main pipeline is "default", then "backend_mlprogram"),
    and ``"gated"``, ``{pipeline/pass: [runs skipped, why]}``. Empty for a program converted
    without the runner (or no program)."""
    log = getattr(prog, PASS_LOG, None)
    if log is None:
        return {}
    gated: dict = {}
    for pipe, name, why in log:
        if why is not None:
            entry = gated.setdefault(f"{pipe}/{name}", [0, why])
            entry[0] += 1
    return {"ran": [f"{pipe}/{name}" for pipe, name, why in log if why is None], "gated": gated}


def write_metadata(mlmodel: ct.models.MLModel, *, name_map: dict, pipeline: ct.PassPipeline,
                   config, version: str) -> None:
    meta = mlmodel.user_defined_metadata
    meta[META_NAME_MAP] = json.dumps(name_map, separators=(",", ":"))
    meta[META_PIPELINE] = json.dumps({"passes": list(pipeline.passes), "removed": list(removed_passes(config)),
                                      **pass_runs(getattr(mlmodel, "_mil_program", None))},
                                     separators=(",", ":"))
    meta[META_CONFIG] = json.dumps(config.data, separators=(",", ":"))
    meta[META_VERSION] = version


def read_name_map(mlmodel: ct.models.MLModel) -> dict:
    """{"inputs": {onnx: mil}, "outputs": {onnx: mil}, "tensors": {onnx: mil or None}}."""
    if META_NAME_MAP not in mlmodel.user_defined_metadata:
        raise PackageError("this model was not built by onnx2mil (no name map in its metadata)")
    return json.loads(mlmodel.user_defined_metadata[META_NAME_MAP])


def read_pipeline(mlmodel: ct.models.MLModel) -> dict:
    """``{"passes": the pipeline asked for, "removed": hazard passes taken out, "ran": passes run,
    "gated": passes skipped by their gate}`` (the last two from onnx2mil 2026-12 on)."""
    return json.loads(mlmodel.user_defined_metadata[META_PIPELINE])


def open_model(model: Union[str, Path, ct.models.MLModel]) -> ct.models.MLModel:
    if isinstance(model, ct.models.MLModel):
        return model
    path = Path(model)
    if not path.exists():
        raise PackageError(f"{path}: no such .mlpackage")
    try:
        return ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as e:  # noqa: BLE001 - coremltools raises bare Exception, OSError, DecodeError...
        raise PackageError(f"{path}: not a readable Core ML model ({type(e).__name__}: {e})") from e


def load_saved_program(model: Union[str, Path, ct.models.MLModel]) -> Program:
    """Read the ML Program back from a .mlpackage (or an MLModel's spec and weights)."""
    mlmodel = open_model(model)
    spec = mlmodel.get_spec()
    with COREMLTOOLS_LOCK:  # the milproto loader builds through the MIL builder's global block stack
        return milproto_load.load(spec, specification_version=spec.specificationVersion,
                                  file_weights_dir=mlmodel.weights_dir)


# ---- temporary packages --------------------------------------------------------------------------
# Every temporary folder onnx2mil creates carries its process id: a process killed with SIGKILL cannot
# clean up, so the next build (in the temporary folder) or save (beside the destination) removes the
# leftovers of processes that no longer exist.

BUILD_PREFIX = "onnx2mil-"
PACKAGE_SUFFIX = ".mlpackage"
_PREVIOUS = "previous" + PACKAGE_SUFFIX  # the replaced package, while a save without atomic swap runs


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _sweep_stale(folder: Path, prefix: str, destination: Optional[Path] = None) -> None:
    """Remove ``folder/<prefix><pid>-*`` left by processes that no longer run. A save staging folder
    that still holds the replaced package while the destination is missing (a save killed between
    its two renames, where the OS has no atomic swap) gives that package back first."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            match = pattern.match(entry.name)
            if not match or _alive(int(match.group(1))):
                continue
            previous = Path(entry.path) / _PREVIOUS
            if destination is not None and previous.is_dir() and not os.path.lexists(destination):
                os.rename(previous, destination)
            shutil.rmtree(entry.path, ignore_errors=True)


def _build_package_dir() -> str:
    """An empty folder for the package ct.convert writes (instead of coremltools' own temporary
    package, which stays in TMPDIR until the process exits, and forever if it is killed)."""
    tmp = Path(tempfile.gettempdir())
    _sweep_stale(tmp, BUILD_PREFIX)
    return tempfile.mkdtemp(prefix=f"{BUILD_PREFIX}{os.getpid()}-", suffix=PACKAGE_SUFFIX, dir=tmp)


def _is_build_package(path: Path) -> bool:
    """Whether ``path`` is named as ``_build_package_dir`` names the packages onnx2mil builds."""
    return path.parent == Path(tempfile.gettempdir()) and path.name.startswith(BUILD_PREFIX) \
        and path.name.endswith(PACKAGE_SUFFIX)


# ---- save ----------------------------------------------------------------------------------------

def written_by_onnx2mil(path: Union[str, Path]) -> bool:
    """Whether ``path`` is an .mlpackage folder whose root model carries onnx2mil's metadata."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir() or path.suffix != PACKAGE_SUFFIX:
        return False
    try:
        manifest = json.loads((path / "Manifest.json").read_text())
        root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
        spec = Model_pb2.Model()
        spec.ParseFromString((path / "Data" / root).read_bytes())
    except (OSError, ValueError, KeyError, TypeError, DecodeError):
        return False
    return META_VERSION in spec.description.metadata.userDefined


def check_destination(path: Union[str, Path]) -> Path:
    """The package path ``save`` will write for ``path``: ``.mlpackage`` is appended to a name
    without a suffix (as coremltools does); any other suffix, a name that is not a file name
    (``.``, ``..``, ``/``) or an existing path that is not a package written by onnx2mil is a
    SaveError. Nothing is touched."""
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise SaveError(path, f"not a package name; give one ending in {PACKAGE_SUFFIX}")
    if not path.suffix:
        path = path.with_name(path.name + PACKAGE_SUFFIX)
    elif path.suffix != PACKAGE_SUFFIX:
        raise SaveError(path, f"an ML Program is saved as a {PACKAGE_SUFFIX} folder, not {path.suffix}")
    if os.path.lexists(path) and not written_by_onnx2mil(path):
        raise SaveError(path, "it exists and is not an .mlpackage written by onnx2mil; "
                              "onnx2mil replaces only its own packages")
    return path


def save(mlmodel: ct.models.MLModel, path: Union[str, Path]) -> Path:
    """Write ``mlmodel`` as an .mlpackage at ``path`` (see ``check_destination``) and return its path.

    The package is written and fsynced in a staging folder beside the destination, then moved in
    with one atomic rename (an atomic swap when replacing an earlier onnx2mil package): killed at
    any instant, the destination is absent, the old package or the new one, complete. The staging
    folder is removed on every path; one left by a killed process is removed by the next save.
    """
    dest = check_destination(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(dest.parent, f".{dest.name}.{BUILD_PREFIX}", dest)
        stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{BUILD_PREFIX}{os.getpid()}-", dir=dest.parent))
    except OSError as e:
        raise SaveError(dest, e.strerror or str(e)) from e
    try:
        staged = stage / dest.name
        _stage_package(mlmodel, staged, stage)
        weights = staged / _PACKAGE_WEIGHTS
        with ThreadPoolExecutor(max_workers=1) as pool:
            # the weights go to disk while their digest is taken (both wait on I/O, not the GIL)
            flushed = pool.submit(_fsync_tree, weights) if weights.is_dir() else None
            _make_deterministic(staged)
            if flushed is not None:
                flushed.result()
        _fsync_tree(staged)
        if os.path.lexists(dest):
            check_destination(dest)  # still ours (it may have changed since the first check)
            _replace(staged, dest, stage / _PREVIOUS)
        else:
            _rename_new(staged, dest)
        _fsync(dest.parent)
    except OSError as e:
        raise SaveError(dest, e.strerror or str(e)) from e
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return dest


def _stage_package(mlmodel: ct.models.MLModel, staged: Path, stage: Path) -> None:
    """``mlmodel.save(staged)``, with the weight files of a package onnx2mil built hard-linked
    instead of copied (0.45 s for 464 MB otherwise) where the filesystem allows.

    coremltools' save writes what it writes (the package, its spec from memory, the executorch
    debug-handle map) from a shadow of the package without the weight files, which is swapped in
    as ``mlmodel.package_path`` for the call; the weights are linked in after. Only the weights of
    onnx2mil's own temporary packages are linked: nothing writes to them once built, while a package
    the caller opened from disk is theirs (it is copied). ``tests/test_save.py`` checks the result is
    file for file what coremltools' own save writes."""
    source = Path(mlmodel.package_path) if mlmodel.package_path else None
    own = source is not None and _is_build_package(source)
    if not own or not (source / _PACKAGE_WEIGHTS).is_dir():
        mlmodel.save(str(staged))
        return
    weights = source / _PACKAGE_WEIGHTS
    shadow = stage / f"shadow{PACKAGE_SUFFIX}"
    shutil.copytree(source, shadow, ignore=lambda folder, names: names if Path(folder) == weights else ())
    with COREMLTOOLS_LOCK:
        mlmodel.package_path = str(shadow)
        try:
            mlmodel.save(str(staged))
        finally:
            mlmodel.package_path = str(source)
    shutil.rmtree(shadow)
    shutil.copytree(weights, staged / _PACKAGE_WEIGHTS, copy_function=_link_or_copy, dirs_exist_ok=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or one without hard links
        shutil.copy2(src, dst)


def _make_deterministic(package: Path) -> None:
    """Same model -> same bytes: the spec serialized with protobuf's deterministic map order, and
    Manifest.json's item identifiers (random UUIDs from coremltools) derived from each item's path
    and content, written in the layout coremltools uses (sorted keys, 4-space indent)."""
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entries = manifest["itemInfoEntries"]
    root = entries[manifest["rootModelIdentifier"]]
    spec_path = package / "Data" / root["path"]
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    spec_path.write_bytes(spec.SerializeToString(deterministic=True))
    renamed = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, f"{item['path']}#{_digest(package / 'Data' / item['path'])}"))
               for old, item in entries.items()}
    manifest["itemInfoEntries"] = {renamed[old]: item for old, item in entries.items()}
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n")


def _digest(path: Path) -> str:
    """sha256 over a file, or over a folder's relative file names and contents."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        with open(f, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _fsync(path: Union[str, Path]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            _fsync(os.path.join(folder, name))
        _fsync(folder)


# Atomic renames Python's os module lacks: Linux renameat2 (RENAME_EXCHANGE, RENAME_NOREPLACE) and
# macOS renamex_np (RENAME_SWAP, RENAME_EXCL).
if sys.platform == "darwin":
    _RENAME_FN, _SWAP, _NO_REPLACE = "renamex_np", 0x2, 0x4
else:
    _RENAME_FN, _SWAP, _NO_REPLACE = "renameat2", 0x2, 0x1
_AT_FDCWD = -100


def _atomic_rename(src: Path, dst: Path, flags: int) -> bool:
    """rename with ``flags``; False when the OS or the filesystem does not offer it."""
    try:
        fn = getattr(ctypes.CDLL(None, use_errno=True), _RENAME_FN)
    except (OSError, AttributeError):
        return False
    args = (os.fsencode(src), os.fsencode(dst), flags)
    if _RENAME_FN == "renameat2":
        args = (_AT_FDCWD, args[0], _AT_FDCWD, args[1], flags)
    if fn(*args) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(dst))


def _rename_new(staged: Path, dest: Path) -> None:
    if not _atomic_rename(staged, dest, _NO_REPLACE):
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "appeared during the save", str(dest))
        os.rename(staged, dest)


def _replace(staged: Path, dest: Path, previous: Path) -> None:
    """Swap the new package in. Without an atomic swap: two renames, the old package parked in the
    staging folder in between (where a later save finds it if this process is killed there)."""
    if not _atomic_rename(staged, dest, _SWAP):
        os.rename(dest, previous)
        try:
            os.rename(staged, dest)
        except OSError:
            os.rename(previous, dest)
            raise
