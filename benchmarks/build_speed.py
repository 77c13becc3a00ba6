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
import statistics
import sys
from pathlib import Path
from typing import Optional

from run import DEFAULT_WORKDIR, ONNX2COREML_VENV, Runner, cell, ensure_venv

HERE = Path(__file__).resolve().parent
SMALL = HERE.parent / "tests" / "real_exports" / "qwen25omni_bigvgan_fulldepth_dynamo.onnx"
BIG = "bigvgan-qwen2.5-omni"
BIG_LABEL = "big vocoder (115M)"
SMALL_LABEL = "small vocoder"
CHAINS = (1000, 10000)


def measure(runner: Runner, models=("big", "small", "chains"), o2c: Optional[str] = None, repeats: int = 3) -> dict:
    """Every step in its own process; the floor and onnx2mil's build + save of each vocoder
    ``repeats`` times, interleaved (floor, build, floor, build...), onnx2coreml once. Returns
    {"rows": [(label, precision, floors, ours, theirs)], "chains": [(nodes, ours, theirs)],
    "packages": {(label, precision): path}, "big_onnx": path}: Measurements, lists of them for
    the repeated steps (``theirs`` None without onnx2coreml)."""
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

    def ours(tag, onnx_path, precision, i=0):
        return runner.measure(f"onnx2mil-{tag}-{i}", "convert", {"onnx": str(onnx_path), "precision": precision,
                                                                 "out": str(workdir / f"{tag}.mlpackage")})

    def theirs(tag, onnx_path, precision):
        if not o2c:
            return None
        package = workdir / f"{tag}.onnx2coreml.mlpackage"
        shutil.rmtree(package, ignore_errors=True)
        return runner.measure(f"onnx2coreml-{tag}", "onnx2coreml",
                              {"onnx": str(onnx_path), "precision": precision, "out": str(package),
                               "constants_as_initializers": True}, python=o2c)

    for label, onnx_path in paths.items():
        for precision in ("fp16", "fp32"):
            tag = f"{onnx_path.stem}-{precision}"
            floors, builds = [], []
            for i in range(repeats):
                floors.append(runner.measure(f"floor-{tag}-{i}", "io_floor",
                                             {"onnx": str(onnx_path), "precision": precision,
                                              "out": str(workdir / f"{tag}.weights")}))
                builds.append(ours(tag, onnx_path, precision, i))
            out["rows"].append((label, precision, floors, builds, theirs(tag, onnx_path, precision)))
            if not builds[-1].error:
                out["packages"][label, precision] = workdir / f"{tag}.mlpackage"
    if "chains" in models:
        for n in CHAINS:
            path = workdir / f"chain{n}.onnx"
            runner.measure(f"chain{n}-generate", "synthetic_chain", {"nodes": n, "out": str(path)})
            out["chains"].append((n, ours(f"chain{n}", path, "fp16"), theirs(f"chain{n}", path, "fp16")))
    return out


def seconds(m, keys=("build_s", "save_s")) -> Optional[float]:
    """The sum of a measurement's ``keys`` (build + save by default), the median over a list of
    measurements; None if one failed or none is given."""
    if isinstance(m, list):
        each = [seconds(x, keys) for x in m]
        return None if not each or None in each else statistics.median(each)
    if m is None or m.error:
        return None
    return sum(m.result.get(k) or 0.0 for k in keys)


def spread(ms, keys=("build_s", "save_s")) -> str:
    """' (min–max)' of repeated measurements, '' for one."""
    each = [seconds(x, keys) for x in ms]
    if len(each) < 2 or None in each:
        return ""
    return f" ({min(each):.2f}–{max(each):.2f})"


def peak(ms) -> Optional[float]:
    """The largest peak RSS of measurements (one or a list); None if one failed."""
    ms = ms if isinstance(ms, list) else [ms]
    if not ms or any(m is None or m.error for m in ms):
        return None
    return max(m.peak_rss_mb for m in ms)


FLOOR_KEYS = ("read_s", "write_s", "fsync_s")


def render(measured: dict) -> list[str]:
    """Markdown tables of what ``measure`` returned."""
    repeats = max((len(row[2]) for row in measured["rows"]), default=1)
    lines = [f"Floor and onnx2mil: the median of {repeats} runs, interleaved (min–max); onnx2coreml: one run.", "",
             "| model | precision | I/O floor (s) | onnx2mil build + save (s) | × floor | onnx2mil peak RSS (MB) "
             "| onnx2coreml build + save (s) | onnx2coreml / onnx2mil | onnx2coreml peak RSS (MB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, precision, floors, ours, theirs in measured["rows"]:
        f, o, t = seconds(floors, FLOOR_KEYS), seconds(ours), seconds(theirs)
        lines.append(f"| {label} | {precision} | {cell(f)}{spread(floors, FLOOR_KEYS)} | {cell(o)}{spread(ours)} "
                     f"| {cell(o / f if o and f else None, '{:.1f}×')} | {cell(peak(ours), '{:,.0f}')} | {cell(t)} "
                     f"| {cell(t / o if t and o else None, '{:.1f}×')} | {cell(peak(theirs), '{:,.0f}')} |")
    if measured["chains"]:
        lines += ["", "Linear scaling: chains of Add/Mul/Relu nodes on (1, 16) tensors, fp16, build + save:", "",
                  "| ONNX nodes | onnx2mil (s) | per node (ms) | onnx2mil peak RSS (MB) | onnx2coreml (s) | per node (ms) |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for n, ours, theirs in measured["chains"]:
            o, t = seconds(ours), seconds(theirs)
            lines.append(f"| {n:,} | {cell(o)} | {cell(o and 1000 * o / n)} | {cell(peak(ours), '{:,.0f}')} "
                         f"| {cell(t)} | {cell(t and 1000 * t / n)} |")
    failed = [m for row in measured["rows"] for ms in row[2:] for m in (ms if isinstance(ms, list) else [ms])
              if m is not None and m.error]
    failed += [m for row in measured["chains"] for m in row[1:] if m is not None and m.error]
    lines += [f"\n{m.label} failed: {m.error.splitlines()[0][:300]}" for m in failed]
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "build_speed")
    ap.add_argument("--no-onnx2coreml", action="store_true")
    ap.add_argument("--repeats", type=int, default=3, help="runs of the floor and onnx2mil per vocoder (medians)")
    ap.add_argument("--models", nargs="*", default=["big", "small", "chains"],
                    help="big, small, chains (1k and 10k Add/Mul/Relu nodes: linear scaling)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir, 1800.0)
    o2c = None if args.no_onnx2coreml else ensure_venv(ONNX2COREML_VENV, "onnx2coreml")[0]
    started = datetime.datetime.now(datetime.timezone.utc)
    measured = measure(runner, args.models, o2c, args.repeats)
    load = os.getloadavg()
    print(f"\nRun {started:%Y-%m-%d %H:%M} UTC, load average at the end {load[0]:.1f} / {load[1]:.1f}.\n")
    print("\n".join(render(measured)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
