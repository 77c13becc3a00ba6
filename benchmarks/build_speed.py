"""Build + save speed side by side, one run (issue 12): ``python benchmarks/build_speed.py``.

For the 115M-parameter BigVGAN of models/ (written as ONNX with external data, as users have it)
and the small vocoder (Qwen2.5-Omni's BigVGAN as transformers' dynamo export, full depth, small
channels: tests/real_exports), at fp16 and fp32, and synthetic chains of 1k and 10k nodes (linear
scaling), each step in its own process (measure.py): the weight-I/O floor, onnx2mil
``build_coreml`` + ``save``, and onnx2coreml (PyPI, its own venv under /tmp; Constant nodes
rewritten as initializers, which it needs). Prints markdown tables (``run.py`` puts the same
tables in results.md); times are whole-step seconds inside the process (imports excluded), peak
RSS is the process's VmHWM.
"""
from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
from pathlib import Path
from typing import Optional

from run import DEFAULT_WORKDIR, ONNX2COREML_VENV, Runner, ensure_venv

HERE = Path(__file__).resolve().parent
SMALL = HERE.parent / "tests" / "real_exports" / "qwen25omni_bigvgan_fulldepth_dynamo.onnx"
BIG = "bigvgan-qwen2.5-omni"
BIG_LABEL = "big vocoder (115M)"
SMALL_LABEL = "small vocoder"
CHAINS = (1000, 10000)


def measure(runner: Runner, models=("big", "small", "chains"), o2c: Optional[str] = None) -> dict:
    """Every step in its own process. Returns {"rows": [(label, precision, floor, ours, theirs)],
    "chains": [(nodes, ours, theirs)], "packages": {(label, precision): path}, "big_onnx": path}:
    Measurements (``theirs`` None without onnx2coreml)."""
    workdir = runner.workdir
    paths = {}
    out = {"rows": [], "chains": [], "packages": {}, "big_onnx": None}
    if "big" in models:
        from onnx2mil import models as reference_models
        big = workdir / f"{BIG}.onnx"
        if not big.exists():
            reference_models.save(BIG, big)
        paths[BIG_LABEL] = out["big_onnx"] = big
    if "small" in models:
        paths[SMALL_LABEL] = SMALL

    def both(tag, onnx_path, precision):
        """(onnx2mil, onnx2coreml or None) build + save of ``onnx_path``."""
        package = workdir / f"{tag}.mlpackage"
        ours = runner.measure(f"onnx2mil-{tag}", "convert",
                              {"onnx": str(onnx_path), "precision": precision, "out": str(package)})
        if not o2c:
            return ours, None
        theirs = workdir / f"{tag}.onnx2coreml.mlpackage"
        shutil.rmtree(theirs, ignore_errors=True)
        return ours, runner.measure(f"onnx2coreml-{tag}", "onnx2coreml",
                                    {"onnx": str(onnx_path), "precision": precision, "out": str(theirs),
                                     "constants_as_initializers": True}, python=o2c)

    for label, onnx_path in paths.items():
        for precision in ("fp16", "fp32"):
            tag = f"{onnx_path.stem}-{precision}"
            floor = runner.measure(f"floor-{tag}", "io_floor", {"onnx": str(onnx_path), "precision": precision,
                                                                 "out": str(workdir / f"{tag}.weights")})
            ours, theirs = both(tag, onnx_path, precision)
            out["rows"].append((label, precision, floor, ours, theirs))
            if not ours.error:
                out["packages"][label, precision] = workdir / f"{tag}.mlpackage"
    if "chains" in models:
        for n in CHAINS:
            path = workdir / f"chain{n}.onnx"
            runner.measure(f"chain{n}-generate", "synthetic_chain", {"nodes": n, "out": str(path)})
            out["chains"].append((n, *both(f"chain{n}", path, "fp16")))
    return out


def seconds(m, keys=("build_s", "save_s")) -> Optional[float]:
    """The sum of a measurement's ``keys`` (build + save by default); None if it failed or is missing."""
    if m is None or m.error:
        return None
    return sum(m.result.get(k) or 0.0 for k in keys)


FLOOR_KEYS = ("read_s", "write_s", "fsync_s")


def cell(x, fmt="{:.2f}") -> str:
    return "—" if x is None else fmt.format(x)


def render(measured: dict) -> list[str]:
    """Markdown tables of what ``measure`` returned."""
    lines = ["| model | precision | I/O floor (s) | onnx2mil build + save (s) | × floor | onnx2mil peak RSS (MB) "
             "| onnx2coreml build + save (s) | onnx2coreml / onnx2mil | onnx2coreml peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, precision, floor, ours, theirs in measured["rows"]:
        f, o, t = seconds(floor, FLOOR_KEYS), seconds(ours), seconds(theirs)
        lines.append(f"| {label} | {precision} | {cell(f)} | {cell(o)} | {cell(o / f if o and f else None, '{:.1f}×')} "
                     f"| {cell(None if ours.error else ours.peak_rss_mb, '{:,.0f}')} | {cell(t)} "
                     f"| {cell(t / o if t and o else None, '{:.1f}×')} "
                     f"| {cell(theirs.peak_rss_mb if theirs and not theirs.error else None, '{:,.0f}')} |")
    if measured["chains"]:
        lines += ["", "Linear scaling: chains of Add/Mul/Relu nodes on (1, 16) tensors, fp16, build + save:", "",
                  "| ONNX nodes | onnx2mil (s) | per node (ms) | onnx2mil peak RSS (MB) | onnx2coreml (s) | per node (ms) |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for n, ours, theirs in measured["chains"]:
            o, t = seconds(ours), seconds(theirs)
            lines.append(f"| {n:,} | {cell(o)} | {cell(o and 1000 * o / n)} "
                         f"| {cell(None if ours.error else ours.peak_rss_mb, '{:,.0f}')} "
                         f"| {cell(t)} | {cell(t and 1000 * t / n)} |")
    failed = [m for row in measured["rows"] for m in row[2:] if m is not None and m.error]
    failed += [m for row in measured["chains"] for m in row[1:] if m is not None and m.error]
    lines += [f"\n{m.label} failed: {m.error.splitlines()[0][:300]}" for m in failed]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "build_speed")
    ap.add_argument("--no-onnx2coreml", action="store_true")
    ap.add_argument("--models", nargs="*", default=["big", "small", "chains"],
                    help="big, small, chains (1k and 10k Add/Mul/Relu nodes: linear scaling)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir, 1800.0)
    o2c = None if args.no_onnx2coreml else ensure_venv(ONNX2COREML_VENV, "onnx2coreml")[0]
    started = datetime.datetime.now(datetime.timezone.utc)
    measured = measure(runner, args.models, o2c)
    load = os.getloadavg()
    print(f"\nRun {started:%Y-%m-%d %H:%M} UTC, load average at the end {load[0]:.1f} / {load[1]:.1f}.\n")
    print("\n".join(render(measured)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
