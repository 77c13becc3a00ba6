"""Summaries of the coremltools MIL op suite, and the script that regenerates docs/mil_op_suite.md.

    python tests/mil_op_suite/report.py            # runs the full suite (-n 2), writes the doc
    python tests/mil_op_suite/report.py --results a.json b.json  # from saved runs, merged

A case is *numeric* when it ran at least one prediction through the interpreter. A numeric case
fails numerically when one of coremltools' comparisons (``compare_backend``: the prediction and
its check against the expected values) raised; the pass rate is over numeric cases that did not
end as coremltools' own xfail (known CoreML bugs), which are listed apart.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

OUTCOME_RANK = {"passed": 0, "xpassed": 1, "skipped": 2, "xfailed": 3, "failed": 4, "error": 5}
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from mil_op_suite.test_coremltools_ops import known_failure  # noqa: E402
DOC = REPO / "docs" / "mil_op_suite.md"


def case_outcome(rep):
    """The outcome one phase report gives its case, or None if it says nothing new."""
    if hasattr(rep, "wasxfail"):
        return "xfailed" if rep.skipped else "xpassed"
    if rep.skipped:
        return "skipped"
    if rep.failed:
        return "failed" if rep.when == "call" else "error"
    if rep.passed and rep.when == "call":
        return "passed"
    return None


def reason_of(rep) -> str:
    if hasattr(rep, "wasxfail"):
        return str(rep.wasxfail)
    longrepr = rep.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    return " ".join(text.split())[:400]


def precision_of(nodeid: str) -> str:
    """fp16/fp32 from a case id (coremltools' backend parameter), "-" when it has none."""
    for precision in ("fp16", "fp32"):
        if f"mlprogram-{precision}-" in nodeid:
            return precision
    return "-"


MISSING_KERNEL = "UnsupportedMILOpError"


def numeric_outcome(r: dict):
    """None (not a numeric case), "passed", "failed", or "missing_kernel" (an op has no kernel)."""
    if not r["predictions"] or r["outcome"] == "xfailed":
        return None
    if not (r.get("comparison_failures", 1) and r["outcome"] in ("failed", "error")):
        return "passed"
    return "missing_kernel" if MISSING_KERNEL in r["reason"] else "failed"


def summarize(records: list[dict]) -> dict:
    modules: dict[str, Counter] = defaultdict(Counter)
    precisions: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        outcome = numeric_outcome(r)
        if outcome is not None:
            precisions[precision_of(r["nodeid"])][f"numeric_{outcome}"] += 1
        counts = modules[r["module"]]
        counts[r["outcome"]] += 1
        counts["cases"] += 1
        outcome = numeric_outcome(r)
        if outcome is not None:
            counts["numeric"] += 1
            counts[f"numeric_{outcome}"] += 1
    total = Counter()
    for counts in modules.values():
        total.update(counts)
    graded = total["numeric_passed"] + total["numeric_failed"]
    everything = graded + total["numeric_missing_kernel"]
    return {
        "modules": {m: dict(c) for m, c in sorted(modules.items())},
        "total": dict(total),
        # over numeric cases whose every op has a kernel; the second counts missing kernels as failures
        "numeric_pass_rate": total["numeric_passed"] / graded if graded else None,
        "numeric_pass_rate_all": total["numeric_passed"] / everything if everything else None,
        "precisions": {p: dict(c) for p, c in sorted(precisions.items())},
        "duration_s": round(sum(r["duration"] for r in records), 1),
    }


def summary_lines(summary: dict) -> list[str]:
    lines = [f"{'module':45s} {'cases':>6s} {'passed':>6s} {'failed':>6s} {'skipped':>7s} {'xfail':>6s} "
             f"{'numeric':>7s} {'num.ok':>6s}"]
    for module, c in summary["modules"].items():
        lines.append(f"{module:45s} {c.get('cases', 0):6d} {c.get('passed', 0) + c.get('xpassed', 0):6d} "
                     f"{c.get('failed', 0) + c.get('error', 0):6d} {c.get('skipped', 0):7d} "
                     f"{c.get('xfailed', 0):6d} {c.get('numeric', 0):7d} {c.get('numeric_passed', 0):6d}")
    t = summary["total"]
    rate = summary["numeric_pass_rate"]
    lines.append(f"numeric cases: {t.get('numeric_passed', 0)} passed, {t.get('numeric_failed', 0)} failed"
                 + (f" ({100 * rate:.2f}% pass)" if rate is not None else "")
                 + f"; {t.get('numeric_missing_kernel', 0)} more reach an op without a kernel")
    for precision, c in summary.get("precisions", {}).items():
        lines.append(f"  {precision}: {c.get('numeric_passed', 0)} passed, {c.get('numeric_failed', 0)} failed, "
                     f"{c.get('numeric_missing_kernel', 0)} missing a kernel")
    return lines


def write_doc(data: dict, command: str, wall_s: float | None, path: Path = DOC) -> None:
    summary, records = data["summary"], data["records"]
    t = summary["total"]
    rate = summary["numeric_pass_rate"]
    out = [
        "# coremltools' MIL op tests through the onnx2mil interpreter",
        "",
        "coremltools ships its MIL op unit tests in the wheel (`coremltools/converters/mil/mil/ops/tests`).",
        "Off macOS they convert each test program but skip the numeric comparison. `tests/mil_op_suite`",
        "runs them with `MLModel.predict` replaced by our interpreter on the program as saved (after",
        "coremltools' passes) and keeps coremltools' expected values and tolerances as the oracle.",
        "Backends: `mlprogram`, fp16 and fp32. Modules: every op family with at least one kernel.",
        "",
        f"Generated by `python tests/mil_op_suite/report.py` — run: `{command}`"
        + (f", wall time {wall_s:.0f} s on this machine." if wall_s is not None else "."),
        "",
        f"**Numeric cases** (at least one interpreted prediction): {t.get('numeric', 0)}. "
        f"Of those whose ops all have a kernel: passed {t.get('numeric_passed', 0)}, "
        f"failed {t.get('numeric_failed', 0)}"
        + (f" — **{100 * rate:.2f}%** pass" if rate is not None else "")
        + f". {t.get('numeric_missing_kernel', 0)} more reach an op without a kernel (refused with "
        f"`UnsupportedMILOpError`)"
        + (f"; counting those as failures: {100 * summary['numeric_pass_rate_all']:.2f}%."
           if summary.get("numeric_pass_rate_all") is not None else "."),
        f"All cases: {t.get('cases', 0)} — passed {t.get('passed', 0)}, xpassed {t.get('xpassed', 0)}, "
        f"failed {t.get('failed', 0)}, errors {t.get('error', 0)}, skipped {t.get('skipped', 0)}, "
        f"xfailed {t.get('xfailed', 0)} (coremltools' own expected failures).",
        "",
        "By precision (numeric cases): " + "; ".join(
            f"{p} {c.get('numeric_passed', 0)} passed / {c.get('numeric_failed', 0)} failed / "
            f"{c.get('numeric_missing_kernel', 0)} missing a kernel"
            for p, c in summary.get("precisions", {}).items()) + ".",
        "",
        "| module | cases | passed | failed | skipped | xfailed | numeric | numeric passed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for module, c in summary["modules"].items():
        out.append(f"| {module} | {c.get('cases', 0)} | {c.get('passed', 0) + c.get('xpassed', 0)} | "
                   f"{c.get('failed', 0) + c.get('error', 0)} | {c.get('skipped', 0)} | {c.get('xfailed', 0)} | "
                   f"{c.get('numeric', 0)} | {c.get('numeric_passed', 0)} |")
    failures = [r for r in records if r["outcome"] in ("failed", "error")]
    missing = [r for r in failures if numeric_outcome(r) == "missing_kernel"]
    failures = [r for r in failures if numeric_outcome(r) != "missing_kernel"]
    if missing:
        ops = Counter(m.group(1) for r in missing for m in [re.search(r"MIL op '([^']+)'", r["reason"])] if m)
        out += ["", f"## Cases that reach an op without a kernel ({len(missing)})", ""]
        out += [f"- `{op}`: {n} cases" for op, n in ops.most_common()]
    out += ["", f"## Remaining failures ({len(failures)})", ""]
    if not failures:
        out.append("None.")
    for r in failures:
        if r["predictions"] and r.get("comparison_failures", 1):
            kind = "numeric"
        elif r["predictions"]:
            kind = "after its comparisons passed"
        else:
            kind = "before any prediction"
        test_id = r["nodeid"].split("::", 1)[1]
        known = known_failure(r["nodeid"])
        out.append(f"- `{test_id}` ({kind}): {r['reason']}" + (f"\n  - known: {known}" if known else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, nargs="+",
                        help="JSON files written by --mil-op-suite-results (merged), instead of running")
    parser.add_argument("--wall", type=float, help="wall time of the run(s) behind --results, in seconds")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    command = f"python -m pytest -q -n {args.workers} tests/mil_op_suite --mil-op-suite-full"
    wall = None
    if args.results is None:
        with tempfile.TemporaryDirectory() as tmp:
            results = Path(tmp) / "results.json"
            start = time.monotonic()
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", args.workers,
                            "tests/mil_op_suite", "--mil-op-suite-full", f"--mil-op-suite-results={results}"],
                           cwd=REPO, check=False)
            wall = time.monotonic() - start
            data = json.loads(results.read_text())
    else:
        records = [r for path in args.results for r in json.loads(path.read_text())["records"]]
        data = {"summary": summarize(records), "records": records}
        wall = args.wall
    write_doc(data, command, wall, args.doc)
    print("\n".join(summary_lines(data["summary"])))
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
