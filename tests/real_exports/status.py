"""Where onnx2mil stands on the real-export corpus: for every model of the manifest at fp32 and
fp16, build with ``onnx2mil.build_coreml``, compare the final outputs of the MIL interpreter with
onnxruntime (rel err = max abs err / max |ref|, worst output), and run ``onnx2mil.validate``.

    python tests/real_exports/status.py                  # every model, fp32 and fp16
    python tests/real_exports/status.py bert --precision fp16 --json status.json
    python tests/real_exports/status.py --method outputs   # validate by rebuilding with every tensor exposed

Prints one row per model and precision: build ok, final-output rel err (and whether it is within
the validation tolerance), validate's verdict, the number of ``fail`` rows and the first three
failing rows (node, op, reason). A build or validate error is shown in the row, with its type.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import onnxruntime as ort

import onnx2mil
from onnx2mil.backend.convert.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402

PRECISIONS = ("fp32", "fp16")


def final_rel_err(reference: dict, got: dict) -> tuple[float, str]:
    """Worst max|got - ref| / max|ref| over the outputs, and the output it comes from.
    A missing output or a non-finite value where the reference is finite counts as inf."""
    worst, where = 0.0, ""
    for name, ref in reference.items():
        value = got.get(name)
        if value is None:
            return float("inf"), f"{name} missing"
        r = np.asarray(ref, dtype=np.float64)
        g = np.asarray(value, dtype=np.float64)
        if g.shape != r.shape:
            return float("inf"), f"{name} shape {g.shape} != {r.shape}"
        scale = float(np.max(np.abs(r))) or 1.0
        err = float(np.max(np.abs(g - r))) / scale if r.size else 0.0
        if not np.isfinite(err):
            err = float("inf")
        if err >= worst:
            worst, where = err, name
    return worst, where


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def status_of(model: dict, precision: str, seed: int = 0, method: str = "capture") -> dict:
    path = corpus.path(model)
    feeds = corpus.make_feeds(model, seed=seed)
    row = {"model": model["name"], "precision": precision, "build": None, "final_rel_err": None,
           "final_output": "", "final_within_tol": None, "verdict": None, "fails": None,
           "first_fails": [], "first_divergence": None, "counts": None, "error": "", "seconds": {}}
    tol = Config.load(None).tolerance(precision)["rel_to_max"]
    t0 = time.perf_counter()
    try:
        mlmodel = onnx2mil.build_coreml(str(path), compute_precision=precision)
        row["build"] = "ok"
    except Exception as exc:  # a build failure is the finding: recorded in the row
        row["build"] = "FAIL"
        row["error"] = _error(exc)
        # UnsupportedOperatorError lists every refused node: show them like failing rows.
        row["first_fails"] = [{"node": r.node, "op": r.op_type, "tensor": "", "reason": r.reason}
                              for r in getattr(exc, "refusals", [])[:3]]
        row["traceback"] = traceback.format_exc()
        return row
    row["seconds"]["build"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    reference = dict(zip(names, session.run(None, feeds)))
    try:
        got = onnx2mil.predict(mlmodel, feeds)
        row["final_rel_err"], row["final_output"] = final_rel_err(reference, got)
        row["final_within_tol"] = row["final_rel_err"] <= tol
    except Exception as exc:
        row["error"] = "predict: " + _error(exc)
        row["traceback"] = traceback.format_exc()
    row["seconds"]["predict"] = round(time.perf_counter() - t0, 2)

    t0 = time.perf_counter()
    try:
        report = onnx2mil.validate(str(path), mlmodel, inputs=feeds, method=method)
    except Exception as exc:
        row["verdict"] = "ERROR"
        row["error"] = (row["error"] + " | " if row["error"] else "") + "validate: " + _error(exc)
        row["traceback"] = traceback.format_exc()
        return row
    row["seconds"]["validate"] = round(time.perf_counter() - t0, 2)
    fails = [layer for layer in report.layers if layer.status == "fail"]
    row["verdict"] = "OK" if report.ok else "DIVERGES"
    row["fails"] = len(fails)
    row["counts"] = report.counts
    row["all_fails"] = [{"node": f.node, "op": f.op_type, "tensor": f.tensor, "mil_var": f.mil_var,
                         "shape": f.shape, "rel_to_max": f.rel_to_max, "cosine": f.cosine,
                         "reason": f.reason or f"rel {f.rel_to_max}"} for f in fails]
    row["first_fails"] = row["all_fails"][:3]
    if report.first_divergence is not None:
        d = report.first_divergence
        row["first_divergence"] = {"node": d.node, "op": d.op_type, "reason": d.layer.reason}
    return row


def _fmt_err(row: dict) -> str:
    if row["final_rel_err"] is None:
        return "-"
    mark = "" if row["final_within_tol"] else " (!)"
    return f"{row['final_rel_err']:.2e}{mark}"


def print_table(rows: list[dict], out=sys.stdout) -> None:
    header = ["model", "prec", "build", "final rel err", "validate", "fails", "first failing rows (node | op | reason)"]
    lines = []
    for r in rows:
        first = "; ".join(f"{f['node']} | {f['op']} | {f['reason']}" for f in r["first_fails"])
        if r["error"]:
            first = (first + "  " if first else "") + f"[{r['error']}]"
        lines.append([r["model"], r["precision"], r["build"], _fmt_err(r), r["verdict"] or "-",
                      "-" if r["fails"] is None else str(r["fails"]), first])
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) if lines else len(header[i])
              for i in range(len(header) - 1)]
    def emit(cells):
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1], file=out)
    emit(header)
    emit(["-" * w for w in widths] + ["-" * 40])
    for line in lines:
        emit(line)
    print(f"(!) = final output outside the validation tolerance "
          f"(fp32 {Config.load(None).tolerance('fp32')['rel_to_max']:g}, "
          f"fp16 {Config.load(None).tolerance('fp16')['rel_to_max']:g} of max|ref|)", file=out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="only models whose name starts with one of these")
    parser.add_argument("--precision", choices=PRECISIONS, action="append",
                        help="fp32 and/or fp16 (default both)")
    parser.add_argument("--json", type=Path,
                        help="also write every row to this file, with all failing rows and tracebacks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--method", choices=("capture", "outputs", "truncation"), default="capture",
                        help="validate's method (default capture: the interpreter records every var)")
    opts = parser.parse_args(argv)
    precisions = opts.precision or list(PRECISIONS)
    rows = []
    for model in corpus.models():
        if opts.only and not any(model["name"].startswith(p) for p in opts.only):
            continue
        for precision in precisions:
            print(f"... {model['name']} {precision}", file=sys.stderr, flush=True)
            rows.append(status_of(model, precision, seed=opts.seed, method=opts.method))
            if opts.json:
                opts.json.write_text(json.dumps(rows, indent=2, default=str) + "\n")
    print_table(rows)
    failed_exports = corpus.manifest().get("failed", [])
    for f in failed_exports:
        if not opts.only or any(f["name"].startswith(p) for p in opts.only):
            print(f"not exported: {f['name']} ({f['source_class']}): {f['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
