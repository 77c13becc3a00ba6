"""Benchmarks, one command: ``python benchmarks/run.py`` writes ``benchmarks/results.md``.

Every measurement runs in its own process (``measure.py``), which reports its own peak RSS (VmHWM);
the wall time is the whole process's, so memory and imports of earlier steps never leak into later ones.
Measured: onnx2mil conversion (build_coreml + save) of BigVGAN tiny and Qwen2.5-Omni size against
the weight-I/O floor and the onnx2coreml package; the MIL interpreter's forward against
onnxruntime's; validate() against the two forwards it needs; conversion of 1k/10k/50k-node chains;
a cProfile of the big conversion. ``--quick`` keeps to the tiny model and the 1k/10k chains.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pickle
import platform
import pstats
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

HERE = Path(__file__).resolve().parent
MEASURE = HERE / "measure.py"
DEFAULT_WORKDIR = Path("/tmp/onnx2mil-bench")
ONNX2COREML_VENV = Path("/tmp/venv-onnx2coreml")
ONNX_COREML_VENV = Path("/tmp/venv-onnx-coreml")
BIG = "bigvgan-qwen2.5-omni"
TINY = "bigvgan-tiny"


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
    import coremltools
    import onnx
    import onnxruntime

    import onnx2mil
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


def profile_tables(stats_path: Path, limit: int = 20) -> list[str]:
    stats = pstats.Stats(str(stats_path))
    rows = [(func, nc, tt, ct) for func, (cc, nc, tt, ct, _) in stats.stats.items()]
    total = stats.total_tt
    by_package: dict[str, float] = {}
    for (filename, _line, _name), _nc, tt, _ct in rows:
        by_package[_package(filename)] = by_package.get(_package(filename), 0.0) + tt
    out = [f"Total profiled time {total:.1f} s.", "", "Own time by package:", "",
           "| package | own time (s) | share |", "|---|---:|---:|"]
    for pkg, tt in sorted(by_package.items(), key=lambda kv: -kv[1])[:12]:
        out.append(f"| {pkg} | {tt:.2f} | {100 * tt / total:.0f}% |")
    for key, title in ((3, "cumulative"), (2, "own time")):
        out += ["", f"Top {limit} by {title}:", "", "| function | calls | own (s) | cumulative (s) |",
                "|---|---:|---:|---:|"]
        for func, nc, tt, ct in sorted(rows, key=lambda r: -r[key])[:limit]:
            out.append(f"| `{_where(func)}` | {nc} | {tt:.2f} | {ct:.2f} |")
    return out


def _package(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    if "/onnx2mil/" in filename or "/work/main/" in filename:
        return "onnx2mil"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    return "python stdlib"


def _where(func) -> str:
    filename, line, name = func
    if filename.startswith("~"):
        return name
    for marker in ("site-packages/", "/work/main/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    else:
        filename = filename.rsplit("/", 2)[-1]
    return f"{filename}:{line} {name}"


# ---- the benchmark -------------------------------------------------------------------------------

def prepare_models(runner: Runner, names: list[str]) -> dict:
    """ONNX files and example inputs in the workdir; returns {name: info}."""
    from onnx2mil import models
    out = {}
    for name in names:
        path = runner.workdir / f"{name}.onnx"
        t0 = time.perf_counter()
        models.save(name, path)
        inputs = runner.workdir / f"{name}.inputs.npz"
        np.savez(inputs, **models.example_inputs(name))
        data = path.with_name(path.name + ".data")
        out[name] = {"onnx": str(path), "inputs": str(inputs), "generate_s": time.perf_counter() - t0,
                     "onnx_mb": dir_size_mb(path) + (dir_size_mb(data) or 0.0),
                     "params": models.parameter_count(name)}
        print(f"[bench] generated {name}: {out[name]['onnx_mb']:.1f} MB in {out[name]['generate_s']:.1f} s", flush=True)
    return out


def conversion_rows(runner: Runner, name: str, info: dict, o2c_python: Optional[str]) -> list[dict]:
    rows = []
    wd = runner.workdir
    m = runner.measure(f"io_floor-{name}", "io_floor", {"onnx": info["onnx"], "out": str(wd / f"{name}.weights.fp16")})
    rows.append({"tool": "weight-I/O floor (onnx.load + write and fsync fp16 weights)", "m": m,
                 "phases": f"read {fmt_s(m.result.get('read_s'))}, write {fmt_s(m.result.get('write_s'))}, "
                           f"fsync {fmt_s(m.result.get('fsync_s'))}",
                 "out_mb": (m.result.get("bytes_written") or 0) / 1e6 or None})
    out = wd / f"{name}.mlpackage"
    m = runner.measure(f"onnx2mil-{name}", "convert", {"onnx": info["onnx"], "out": str(out), "phases": True})
    rows.append({"tool": "onnx2mil build_coreml + save (fp16)", "m": m,
                 "phases": _phases(m.result), "out_mb": dir_size_mb(out) if not m.error else None})
    if o2c_python:
        for fold in (False, True):
            out = wd / f"{name}.onnx2coreml{'-folded' if fold else ''}.mlpackage"
            shutil.rmtree(out, ignore_errors=True)
            label = f"onnx2coreml-{name}{'-constants-as-initializers' if fold else ''}"
            m = runner.measure(label, "onnx2coreml",
                               {"onnx": info["onnx"], "out": str(out), "constants_as_initializers": fold},
                               python=o2c_python)
            tool = "onnx2coreml convert + save (fp16)" + (", Constant nodes rewritten as initializers" if fold else "")
            rows.append({"tool": tool, "m": m, "phases": _phases(m.result),
                         "out_mb": dir_size_mb(out) if not m.error else None})
    return rows


def _phases(result: dict) -> str:
    if result.get("error"):
        return "—"
    return f"import {fmt_s(result.get('import_s'))}, build {fmt_s(result.get('build_s'))}, save {fmt_s(result.get('save_s'))}"


def _phase_split(phases: Optional[list]) -> str:
    """'load / emit, passes / serialise' seconds from a convert task's phase rows."""
    if not phases:
        return "—"

    def total(prefix):
        return sum(p["s"] for p in phases if p["phase"].startswith(prefix))
    return (f"{fmt_s(total('onnx2mil: load'))} / {fmt_s(total('onnx2mil: emit'))}, "
            f"{fmt_s(total('coremltools:') - total('coremltools: MIL ->'))} / {fmt_s(total('coremltools: MIL ->'))}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny model and 1k/10k chains only")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per measured process")
    ap.add_argument("--no-onnx2coreml", action="store_true", help="skip the onnx2coreml comparison")
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite --out from the measurements saved in --workdir, measuring nothing")
    args = ap.parse_args(argv)
    state_path = args.workdir / "state.pickle"
    if args.render_only:
        state = pickle.loads(state_path.read_bytes())
        args.out.write_text("\n".join(report(**state)) + "\n")
        print(f"[bench] wrote {args.out}")
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    runner = Runner(args.workdir, args.timeout)
    state = {"started": datetime.datetime.now(datetime.timezone.utc), "env_machine": machine(),
             "env_versions": versions(), "quick": args.quick, "o2c_note": "skipped (--no-onnx2coreml)",
             "old_note": "skipped (--no-onnx2coreml)", "baseline": None, "infos": {}, "conversions": {},
             "profile_lines": [], "forwards": {}, "validation": None, "scaling": [], "complete": False}

    def flush():
        """Write results.md with what is measured so far (a stopped run still leaves its numbers)."""
        state["finished"] = datetime.datetime.now(datetime.timezone.utc)
        state["load_end"] = os.getloadavg()
        state_path.write_bytes(pickle.dumps(state))
        args.out.write_text("\n".join(report(**state)) + "\n")
        (args.workdir / "measurements.json").write_text(json.dumps(
            [{"label": m.label, "wall_s": m.wall_s, "timed_out": m.timed_out, **m.result} for m in runner.log],
            indent=1))

    names = [TINY] if args.quick else [TINY, BIG]
    chain_sizes = [1000, 10000] if args.quick else [1000, 10000, 50000]

    o2c_python = None
    if not args.no_onnx2coreml:
        o2c_python, state["o2c_note"] = ensure_venv(ONNX2COREML_VENV, "onnx2coreml")
        old_python, state["old_note"] = ensure_venv(ONNX_COREML_VENV, "onnx-coreml")
        if old_python:
            m = runner.measure("onnx-coreml-import", "import_onnx_coreml", {}, python=old_python)
            state["old_note"] += f"; `import onnx_coreml` fails: {m.error}" if m.error else "; imports"

    state["baseline"] = runner.measure("baseline-import", "import_only", {})
    infos = state["infos"] = prepare_models(runner, names)
    for name in names:
        state["conversions"][name] = conversion_rows(runner, name, infos[name], o2c_python)
        flush()

    if not args.quick:
        stats = args.workdir / "convert-big.prof"
        m = runner.measure(f"onnx2mil-{BIG}-profiled", "convert",
                           {"onnx": infos[BIG]["onnx"], "out": str(args.workdir / "profiled.mlpackage"),
                            "profile": str(stats)})
        state["profile_lines"] = (profile_tables(stats) if stats.exists() and not m.error
                                  else [f"Profiling failed: {one_line(m.error)}"])
        flush()

    for name in names:
        package = args.workdir / f"{name}.mlpackage"
        if package.exists():
            state["forwards"][name] = runner.measure(
                f"forward-{name}", "forward", {"onnx": infos[name]["onnx"], "mlpackage": str(package),
                                               "inputs": infos[name]["inputs"], "repeats": 3 if name == TINY else 1})
            flush()
    tiny_package = args.workdir / f"{TINY}.mlpackage"
    if tiny_package.exists():
        state["validation"] = runner.measure(f"validate-{TINY}", "validate",
                                             {"onnx": infos[TINY]["onnx"], "mlpackage": str(tiny_package),
                                              "inputs": infos[TINY]["inputs"]})
        flush()

    for n in chain_sizes:
        path = args.workdir / f"chain{n}.onnx"
        gen = runner.measure(f"chain{n}-generate", "synthetic_chain", {"nodes": n, "out": str(path)})
        conv = runner.measure(f"chain{n}-onnx2mil", "convert",
                              {"onnx": str(path), "out": str(args.workdir / f"chain{n}.mlpackage"), "phases": True})
        state["scaling"].append((n, gen, conv))
        flush()
    state["complete"] = True
    flush()
    print(f"[bench] wrote {args.out}")
    return 0


def report(started, finished, env_machine, env_versions, quick, o2c_note, old_note, baseline, infos, conversions,
           profile_lines, forwards, validation, scaling, complete, load_end) -> list[str]:
    L = ["# onnx2mil benchmarks", "",
         f"Run {started:%Y-%m-%d %H:%M} – {finished:%H:%M} UTC with `python benchmarks/run.py"
         f"{' --quick' if quick else ''}`" + ("." if complete else "; **the run was still going or was stopped: "
                                               "sections not reached are missing**."), "",
         "## Machine and versions", "",
         f"- CPU: {env_machine['cpu']}, {env_machine['cores']} cores; RAM {env_machine['ram_gb']:.1f} GB; "
         f"{env_machine['os']}; Python {env_machine['python']}",
         "- " + ", ".join(f"{k} {v}" for k, v in env_versions.items()),
         f"- onnx2coreml: {o2c_note}",
         f"- onnx-coreml: {old_note}",
         f"- Load average (1, 5, 15 min) at the start: {', '.join(f'{x:.1f}' for x in env_machine['load'])}; "
         f"at the end: {', '.join(f'{x:.1f}' for x in load_end)}. Other work shared the 2 cores "
         "during the run, so absolute times carry that noise; ratios measured back to back are steadier.", "",
         "Every number comes from a separate process: wall time is the whole process (interpreter start and "
         "imports included), peak RSS is that process's maximum resident set (VmHWM). "
         f"Baseline, a process that only imports onnx2mil: {fmt_s(baseline.wall_s)} s, "
         f"{fmt_mb(baseline.peak_rss_mb)} MB peak RSS.", ""]

    L += ["## Conversion", ""]
    for name, rows in conversions.items():
        info = infos[name]
        L += [f"### {name}: {info['params']:,} parameters, ONNX {info['onnx_mb']:.1f} MB "
              f"(generated in {fmt_s(info['generate_s'])} s)", "",
              "| tool | process wall (s) | phases (s) | peak RSS (MB) | output (MB) | result |",
              "|---|---:|---|---:|---:|---|"]
        for r in rows:
            m = r["m"]
            out_mb = "—" if r["out_mb"] is None else f"{r['out_mb']:.1f}"
            L.append(f"| {r['tool']} | {fmt_s(m.wall_s)} | {r['phases']} | {fmt_mb(m.peak_rss_mb)} | {out_mb} | "
                     f"{one_line(m.error)} |")
        L.append("")
        phases = next((r["m"].result.get("phases") for r in rows if r["tool"].startswith("onnx2mil")), None)
        if phases:
            L += [f"onnx2mil conversion of {name} by phase (each phase's own peak RSS; indented = inside ct.convert):",
                  "", "| phase | time (s) | peak RSS (MB) | RSS after (MB) |", "|---|---:|---:|---:|"]
            for p in sorted(phases, key=lambda p: p["start"]):
                label = p["phase"].strip()
                label = ("&nbsp;&nbsp;&nbsp;&nbsp;" * p["depth"]) + label
                L.append(f"| {label} | {fmt_s(p['s'])} | {fmt_mb(p['peak_mb'])} | {fmt_mb(p['rss_after_mb'])} |")
            L.append("")

    if profile_lines:
        L += [f"## Where the conversion time goes ({BIG}, cProfile)", ""] + profile_lines + [""]

    L += ["## Forward: MIL interpreter (onnx2mil.predict) vs onnxruntime", "",
          "| model | ORT session (s) | ORT run (s) | interpreter first call (s) | interpreter run (s) | "
          "interpreter / ORT | max abs diff (fp16 package vs ORT fp32) | peak RSS (MB) | result |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, m in forwards.items():
        r = m.result
        ratio = (r["mil_run_s"] / r["ort_run_s"]) if r.get("mil_run_s") and r.get("ort_run_s") else None
        diff = r.get("max_abs_diff")
        L.append(f"| {name} | {fmt_s(r.get('ort_load_s'))} | {fmt_s(r.get('ort_run_s'))} | "
                 f"{fmt_s(r.get('mil_first_s'))} | {fmt_s(r.get('mil_run_s'))} | "
                 f"{'—' if ratio is None else f'{ratio:.0f}×'} | {'—' if diff is None else f'{diff:.2e}'} | "
                 f"{fmt_mb(m.peak_rss_mb)} | {one_line(m.error)} |")
    if not forwards:
        L.append("| — | | | | | | | | no package was built, nothing to run |")
    L.append("")

    L += ["## validate() vs the two forwards it needs", ""]
    if validation is None:
        L.append(f"Not run: no {TINY} package was built.")
    else:
        r = validation.result
        fwd = forwards.get(TINY)
        both = None
        if fwd is not None and not fwd.error:
            both = fwd.result["ort_load_s"] + fwd.result["ort_run_s"] + fwd.result["mil_first_s"]
        L += ["| model | validate (s) | ORT session + run + interpreter first call (s) | peak RSS (MB) | "
              "report | result |", "|---|---:|---:|---:|---|---|",
              f"| {TINY} | {fmt_s(r.get('validate_s'))} | {fmt_s(both)} | {fmt_mb(validation.peak_rss_mb)} | "
              f"{'—' if validation.error else ('ok' if r.get('ok') else 'failures') + ' ' + json.dumps(r.get('counts'))}"
              f"{'; first divergence ' + r['first_divergence'] if r.get('first_divergence') else ''} | "
              f"{one_line(validation.error)} |"]
    L.append("")

    L += ["## Scaling: chains of Add/Mul/Relu on (1, 16) tensors", "",
          "| nodes | onnx2mil process wall (s) | build (s) | save (s) | per node (ms) | "
          "of the build: onnx2mil load / emit, coremltools passes / serialise (s) | peak RSS (MB) | result |",
          "|---:|---:|---:|---:|---:|---|---:|---|"]
    for n, gen, conv in scaling:
        r = conv.result
        per_node = (r["build_s"] + r["save_s"]) / n * 1000 if not conv.error else None
        L.append(f"| {n:,} | {fmt_s(conv.wall_s)} | {fmt_s(r.get('build_s'))} | {fmt_s(r.get('save_s'))} | "
                 f"{'—' if per_node is None else f'{per_node:.2f}'} | {_phase_split(r.get('phases'))} | "
                 f"{fmt_mb(conv.peak_rss_mb)} | {one_line(conv.error or gen.error)} |")
    L.append("")
    return L


if __name__ == "__main__":
    sys.exit(main())
