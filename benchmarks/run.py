"""Benchmarks, one command: ``python benchmarks/run.py`` measures issue 12's goals in one run and
writes ``benchmarks/results.md``.

Every measurement runs in its own process (``measure.py``), which reports its own peak RSS (VmHWM),
so memory and imports of earlier steps never leak into later ones. In order:
- build + save of the 115M BigVGAN and the small vocoder (fp16, fp32) against the weight-I/O floor
  and onnx2coreml, and of 1k / 10k-node chains (``build_speed.py``); the big fp16 build by phase;
- coremltools' torch path on the small vocoder (``torch_path.py``; its venv is made on first use);
- the dilated MaxPool case (``dilated_pool.py``);
- the MIL interpreter's forward against onnxruntime's, one thread each (``interpreter_vs_ort.py``),
  on BigVGAN tiny, the small vocoder, ResNet-18, the transformer and the big vocoder, fp32 and fp16;
- validate() against the two forwards it needs on the big vocoder (``validate_speed.py``).
``--quick`` keeps to the small vocoder, the chains and the small models' forwards (about 3 min).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
MEASURE = HERE / "measure.py"
DEFAULT_WORKDIR = Path("/tmp/onnx2mil-bench")
ONNX2COREML_VENV = Path("/tmp/venv-onnx2coreml")
BIG = "bigvgan-qwen2.5-omni"
SMALL_MODELS = ("bigvgan-tiny", "real:qwen25omni_bigvgan_fulldepth_dynamo", "resnet-18", "transformer-tiny")
MODEL_LABELS = {"bigvgan-tiny": "BigVGAN tiny", "real:qwen25omni_bigvgan_fulldepth_dynamo": "small vocoder",
                "resnet-18": "ResNet-18", "transformer-tiny": "transformer-tiny", BIG: "big vocoder (115M)"}


@dataclass
class Measurement:
    label: str
    wall_s: float
    peak_rss_mb: float
    result: dict = field(default_factory=dict)
    timed_out: bool = False

    @property
    def error(self) -> Optional[str]:
        if self.timed_out:
            return f"timed out after {self.wall_s:.0f} s"
        return self.result.get("error")


class Runner:
    def __init__(self, workdir: Path, timeout: float):
        self.workdir = workdir
        self.timeout = timeout
        self.log: list[Measurement] = []

    def measure(self, label: str, task: str, args: dict, python: str = sys.executable,
                timeout: Optional[float] = None) -> Measurement:
        """Run ``measure.py task`` in a fresh process and collect its result."""
        result_path = self.workdir / f"{label}.json"
        result_path.unlink(missing_ok=True)
        limit = timeout or self.timeout
        print(f"[bench] {label} ...", flush=True)
        with open(self.workdir / f"{label}.log", "w") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen([python, str(MEASURE), task, json.dumps(args), str(result_path)],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=str(self.workdir))
            timed_out = False
            while True:
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() - t0 > limit:
                    proc.kill()
                    pid, status = os.waitpid(proc.pid, 0)
                    timed_out = True
                    break
                time.sleep(0.02)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - t0
        if result_path.exists():
            result = json.loads(result_path.read_text())
        else:
            tail = (self.workdir / f"{label}.log").read_text()[-400:]
            result = {"error": f"process exited with {proc.returncode} without a result: ...{tail}"}
        # VmHWM reported by the process itself; wait4's ru_maxrss includes this parent's RSS at fork.
        peak = result.get("peak_rss_mb")
        m = Measurement(label, wall, peak if peak is not None else float("nan"), result, timed_out)
        status_text = m.error or "ok"
        print(f"[bench] {label}: {wall:.1f} s, peak RSS {m.peak_rss_mb:.0f} MB, {status_text.splitlines()[0][:200]}",
              flush=True)
        self.log.append(m)
        return m


# ---- environment ---------------------------------------------------------------------------------

def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": mem_kb / 1024 / 1024, "os": platform.platform(),
            "python": platform.python_version(), "load": os.getloadavg()}


def versions() -> dict:
    import onnx2mil  # first: off macOS it silences coremltools' import-time "Failed to load" lines
    import coremltools
    import numpy as np
    import onnx
    import onnxruntime
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                           capture_output=True, text=True)
    git = rev.stdout.strip() + (" + uncommitted changes in the working tree" if dirty.stdout.strip() else "")
    return {"onnx2mil": f"{onnx2mil.__version__} (git {git})", "coremltools": coremltools.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def ensure_venv(venv: Path, package: str) -> tuple[Optional[str], str]:
    """A venv under /tmp with ``package`` from PyPI; returns (python, note) or (None, why not)."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import importlib.metadata as m; print(m.version('{package}'))"]
    if not python.exists():
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        if made.returncode:
            return None, f"python -m venv failed: {made.stderr.strip()[-300:]}"
        pip = subprocess.run([str(python), "-m", "pip", "install", "-q", package], capture_output=True, text=True)
        if pip.returncode:
            return None, f"pip install {package} failed: {pip.stderr.strip()[-500:]}"
    version = subprocess.run(probe, capture_output=True, text=True)
    if version.returncode:
        return None, f"{package} is not installed in {venv}: {version.stderr.strip()[-300:]}"
    deps = subprocess.run([str(python), "-c", "import coremltools, onnx; print(coremltools.__version__, onnx.__version__)"],
                          capture_output=True, text=True)
    return str(python), f"{package} {version.stdout.strip()} (coremltools, onnx in its venv: {deps.stdout.strip()})"


# ---- formatting ----------------------------------------------------------------------------------

def fmt_s(x) -> str:
    return "—" if x is None else (f"{x:.2f}" if x < 100 else f"{x:.0f}")


def fmt_mb(x) -> str:
    return "—" if x is None or x != x else f"{x:,.0f}"


def dir_size_mb(path: Path) -> Optional[float]:
    if not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def one_line(text: Optional[str], limit: int = 240) -> str:
    if not text:
        return "ok"
    first = " ".join(text.split())
    return (first[:limit] + "…") if len(first) > limit else first


def cell(x, fmt="{:.2f}") -> str:
    """``x`` formatted, '—' for a value not measured."""
    return "—" if x is None else fmt.format(x)


# ---- the run -------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small vocoder, the chains and the small models' forwards")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per measured process")
    ap.add_argument("--no-onnx2coreml", action="store_true", help="skip the onnx2coreml comparison")
    ap.add_argument("--no-torch", action="store_true", help="skip coremltools' torch path")
    ap.add_argument("--repeat", type=int, default=50, help="interleaved forwards per small model (best kept)")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite --out from the measurements saved in --workdir, measuring nothing")
    args = ap.parse_args(argv)
    state_path = args.workdir / "state.pickle"
    if args.render_only:
        args.out.write_text("\n".join(report(**pickle.loads(state_path.read_bytes()))) + "\n")
        print(f"[bench] wrote {args.out}")
        return 0

    import build_speed
    import torch_path
    import validate_speed

    shutil.rmtree(args.workdir, ignore_errors=True)     # packages are built by this run's code, never cached
    args.workdir.mkdir(parents=True)
    runner = Runner(args.workdir, args.timeout)
    runners = [runner]

    def sub_runner(name: str) -> Runner:
        """A runner with its own folder (each script names its files its own way)."""
        (args.workdir / name).mkdir()
        runners.append(Runner(args.workdir / name, args.timeout))
        return runners[-1]

    state = {"started": datetime.datetime.now(datetime.timezone.utc), "env_machine": machine(),
             "env_versions": versions(), "quick": args.quick, "o2c_note": "skipped (--no-onnx2coreml)",
             "torch_note": "skipped", "builds": None, "phases": None, "torch": None, "dilated": {},
             "interpreter": {}, "validate": {}, "big_params": None, "complete": False}

    def flush():
        """Write results.md with what is measured so far (a stopped run still leaves its numbers)."""
        state["finished"] = datetime.datetime.now(datetime.timezone.utc)
        state["load_end"] = os.getloadavg()
        state_path.write_bytes(pickle.dumps(state))
        args.out.write_text("\n".join(report(**state)) + "\n")
        (args.workdir / "measurements.json").write_text(json.dumps(
            [{"label": m.label, "wall_s": m.wall_s, "timed_out": m.timed_out, **m.result}
             for r in runners for m in r.log],
            indent=1, default=str))

    o2c = None
    if not args.no_onnx2coreml:
        o2c, state["o2c_note"] = ensure_venv(ONNX2COREML_VENV, "onnx2coreml")
    torch_python = None
    if not (args.quick or args.no_torch):
        torch_python = torch_path.TORCH_VENV / "bin" / "python"
        try:
            torch_path.ensure_torch_venv(torch_python)
            state["torch_note"] = f"venv {torch_path.TORCH_VENV}"
        except (subprocess.CalledProcessError, SystemExit) as e:
            torch_python, state["torch_note"] = None, f"no torch venv: {e}"

    models = ("small", "chains") if args.quick else ("big", "small", "chains")
    builds = state["builds"] = build_speed.measure(sub_runner("builds"), models, o2c)
    flush()
    if builds["big_onnx"]:
        from onnx2mil import models as reference_models
        state["big_params"] = reference_models.parameter_count(BIG)
        state["phases"] = runner.measure(f"onnx2mil-{BIG}-fp16-phases", "convert",
                                         {"onnx": str(builds["big_onnx"]), "precision": "fp16", "phases": True,
                                          "out": str(args.workdir / "phases.mlpackage")})
        flush()
    if torch_python:
        ours = {precision: (ms, builds["packages"].get((build_speed.SMALL_LABEL, precision)))
                for label, precision, _, ms, _ in builds["rows"] if label == build_speed.SMALL_LABEL}
        state["torch"] = torch_path.measure(sub_runner("torch"), torch_python, 3, ours)
        flush()
    for precision in ("fp32", "fp16"):
        state["dilated"][precision] = runner.measure(f"dilated-pool-{precision}", "dilated_pool", {"precision": precision})
    flush()
    cache = args.workdir / "interpreter-packages"
    cache.mkdir()
    for precision in (("fp32",) if args.quick else ("fp32", "fp16")):
        for model in SMALL_MODELS + (() if args.quick else (BIG,)):
            state["interpreter"][model, precision] = runner.measure(
                f"interpreter-{model.replace(':', '-')}-{precision}", "interpreter_vs_ort",
                {"model": model, "precision": precision, "threads": 1, "repeat": 5 if model == BIG else args.repeat,
                 "cache_dir": str(cache)})
            flush()
    if not args.quick:
        for precision in ("fp32", "fp16"):
            try:
                state["validate"][precision] = validate_speed.run(precision)
            except RuntimeError as e:
                state["validate"][precision] = {"error": one_line(str(e), 400)}
            flush()
    state["complete"] = True
    flush()
    print(f"[bench] wrote {args.out}")
    return 0


# ---- the report ----------------------------------------------------------------------------------

def _verdict(values: list, ok) -> str:
    """'met' if every measured value passes ``ok``, 'missed' if one does not, '—' if none was measured."""
    values = [v for v in values if v is not None]
    if not values:
        return "not measured"
    return "met" if all(ok(v) for v in values) else "**missed**"


def goal_rows(builds, torch, dilated, interpreter, big_params) -> list[str]:
    """Issue 12's "done when", each goal with this run's numbers and whether they meet it."""
    import build_speed
    import torch_path

    rows = {(label, precision): (build_speed.seconds(floors, build_speed.FLOOR_KEYS), build_speed.seconds(ours),
                                 build_speed.seconds(theirs), build_speed.peak(ours))
            for label, precision, floors, ours, theirs in (builds or {}).get("rows", [])}
    L = ["| goal | measured | status |", "|---|---|---|"]
    big, small = build_speed.BIG_LABEL, build_speed.SMALL_LABEL

    def times_floor(precision):
        floor, ours, _, _ = rows.get((big, precision), (None,) * 4)
        return (ours / floor if ours and floor else None), f"{fmt_s(ours)} s vs floor {fmt_s(floor)} s"

    def faster(label, precision):
        _, ours, theirs, _ = rows.get((label, precision), (None,) * 4)
        return (theirs / ours if ours and theirs else None), f"{fmt_s(theirs)} vs {fmt_s(ours)} s"

    r16, t16 = times_floor("fp16")
    L.append(f"| big vocoder, fp16, build + save ≤ 3× the weight-I/O floor | {cell(r16, '{:.1f}×')} ({t16}) "
             f"| {_verdict([r16], lambda v: v <= 3)} |")
    f16, t = faster(big, "fp16")
    f32, t32 = faster(big, "fp32")
    L.append(f"| big vocoder, fp16, ≥ 5× faster than onnx2coreml | {cell(f16, '{:.1f}×')} ({t}); fp32 {cell(f32, '{:.1f}×')} "
             f"({t32}) | {_verdict([f16], lambda v: v >= 5)} |")
    r32, t32 = times_floor("fp32")
    L.append(f"| big vocoder, fp32, ≤ 2.5× the floor | {cell(r32, '{:.1f}×')} ({t32}) | {_verdict([r32], lambda v: v <= 2.5)} |")
    if big_params:
        limit = 2 * big_params * 4 / 2 ** 20 + 300
        rss = [rows.get((big, p), (None,) * 4)[3] for p in ("fp16", "fp32")]
        L.append(f"| peak RSS on the big vocoder ≤ 2× fp32 weight bytes + 300 MB ({limit:,.0f} MB) "
                 f"| fp16 {fmt_mb(rss[0])} MB, fp32 {fmt_mb(rss[1])} MB | {_verdict(rss, lambda v: v <= limit)} |")
    s16, s32 = faster(small, "fp16"), faster(small, "fp32")
    L.append(f"| small vocoder ≥ 4× faster than onnx2coreml | fp16 {cell(s16[0], '{:.1f}×')} ({s16[1]}), "
             f"fp32 {cell(s32[0], '{:.1f}×')} ({s32[1]}) | {_verdict([s16[0], s32[0]], lambda v: v >= 4)} |")
    if torch and not torch["reference"].error:
        tr = [torch_path.ratio(torch, p) for p in torch_path.PRECISIONS]
        L.append(f"| small vocoder ≥ 10× faster than coremltools' torch path | "
                 + ", ".join(f"{p} {cell(v, '{:.1f}×')}" for p, v in zip(torch_path.PRECISIONS, tr))
                 + f" | {_verdict(tr, lambda v: v >= 10)} |")
    else:
        L.append("| small vocoder ≥ 10× faster than coremltools' torch path | not measured in this run | — |")

    def forward_ratio(model, precision):
        m = interpreter.get((model, precision))
        return None if m is None or m.error else m.result["ratio"]

    fp32 = [forward_ratio(m, "fp32") for m in SMALL_MODELS]
    L.append("| interpreter forward ≤ 2× onnxruntime (fp32, one thread each) | "
             + ", ".join(f"{MODEL_LABELS[m]} {cell(v, '{:.2f}×')}" for m, v in zip(SMALL_MODELS, fp32))
             + f" | {_verdict(fp32, lambda v: v <= 2)} |")
    big_fwd = forward_ratio(BIG, "fp32")
    L.append(f"| interpreter forward ≤ 1.5× onnxruntime on the big vocoder (fp32) | {cell(big_fwd, '{:.2f}×')} "
             f"| {_verdict([big_fwd], lambda v: v <= 1.5)} |")
    fp16 = [forward_ratio(m, "fp16") for m in SMALL_MODELS + (BIG,)]
    if any(v is not None for v in fp16):
        L.append("| the same at fp16 (the package computes in fp16; onnxruntime runs the fp32 model) | "
                 + ", ".join(f"{MODEL_LABELS[m]} {cell(v, '{:.2f}×')}" for m, v in zip(SMALL_MODELS + (BIG,), fp16))
                 + f" | {_verdict(fp16[:-1], lambda v: v <= 2)} (≤ 2×), {_verdict(fp16[-1:], lambda v: v <= 1.5)} "
                 "(big, ≤ 1.5×) |")
    pools = {p: (None if m.error else m.result["build_s"]) for p, m in dilated.items()}
    L.append("| the dilated-MaxPool case builds in under 5 s | "
             + ", ".join(f"{p} {fmt_s(v)} s" for p, v in pools.items())
             + f" | {_verdict(list(pools.values()), lambda v: v < 5)} |")
    chains = [(n, build_speed.seconds(ours)) for n, ours, _ in (builds or {}).get("chains", [])]
    if len(chains) == 2 and all(t for _, t in chains):
        (n1, t1), (n2, t2) = chains
        growth = (t2 / n2) / (t1 / n1)
        L.append(f"| linear scaling: per-node time at {n2:,} nodes ≤ 1.2× that at {n1:,} | "
                 f"{1000 * t1 / n1:.2f} and {1000 * t2 / n2:.2f} ms per node ({growth:.2f}×) "
                 f"| {_verdict([growth], lambda v: v <= 1.2)} |")
    return L


def report(started, finished, env_machine, env_versions, quick, o2c_note, torch_note, builds, phases, torch, dilated,
           interpreter, validate, big_params, complete, load_end) -> list[str]:
    import build_speed
    import torch_path

    L = ["# onnx2mil benchmarks", "",
         f"One run, {started:%Y-%m-%d %H:%M} – {finished:%H:%M} UTC, of `python benchmarks/run.py"
         f"{' --quick' if quick else ''}`" + ("." if complete else "; **the run was still going or was stopped: "
                                               "sections not reached are missing**."), "",
         "## Machine and versions", "",
         f"- CPU: {env_machine['cpu']}, {env_machine['cores']} cores; RAM {env_machine['ram_gb']:.1f} GB; "
         f"{env_machine['os']}; Python {env_machine['python']}",
         "- " + ", ".join(f"{k} {v}" for k, v in env_versions.items()),
         f"- onnx2coreml: {o2c_note}; coremltools' torch path: {torch_note}",
         f"- Load average (1, 5, 15 min) at the start: {', '.join(f'{x:.1f}' for x in env_machine['load'])}; "
         f"at the end: {', '.join(f'{x:.1f}' for x in load_end)}.", "",
         "Every step runs in its own process, one at a time. Times are the step's own seconds inside its "
         "process (imports excluded); peak RSS is that process's VmHWM.", "",
         "## Issue 12's goals in this run", ""]
    L += goal_rows(builds, torch, dilated, interpreter, big_params) + [""]

    if builds:
        L += ["## Conversion: build + save", "",
              "The big vocoder is the 115M-parameter BigVGAN of `models/` (Qwen2.5-Omni's token2wav size), written "
              "as ONNX with external data; the small vocoder is Qwen2.5-Omni's BigVGAN as transformers' dynamo "
              "export gives it, full depth, 64 channels (`tests/real_exports`). Weight-I/O floor: `onnx.load` + "
              "every weight cast to the precision, written to one file and fsynced. onnx2coreml gets Constant "
              "nodes rewritten as initializers (it refuses them otherwise).", ""]
        L += build_speed.render(builds) + [""]
    if phases is not None:
        L += [f"### The big vocoder's fp16 build by phase (a separate run with phase timers: "
              f"{fmt_s(build_speed.seconds(phases))} s build + save)", ""]
        if phases.error:
            L.append(f"failed: {one_line(phases.error)}")
        else:
            L += ["| phase | time (s) | peak RSS (MB) | RSS after (MB) |", "|---|---:|---:|---:|"]
            for p in sorted(phases.result["phases"], key=lambda p: p["start"]):
                label = ("&nbsp;&nbsp;&nbsp;&nbsp;" * p["depth"]) + p["phase"].strip()
                L.append(f"| {label} | {fmt_s(p['s'])} | {fmt_mb(p['peak_mb'])} | {fmt_mb(p['rss_after_mb'])} |")
        L.append("")
    if torch:
        L += ["## coremltools' torch path (small vocoder)", "",
              "`torch.jit.trace` + `ct.convert(traced, convert_to=\"mlprogram\", compute_precision=...)` + save of "
              "the same model as torch builds it (`tests/real_exports/export.py`, seeded random weights), against "
              "onnx2mil's build + save above (the same measurements).", ""]
        L += torch_path.render(torch) + [""]
    if dilated:
        L += ["## Dilated pools (issue 12)", "",
              "onnx's pytorch-converted `test_MaxPool2d_stride_padding_dilation`: one MaxPool, kernel 60×80, "
              "dilation 10, stride 10, on 1×1×1000×1000 (it took 650 s to build when each kernel tap was a "
              "slice + max).", "",
              "| precision | build_coreml wall (s) | CPU (s) | final program ops | interpreter forward (s) "
              "| max abs error vs onnx's expected output |", "|---|---:|---:|---|---:|---:|"]
        for precision, m in dilated.items():
            if m.error:
                L.append(f"| {precision} | failed: {one_line(m.error)} | | | | |")
                continue
            r = m.result
            ops = ", ".join(f"{k} {v}" for k, v in sorted(r["ops"].items(), key=lambda kv: -kv[1]))
            L.append(f"| {precision} | {fmt_s(r['build_s'])} | {fmt_s(r['build_cpu_s'])} | {sum(r['ops'].values())} "
                     f"({ops}) | {fmt_s(r['forward_s'])} | {r['max_abs_err']:.2g} |")
        L.append("")
    if interpreter:
        precisions = sorted({p for _, p in interpreter}, reverse=True)
        L += ["## Forward: MIL interpreter vs onnxruntime", "",
              "`onnx2mil.predict` on the opened package against onnxruntime on the ONNX model (fp32), one thread "
              "each, calls interleaved, the best of N after a warm-up. Error: max |interpreter − onnxruntime| / "
              "max |onnxruntime| over the outputs.", "",
              "| model | precision | MIL ops | onnxruntime (ms) | interpreter (ms) | interpreter / onnxruntime "
              "| relative error | N |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for precision in precisions:
            for model in SMALL_MODELS + (BIG,):
                m = interpreter.get((model, precision))
                if m is None:
                    continue
                if m.error:
                    L.append(f"| {MODEL_LABELS[model]} | {precision} | failed: {one_line(m.error)} | | | | | |")
                    continue
                r = m.result
                L.append(f"| {MODEL_LABELS[model]} | {precision} | {r['mil_ops']} | {r['ort_s'] * 1e3:.2f} "
                         f"| {r['mil_s'] * 1e3:.2f} | {r['ratio']:.2f}× | {r['rel_error']:.1e} | {r.get('repeat', '—')} |")
        L.append("")
    if validate:
        L += ["## validate() vs the two forwards it needs (big vocoder, issue 9)", "",
              "Each in its own process: an onnxruntime session + run, `onnx2mil.predict` on the package (loading "
              "included), and `onnx2mil.validate` (every tensor, accumulated and local error). Goal: validate ≤ 3× "
              "the two forwards.", "",
              "| precision | onnxruntime (s) | interpreter (s) | validate (s) | ratio | validate peak RSS (MB) "
              "| verdict |", "|---|---:|---:|---:|---:|---:|---|"]
        for precision, r in validate.items():
            if "error" in r:
                L.append(f"| {precision} | failed: {r['error']} | | | | | |")
                continue
            v = r["validate"]
            L.append(f"| {precision} | {r['ort']['seconds']:.2f} | {r['interpreter']['seconds']:.2f} "
                     f"| {v['seconds']:.2f} | {r['ratio']:.2f}× | {v['peak_rss_mb']:,.0f} "
                     f"| {'ok' if v['ok'] else 'DIVERGES'} {json.dumps(v['counts'])} |")
        L.append("")
    return L


if __name__ == "__main__":
    sys.exit(main())
