"""Which of coremltools' passes change anything on the programs onnx2mil emits, over a corpus.

    python benchmarks/pass_corpus.py                 # reference models + tests/real_exports, fp16 and fp32
    python benchmarks/pass_corpus.py --base default  # coremltools' DEFAULT minus the hazards (the old pipeline)
    python benchmarks/pass_corpus.py --check-gates   # gated pipeline == ungated, on every model of the corpus

For issue 12 (a curated pipeline). Every pass run inside ``build_coreml`` is timed and its effect
recorded as a change of the program's fingerprint: per op (recursively into blocks) its type, output
names and output types. That sees fusions, removals, renames and dtype changes; a pass that only
rewrites a constant's values in place (same type) is not seen. Writes
``benchmarks/pass_corpus.json`` ({pass: {runs, seconds, changed: {model/precision: runs}}}) and
prints a table. ``--check-gates`` instead builds every model at fp16 and fp32 with the curated
pipeline's gates (``passes.GATES``, ``passes.IDEMPOTENT``) and without, and checks the two final programs are the same
(ops, names, types, constant values; ``tests/test_passes.py``'s ``program_ops``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import coremltools as ct
import onnx
from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

REFERENCE = ["bigvgan-tiny", "resnet-tiny", "resnet-18", "transformer-tiny"]


def fingerprint(prog) -> tuple:
    items = []
    stack = [prog.functions["main"]]
    while stack:
        block = stack.pop()
        for op in block.operations:
            items.append((op.op_type, tuple((v.name, str(v.sym_type)) for v in op.outputs)))
            stack.extend(op.blocks)
    return tuple(items)


def corpus() -> list[tuple[str, onnx.ModelProto]]:
    import onnx2mil.models as reference
    from real_exports import corpus as real

    out = [(name, reference.build(name)) for name in REFERENCE]
    out += [(m["name"], onnx.load(str(real.path(m)))) for m in real.models()]
    return out


def check_gates() -> int:
    import warnings

    import onnx2mil
    from onnx2mil.backend.convert import passes, pipeline
    from test_passes import program_ops

    different = []
    for name, model in corpus():
        for precision in ("fp16", "fp32"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gated = onnx2mil.build_coreml(model, compute_precision=precision)
                saved = passes.GATES, passes.IDEMPOTENT
                passes.GATES, passes.IDEMPOTENT = {}, {}
                try:
                    ungated = onnx2mil.build_coreml(model, compute_precision=precision)
                finally:
                    passes.GATES, passes.IDEMPOTENT = saved
            same = program_ops(gated) == program_ops(ungated)
            skipped = sum(runs for runs, _ in pipeline.read_pipeline(gated)["gated"].values())
            print(f"{name}/{precision}: {'same program' if same else 'DIFFERENT'}; {skipped} pass runs skipped",
                  flush=True)
            if not same:
                different.append(f"{name}/{precision}")
    print(f"different: {different or 'none'}")
    return 1 if different else 0


def main() -> int:
    import onnx2mil

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", choices=("onnx2mil", "default"), default="default",
                        help="the pipeline measured: onnx2mil's own, or coremltools' DEFAULT (minus the hazards)")
    parser.add_argument("--out", type=Path, default=HERE / "pass_corpus.json")
    parser.add_argument("--check-gates", action="store_true", help="gated pipeline == ungated on every model")
    args = parser.parse_args()
    if args.check_gates:
        return check_gates()
    base = ct.PassPipeline.DEFAULT if args.base == "default" else None

    stats: dict = {}
    current = [""]
    original = AbstractGraphPass.__call__

    def timed(self, prog):
        before = fingerprint(prog)
        t0 = time.perf_counter()
        result = original(self, prog)
        seconds = time.perf_counter() - t0
        entry = stats.setdefault(str(self), {"runs": 0, "seconds": 0.0, "changed": {}})
        entry["runs"] += 1
        entry["seconds"] += seconds
        if fingerprint(prog) != before:
            entry["changed"][current[0]] = entry["changed"].get(current[0], 0) + 1
        return result

    AbstractGraphPass.__call__ = timed
    builds: dict = {}
    try:
        for name, model in corpus():
            for precision in ("fp16", "fp32"):
                current[0] = f"{name}/{precision}"
                t0 = time.perf_counter()
                onnx2mil.build_coreml(model, compute_precision=precision, pass_pipeline=base)
                builds[current[0]] = time.perf_counter() - t0
                print(f"{current[0]}: {builds[current[0]]:.2f} s", file=sys.stderr)
    finally:
        AbstractGraphPass.__call__ = original
    args.out.write_text(json.dumps({"base": args.base, "builds": builds, "passes": stats}, indent=1))
    print("| pass | runs | seconds | programs changed |")
    print("|---|---:|---:|---|")
    for name, e in sorted(stats.items(), key=lambda kv: -kv[1]["seconds"]):
        changed = ", ".join(sorted(e["changed"])) or "none"
        print(f"| {name} | {e['runs']} | {e['seconds']:.2f} | {len(e['changed'])}: {changed[:300]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
