"""The ``onnx2mil`` command: convert, validate, isolate, lint, ops, run.

MODEL is an .onnx path or the name of a bundled reference model (``onnx2mil.models.names()``).
Exit codes: 0 ok, 1 divergence found, 2 bad input or usage (or any other error): one line on
stderr, never a traceback unless ``--debug``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Optional

from .backend.runtime.coreml import COMPUTE_UNITS
from .backend.runtime.predict import RUNTIMES
from .backend.validation.validate import METHODS

EXIT_OK, EXIT_DIVERGENCE, EXIT_USAGE = 0, 1, 2
TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15")


class UsageError(Exception):
    """A command-line argument that cannot be used (exit 2)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onnx2mil", description="ONNX -> CoreML ML Program, validated layer by layer.")
    p.add_argument("--verbose", action="store_true", help="show coremltools' logs and pass progress")
    p.add_argument("--debug", action="store_true", help="on an error, print its traceback too")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("convert", help="convert an ONNX model to an .mlpackage")
    c.add_argument("model", metavar="MODEL", help=".onnx path or bundled model name")
    c.add_argument("-o", "--output", required=True, help="the .mlpackage to write")
    _build_options(c)
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=_convert)

    _validate_parser(sub)
    _compress_parser(sub)

    i = sub.add_parser("isolate", help="one node alone: variant x runtime matrix, bundle on disk")
    i.add_argument("model", metavar="MODEL", help=".onnx path or bundled model name")
    i.add_argument("--node", required=True, help="ONNX node name (or a tensor it produces)")
    i.add_argument("-o", "--output", required=True, help="directory for the bundle")
    i.add_argument("--inputs", help=".npz of the full model's inputs (default: generated)")
    i.add_argument("--variants", nargs="+", help="lowering variants (default: all the op has)")
    i.add_argument("--runtimes", nargs="+", help="mil-fp32, mil-fp16, mil-ane (Neural Engine emulation), "
                   "coreml-<UNITS> (default: all here but mil-ane)")
    i.add_argument("--config", help="base build config (YAML)")
    i.add_argument("--json", action="store_true", help="print the matrix as JSON")
    i.set_defaults(func=_isolate)

    _lint_parser(sub)

    o = sub.add_parser("ops", help="supported ONNX ops with opset ranges")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=_ops)

    r = sub.add_parser("run", help="run an .mlpackage on inputs")
    r.add_argument("mlpackage", metavar="MLPACKAGE")
    r.add_argument("--inputs", required=True, help=".npz keyed by ONNX input name")
    r.add_argument("-o", "--output", required=True, help=".npz to write, keyed by ONNX output name")
    r.add_argument("--runtime", choices=RUNTIMES, default="mil")
    r.add_argument("--compute-units", choices=COMPUTE_UNITS)
    r.add_argument("--json", action="store_true", help="print output names, shapes and dtypes as JSON")
    r.set_defaults(func=_run)
    return p


def _validate_parser(sub) -> None:
    v = sub.add_parser("validate", help="compare every layer with onnxruntime")
    v.add_argument("model", metavar="MODEL", nargs="?", help=".onnx path or bundled model name "
                   "(default: the bundled default model)")
    v.add_argument("--mlmodel", help="an .mlpackage built from MODEL (default: build one)")
    v.add_argument("--inputs", help=".npz of inputs keyed by ONNX input name (default: generated)")
    v.add_argument("--runtime", choices=RUNTIMES, default="mil",
                   help="mil: the interpreter; mil-ane: the Neural Engine emulated on it; coreml: macOS only")
    v.add_argument("--compute-units", choices=COMPUTE_UNITS)
    v.add_argument("--method", choices=METHODS,
                   help="how intermediates are observed (default: capture for mil, outputs for coreml)")
    _build_options(v)
    v.add_argument("--html", help="write a self-contained HTML report here")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--all", dest="all_rows", action="store_true",
                   help="print every row (default: the summary, the first divergence and the worst rows)")
    v.set_defaults(func=_validate)


def _compress_parser(sub) -> None:
    k = sub.add_parser("compress", help="compress the weights, keeping the lowerings; rank layers by the "
                       "error compression adds; keep the N most sensitive uncompressed")
    k.add_argument("model", metavar="MODEL", help=".onnx path or bundled model name")
    k.add_argument("-o", "--output", required=True, help="the .mlpackage to write")
    k.add_argument("--mode", choices=("linear", "palettize", "palettize-uniform"), default="linear")
    k.add_argument("--nbits", type=int, default=8, help="4, 6 or 8 (linear: 4 or 8; 4 needs --target iOS18)")
    k.add_argument("--keep", type=int, default=0, metavar="N",
                   help="leave the N layers compression hurts most uncompressed")
    k.add_argument("--weight-threshold", type=int, default=2048, help="smaller weights stay uncompressed")
    k.add_argument("--inputs", help=".npz of inputs keyed by ONNX input name (default: generated)")
    _build_options(k)
    k.add_argument("--json", action="store_true", help="print the ranking and the output errors as JSON")
    k.set_defaults(func=_compress)


def _build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("fp16", "fp32"), help="compute precision (default fp16)")
    p.add_argument("--target", choices=TARGETS, help="minimum deployment target (default iOS15)")
    p.add_argument("--config", help="build config YAML (lowerings, tolerances; see configs/)")


def _version() -> str:
    from . import __version__

    return __version__


# ---- helpers ---------------------------------------------------------------------------------------

def _stderr():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def _progress(args, message: str):
    """A spinner on stderr for long work; yields a callback that updates its message."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        yield lambda _msg: None
        return
    with _stderr().status(message) as status:
        yield lambda msg: status.update(msg)


def resolve_model(spec: Optional[str]):
    """(ONNX path or ModelProto, bundled name or None) for an .onnx path or bundled model name."""
    from . import models

    name = spec if spec is not None else models.DEFAULT
    path = Path(name)
    if path.suffix == ".onnx" or path.exists():
        if not path.is_file():
            raise UsageError(f"{path}: no such ONNX file")
        return str(path), None
    if name in models.names():
        return models.build(name), name
    raise UsageError(f"'{name}' is neither an .onnx file nor a bundled model ({', '.join(models.names())})")


def _inputs_for(args, bundled: Optional[str]):
    from . import models

    if args.inputs:
        return _read_npz(args.inputs)
    return models.example_inputs(bundled) if bundled else None


def _read_npz(path: str) -> dict:
    """The arrays of an .npz file, by name; a UsageError for a missing or unreadable file."""
    import zipfile

    import numpy as np

    if not Path(path).is_file():
        raise UsageError(f"{path}: no such inputs file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as e:
        raise UsageError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e


def _target(name: Optional[str]):
    import coremltools as ct

    return getattr(ct.target, name) if name else None


def _units(name: Optional[str]):
    import coremltools as ct

    return getattr(ct.ComputeUnit, name) if name else None


def _stdout():
    """Rich console on stdout; wide when piped so tables are not cut to 80 columns."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=220)


def _print_json(data) -> None:
    from .backend.validation.report import json_finite

    print(json.dumps(json_finite(data), indent=2))


# ---- commands --------------------------------------------------------------------------------------

def _convert(args) -> int:
    import onnx2mil
    from .backend.convert.pipeline import check_destination, read_name_map

    model, _ = resolve_model(args.model)
    check_destination(args.output)  # refuse a destination save would refuse, before building
    with _progress(args, "converting") as _:
        mlmodel = onnx2mil.build_coreml(model, compute_precision=args.precision, config=args.config,
                                        minimum_deployment_target=_target(args.target), verbose=args.verbose)
        path = onnx2mil.save(mlmodel, args.output)
    name_map = read_name_map(mlmodel)
    if args.json:
        _print_json({"path": str(path), "precision": name_map["precision"], "inputs": name_map["inputs"],
                     "outputs": name_map["outputs"]})
    else:
        print(f"wrote {path} ({name_map['precision']})")
    return EXIT_OK


def _validate(args) -> int:
    import onnx2mil

    model, bundled = resolve_model(args.model)
    with _progress(args, "validating") as say:
        mlmodel = None
        if args.mlmodel:
            if not Path(args.mlmodel).exists():
                raise UsageError(f"{args.mlmodel}: no such .mlpackage")
            mlmodel = args.mlmodel
        report = onnx2mil.validate(model, mlmodel, inputs=_inputs_for(args, bundled), runtime=args.runtime,
                                   compute_units=_units(args.compute_units), config=args.config,
                                   compute_precision=args.precision, method=args.method, progress=say,
                                   minimum_deployment_target=_target(args.target))
    if args.html:
        report.to_html(args.html)
    if args.json:
        print(report.to_json())
    else:
        report.print(_stdout(), all_rows=args.all_rows)
        if args.html:
            print(f"HTML report: {args.html}")
    return EXIT_OK if report.ok else EXIT_DIVERGENCE


def _compress(args) -> int:
    """Build, compress everything, rank the compressed layers (compression report), recompress
    keeping the N most sensitive, validate, save."""
    import coremltools as ct

    import onnx2mil
    from .backend.validation.compress import output_sensitivity
    from .backend.convert.loader import read_model
    from .backend.validation.reference import make_inputs, run_reference

    model, bundled = resolve_model(args.model)
    model = read_model(model)  # once: it is built, validated twice and run for the sensitivity
    target = max(_target(args.target) or ct.target.iOS16, ct.target.iOS16, key=lambda t: t.value)
    options = dict(mode=args.mode, nbits=args.nbits, weight_threshold=args.weight_threshold)
    with _progress(args, "compressing") as say:
        say("building the uncompressed model")
        mlmodel = onnx2mil.build_coreml(model, compute_precision=args.precision, config=args.config,
                                        minimum_deployment_target=target)
        inputs = _inputs_for(args, bundled)
        say("compressing every weight and ranking the layers")
        everything = onnx2mil.validate(model, onnx2mil.compress(mlmodel, **options), inputs=inputs,
                                       compression_report=True, progress=say)
        keep = []
        if args.keep:
            feeds = make_inputs(model, inputs)
            reference = run_reference(model, feeds, tensors=set())
            layers = [entry["mil_op"] for entry in everything.compression]
            impact = output_sensitivity(mlmodel, layers, feeds, reference, progress=say, **options)
            for entry in everything.compression:
                entry["output_error_alone"] = impact[entry["mil_op"]]
            keep = sorted(layers, key=lambda layer: -impact[layer])[:args.keep]
        final = onnx2mil.compress(mlmodel, keep=keep, **options)
        report = everything
        if keep:
            say(f"recompressing without the {len(keep)} most sensitive layers")
            report = onnx2mil.validate(model, final, inputs=inputs, progress=say)
        path = onnx2mil.save(final, args.output)

    def output_errors(r):
        return {layer.tensor: layer.rel_to_max for layer in r.layers if layer.tensor in r.outputs}

    result = {"path": str(path), "mode": args.mode, "nbits": args.nbits, "kept": keep,
              "ranking": everything.compression, "output_error_all_compressed": output_errors(everything),
              "output_error": output_errors(report)}
    if args.json:
        _print_json(result)
    else:
        console = _stdout()
        console.print(everything.compression_table())
        for name, err in result["output_error"].items():
            before = result["output_error_all_compressed"][name]
            console.print(f"output '{name}': err/max|ref| {before:.3g} with every layer compressed"
                          + (f", {err:.3g} keeping {len(keep)} uncompressed" if keep else ""))
        console.print(f"wrote {path}")
    return EXIT_OK


def _isolate(args) -> int:
    import onnx2mil

    model, bundled = resolve_model(args.model)
    with _progress(args, f"isolating {args.node}") as say:
        result = onnx2mil.isolate(model, args.node, args.output, inputs=_inputs_for(args, bundled),
                                  variants=args.variants, runtimes=args.runtimes, config=args.config,
                                  progress=say)
    if args.json:
        print(result.to_json())
    else:
        result.print(_stdout())
        print(f"bundle: {result.out_dir}")
    return EXIT_OK if result.ok else EXIT_DIVERGENCE


def _lint_parser(sub) -> None:
    lp = sub.add_parser("lint", help="known CoreML / Neural Engine hazards in a model, and the rewrites applied")
    lp.add_argument("model", metavar="MODEL", help=".onnx path, bundled model name, or an .mlpackage built by onnx2mil")
    lp.add_argument("--onnx", dest="source", help="for an .mlpackage: the ONNX model it was built from (names nodes)")
    _build_options(lp)
    lp.add_argument("--fp16-range", action="store_true",
                    help="also run the model at fp32 and report values beyond fp16's range, by node")
    lp.add_argument("--inputs", help="with --fp16-range: .npz of inputs keyed by ONNX input name (default: generated)")
    lp.add_argument("--json", action="store_true", help="print the findings as JSON")
    lp.set_defaults(func=_lint)


def _lint(args) -> int:
    """Exit 0 when every hazard found is mitigated, 1 when one is not, 2 on bad input."""
    import onnx2mil

    if Path(args.model).suffix == ".mlpackage":
        if args.fp16_range or args.inputs:
            raise UsageError("--fp16-range builds the ONNX model at fp32: give the .onnx, not a package")
        if any((args.precision, args.target, args.config)):
            raise UsageError("--precision, --target and --config apply to an ONNX model, not to a built .mlpackage")
        if not Path(args.model).exists():
            raise UsageError(f"{args.model}: no such .mlpackage")
        source = resolve_model(args.source)[0] if args.source else None
        with _progress(args, "linting"):
            report = onnx2mil.lint(args.model, source=source)
    else:
        model, bundled = resolve_model(args.model)
        options = {k: v for k, v in (("compute_precision", args.precision), ("config", args.config),
                                     ("minimum_deployment_target", _target(args.target))) if v is not None}
        if args.inputs and not args.fp16_range:
            raise UsageError("--inputs is read by --fp16-range only")
        if args.fp16_range:
            options.update(check_fp16_range=True, feeds=_inputs_for(args, bundled))
        with _progress(args, "building and linting"):
            report = onnx2mil.lint(model, **options)
    if args.json:
        print(report.to_json())
    else:
        report.print(_stdout())
    return EXIT_OK if report.clean else EXIT_DIVERGENCE


def _ops(args) -> int:
    from .backend.convert.registry import registered_ops

    rows = [{"domain": d or "ai.onnx", "op_type": op, "min_opset": b.min_opset, "max_opset": b.max_opset,
             "module": b.module} for d, op, b in registered_ops()]
    if args.json:
        _print_json(rows)
        return EXIT_OK
    from rich.table import Table

    table = Table(title=f"{len(rows)} supported ONNX ops")
    for col in ("domain", "op", "opsets", "builder"):
        table.add_column(col)
    for r in rows:
        top = r["max_opset"] if r["max_opset"] is not None else "latest"
        table.add_row(r["domain"], r["op_type"], f"{r['min_opset']}..{top}", r["module"])
    _stdout().print(table)
    return EXIT_OK


def _run(args) -> int:
    import numpy as np

    import onnx2mil

    if not Path(args.mlpackage).exists():
        raise UsageError(f"{args.mlpackage}: no such .mlpackage")
    inputs = _read_npz(args.inputs)
    with _progress(args, "running"):
        outputs = onnx2mil.predict(args.mlpackage, inputs, runtime=args.runtime,
                                   compute_units=_units(args.compute_units))
    np.savez(args.output, **{k: np.asarray(v) for k, v in outputs.items()})
    summary = {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)} for k, v in outputs.items()}
    if args.json:
        _print_json({"path": args.output, "outputs": summary})
    else:
        for k, s in summary.items():
            print(f"{k}: {tuple(s['shape'])} {s['dtype']}")
        print(f"wrote {args.output}")
    return EXIT_OK


def main(argv: Optional[list] = None) -> int:
    args = _parser().parse_args(argv)
    log = logging.getLogger("coremltools")
    log.setLevel(logging.INFO if args.verbose else logging.ERROR)
    try:
        with _warnings_as_lines(args):
            return args.func(args)
    except KeyboardInterrupt:
        print(f"onnx2mil {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every failure is one line on stderr; --debug adds the traceback
        return _failed(args, e)


@contextlib.contextmanager
def _warnings_as_lines(args):
    """Warnings that matter (onnx2mil's, e.g. an fp16 overflow naming its node) as one line each;
    coremltools' own warnings only with ``--verbose``."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"onnx2mil {args.command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        if not args.verbose:
            warnings.filterwarnings("ignore", module=r"coremltools(\.|$)")
        warnings.showwarning = show
        yield


def _failed(args, error: Exception) -> int:
    """One line on stderr, exit 2. A typed error (onnx2mil's, a usage error) is its message; anything
    else is named as unexpected, with its type. ``--debug`` prints the traceback first."""
    from .errors import Onnx2MilError

    if args.debug:
        import traceback

        traceback.print_exception(error)
    if isinstance(error, (Onnx2MilError, UsageError)):
        message = str(error)
    else:
        hint = "" if args.debug else " (--debug shows the traceback)"
        message = f"unexpected {type(error).__name__}: {error}{hint}"
    print(f"onnx2mil {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
