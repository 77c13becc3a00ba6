"""Seeded mutants of small ONNX models, built by onnx2mil: run as a script (the fuzz test runs it in
a process with an address-space limit) it prints a JSON summary of the outcomes.

Mutations: truncated and byte-flipped files; structural edits of input/output dims and dtypes,
attributes, initializers (dims, dtype, truncated data), node wiring and the opset."""
import json
import random
import resource
import sys
import traceback
import warnings

import numpy as np
import onnx
import onnx.helper as oh
from onnx import numpy_helper


def seed_models() -> dict:
    from onnx2mil import models

    rng = np.random.default_rng(0)
    conv = oh.make_graph([oh.make_node("Conv", ["x", "w"], ["h"], name="/conv", pads=[1, 1]),
                          oh.make_node("Relu", ["h"], ["y"], name="/relu")], "conv",
                         [oh.make_tensor_value_info("x", 1, [1, 3, 16])], [oh.make_tensor_value_info("y", 1, [1, 4, 16])],
                         [numpy_helper.from_array(rng.standard_normal((4, 3, 3)).astype(np.float32), "w")])
    up = oh.make_graph([oh.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="/up", strides=[2], pads=[1, 1])],
                       "up", [oh.make_tensor_value_info("x", 1, [1, 6, 10])], [oh.make_tensor_value_info("y", 1, [1, 4, 20])],
                       [numpy_helper.from_array(rng.standard_normal((6, 4, 4)).astype(np.float32), "w"),
                        numpy_helper.from_array(np.linspace(-1, 1, 4, dtype=np.float32), "b")])
    attn = oh.make_graph([oh.make_node("MatMul", ["x", "w"], ["s"], name="/mm"),
                          oh.make_node("Where", ["mask", "s", "fill"], ["m"], name="/where"),
                          oh.make_node("Softmax", ["m"], ["y"], name="/softmax", axis=-1)],
                         "attn", [oh.make_tensor_value_info("x", 1, [2, 8, 8])], [oh.make_tensor_value_info("y", 1, [2, 8, 8])],
                         [numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w"),
                          numpy_helper.from_array(np.tril(np.ones((8, 8), bool)), "mask"),
                          numpy_helper.from_array(np.array(-1e4, np.float32), "fill")])
    opset = [oh.make_opsetid("", 17)]
    return {"conv": oh.make_model(conv, opset_imports=opset), "conv_transpose": oh.make_model(up, opset_imports=opset),
            "attention": oh.make_model(attn, opset_imports=opset), "resnet-tiny": models.build("resnet-tiny")}


def mutate(model: onnx.ModelProto, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "flip", "dim", "dtype", "attribute", "initializer", "wiring", "opset"])
    if kind in ("truncate", "flip"):
        data = bytearray(model.SerializeToString())
        if kind == "truncate":
            return kind, bytes(data[:rng.randrange(len(data))])
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return kind, bytes(data)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if kind == "dim":
        dims = rng.choice(list(g.input) + list(g.output)).type.tensor_type.shape.dim
        if dims:
            rng.choice(dims).dim_value = rng.choice([0, 1, 2, 7, 10**9, 2**31, 2**63 - 1])
    elif kind == "dtype":
        rng.choice(list(g.input) + list(g.output)).type.tensor_type.elem_type = rng.randrange(0, 25)
    elif kind == "attribute":
        node = rng.choice(list(g.node))
        if node.attribute:
            a = rng.choice(list(node.attribute))
            if a.ints:
                a.ints[rng.randrange(len(a.ints))] = rng.choice([-5, 0, 1, 3, 10**6])
            elif a.type == onnx.AttributeProto.INT:
                a.i = rng.choice([-5, 0, 1, 3, 10**6])
            elif a.type == onnx.AttributeProto.FLOAT:
                a.f = rng.choice([float("nan"), -1.0, 1e30])
    elif kind == "initializer" and g.initializer:
        t = rng.choice(list(g.initializer))
        edit = rng.choice(["dims", "dtype", "data"])
        if edit == "dims" and t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice([0, 1, 3, 10**6])
        elif edit == "dtype":
            t.data_type = rng.randrange(0, 25)
        else:
            t.raw_data = t.raw_data[:len(t.raw_data) // 2]
    elif kind == "wiring":
        node = rng.choice(list(g.node))
        if node.input:
            names = [i.name for i in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]
            node.input[rng.randrange(len(node.input))] = rng.choice(names + ["nowhere"])
    elif kind == "opset":
        m.opset_import[0].version = rng.choice([1, 6, 9, 13, 18, 21, 30])
    return kind, m.SerializeToString()


def checker_or_onnxruntime_accepts(model: onnx.ModelProto) -> bool:
    try:
        onnx.checker.check_model(model, full_check=True)
        return True
    except Exception:  # noqa: BLE001 - any rejection: onnxruntime decides
        import onnxruntime as ort

        try:
            ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            return True
        except Exception:  # noqa: BLE001
            return False


def run(seed: int, count: int) -> dict:
    import onnx2mil

    warnings.simplefilter("ignore")
    seeds = seed_models()
    rng = random.Random(seed)
    outcomes: dict = {}
    untyped, built_but_rejected = [], []
    for i in range(count):
        name = rng.choice(sorted(seeds))
        kind, data = mutate(seeds[name], rng)
        precision = rng.choice(["fp16", "fp32"])
        try:
            model = onnx.load_from_string(data)
        except Exception:  # noqa: BLE001 - not a protobuf at all: onnx2mil gets to see the bytes below
            model = None
        try:
            if model is None:
                with open("mutant.onnx", "wb") as f:
                    f.write(data)
                onnx2mil.build_coreml("mutant.onnx", compute_precision=precision)
            else:
                onnx2mil.build_coreml(model, compute_precision=precision)
            outcome = "built"
            if model is not None and not checker_or_onnxruntime_accepts(model):
                built_but_rejected.append(f"{i} {name} {kind}")
        except onnx2mil.Onnx2MilError as e:
            outcome = type(e).__name__
        except Exception as e:  # noqa: BLE001 - what this fuzzer looks for
            outcome = "untyped"
            frame = traceback.extract_tb(e.__traceback__)[-1]
            untyped.append(f"{i} {name} {kind}: {type(e).__name__} at {frame.name}:{frame.lineno}: {str(e)[:200]}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {"outcomes": outcomes, "untyped": untyped, "built_but_rejected": built_but_rejected}


if __name__ == "__main__":
    limit = int(sys.argv[3]) << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(json.dumps(run(int(sys.argv[1]), int(sys.argv[2]))))
