"""Hostile files. Memory bombs: files under 1 KB whose constant ops ask the build for tens of GiB are
refused, before anything is allocated, with a ResourceLimitError naming the node and the size.
External data: read from the model's folder only, never from the current directory."""
import json
import subprocess
import sys

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import TensorProto, numpy_helper

import onnx2mil
from onnx2mil.errors import ResourceLimitError


def i64(name, values):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def bomb(op_type, inits, attrs=None, out_type=TensorProto.FLOAT):
    """x + op(constants): one input keeps the model convertible; the op's inputs are all constant."""
    nodes = [oh.make_node(op_type, [t.name for t in inits], ["big"], name=f"/bomb/{op_type}", **(attrs or {})),
             oh.make_node("Cast", ["x"], ["xc"], name="/cast", to=out_type),
             oh.make_node("Add", ["xc", "big"], ["y"], name="/add")]
    graph = oh.make_graph(nodes, "bomb", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [oh.make_tensor_value_info("y", out_type, None)], inits)
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


BOMBS = {
    "ConstantOfShape": lambda: bomb("ConstantOfShape", [i64("shape", [65536, 65536, 4])]),
    "Expand": lambda: bomb("Expand", [numpy_helper.from_array(np.ones((1, 1), np.float32), "one"),
                                      i64("shape", [200000, 200000])]),
    "Tile": lambda: bomb("Tile", [numpy_helper.from_array(np.ones((2, 2), np.float32), "two"),
                                  i64("repeats", [100000, 100000])]),
    "Range": lambda: bomb("Range", [numpy_helper.from_array(np.array(0, np.int64), "start"),
                                    numpy_helper.from_array(np.array(1 << 40, np.int64), "limit"),
                                    numpy_helper.from_array(np.array(1, np.int64), "delta")], out_type=TensorProto.INT64),
}
SIZES = {"ConstantOfShape": 65536 * 65536 * 4 * 4, "Expand": 200000 * 200000 * 4, "Tile": 200000 * 200000 * 4,
         "Range": (1 << 40) * 8}

PROBE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # 8 GiB of address space (imports need ~6); bombs ask 64+
import onnx, onnx2mil
out = {}
for path in sys.argv[1:]:
    try:
        onnx2mil.build_coreml(onnx.load(path))
        out[path] = "built"
    except onnx2mil.Onnx2MilError as e:
        out[path] = [type(e).__name__, str(e), getattr(e, "nbytes", None)]
print(json.dumps(out))
"""


def test_bombs_are_refused_before_allocating_under_an_address_space_limit(tmp_path):
    paths = {}
    for op, make in BOMBS.items():
        paths[op] = str(tmp_path / f"{op}.onnx")
        onnx.save(make(), paths[op])
        assert (tmp_path / f"{op}.onnx").stat().st_size < 1024
    proc = subprocess.run([sys.executable, "-c", PROBE, *paths.values()], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout.splitlines()[-1])
    for op, path in paths.items():
        kind, message, nbytes = results[path]
        assert kind == "ResourceLimitError", (op, message)
        assert nbytes == SIZES[op]
        assert message.startswith(f"node '/bomb/{op}' ({op}, opset 17): ")
        assert f"{SIZES[op]:,} bytes, over the limit of 1,073,741,824 (config limits.max_constant_bytes)" in message


def test_the_limit_is_configurable_and_constants_under_it_fold():
    model = bomb("ConstantOfShape", [i64("shape", [64, 64])])
    with pytest.raises(ResourceLimitError, match=r"/bomb/ConstantOfShape.* 16,384 bytes, over the limit of 1,000"):
        onnx2mil.build_coreml(model, config={"limits": {"max_constant_bytes": 1000}})
    mlmodel = onnx2mil.build_coreml(model, compute_precision="fp32")
    y = onnx2mil.predict(mlmodel, {"x": np.array([2.0], np.float32)})["y"]
    np.testing.assert_array_equal(y, np.full((64, 64), 2.0, np.float32))


@pytest.mark.parametrize("value", [-1, 1.5, True, "1G"])
def test_the_limit_must_be_a_whole_number(value):
    with pytest.raises(onnx2mil.ConfigError, match="limits.max_constant_bytes: must be a whole number"):
        onnx2mil.build_coreml(bomb("ConstantOfShape", [i64("shape", [2])]),
                              config={"limits": {"max_constant_bytes": value}})


# ---- external data: read from the model's folder only ----------------------------------------------

def external_model(folder, location="weights.bin"):
    w = numpy_helper.from_array(np.arange(64 * 4, dtype=np.float32).reshape(64, 4), "w")
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "w"], ["y"], name="/mm")], "g",
                          [oh.make_tensor_value_info("x", 1, [1, 64])], [oh.make_tensor_value_info("y", 1, [1, 4])], [w])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=True, location=location, size_threshold=0)
    return folder / "m.onnx"


def relocate(path, location):
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(model, str(path))


def test_a_model_proto_with_unloaded_external_data_is_refused_not_read_from_the_cwd(tmp_path, monkeypatch):
    path = external_model(tmp_path / "model")
    monkeypatch.chdir(tmp_path / "model")  # where a relative read would find the data
    proto = onnx.load(str(path), load_external_data=False)
    with pytest.raises(onnx2mil.InvalidModelError, match="tensor 'w' keeps its data in the external file "
                                                         "'weights.bin', which is not loaded"):
        onnx2mil.build_coreml(proto)
    onnx2mil.build_coreml(onnx.load(str(path)))  # loaded: fine
    onnx2mil.build_coreml(path)                   # by path: read from the model's folder


@pytest.mark.parametrize("location", ["linked/weights.bin", "link.bin", "../outside/weights.bin", "ABSOLUTE"])
def test_external_data_leaving_the_model_folder_is_refused(tmp_path, location):
    outside = external_model(tmp_path / "outside").parent / "weights.bin"
    path = external_model(tmp_path / "model")
    (tmp_path / "model" / "linked").symlink_to(outside.parent, target_is_directory=True)
    (tmp_path / "model" / "link.bin").symlink_to(outside)
    relocate(path, str(outside) if location == "ABSOLUTE" else location)
    with pytest.raises(onnx2mil.InvalidModelError, match="external data cannot be read .*(outside|symbolic link|absolute)"):
        onnx2mil.build_coreml(path)


def large_external_model(folder, location="weights.bin"):
    """A MatMul whose weight (64 x 128 = 8,192 elements) is above the loader's small-tensor size,
    so the build reads it from the file itself instead of through protobuf."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 128)).astype(np.float32), "w")
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "w"], ["y"], name="/mm")], "g",
                          [oh.make_tensor_value_info("x", 1, [1, 64])], [oh.make_tensor_value_info("y", 1, [1, 128])], [w])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(folder / "m.onnx"), save_as_external_data=True, location=location, size_threshold=0)
    return folder / "m.onnx", numpy_helper.to_array(w)


def test_large_external_weights_are_read_once_into_numpy_not_into_the_proto(tmp_path):
    from onnx.external_data_helper import uses_external_data
    from onnx2mil.backend.convert.loader import load_graph

    path, w = large_external_model(tmp_path / "model")
    graph = load_graph(path)
    assert uses_external_data(graph.model.graph.initializer[0])  # the proto holds a reference, no data
    assert not graph.model.graph.initializer[0].raw_data
    np.testing.assert_array_equal(graph.constants["w"], w)
    # mapped copy-on-write from the file, not read: a write changes this process's copy, not the file
    import mmap
    assert isinstance(graph.constants["w"].base, mmap.mmap)
    on_disk = (tmp_path / "model" / "weights.bin").read_bytes()
    graph.constants["w"][0, 0] += 1.0
    assert (tmp_path / "model" / "weights.bin").read_bytes() == on_disk
    x = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
    got = onnx2mil.predict(onnx2mil.build_coreml(path, compute_precision="fp32"), {"x": x})["y"]
    np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fault", ["outside", "symlink", "absolute", "truncated"])
def test_large_external_weights_are_checked_like_small_ones(tmp_path, fault):
    path, _ = large_external_model(tmp_path / "model")
    if fault in ("outside", "symlink", "absolute"):
        outside = large_external_model(tmp_path / "outside")[0].parent / "weights.bin"
        (tmp_path / "model" / "link.bin").symlink_to(outside)
        relocate(path, {"outside": "../outside/weights.bin", "symlink": "link.bin", "absolute": str(outside)}[fault])
    else:
        data = (tmp_path / "model" / "weights.bin").read_bytes()
        (tmp_path / "model" / "weights.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(onnx2mil.InvalidModelError, match="tensor 'w': external data cannot be read"):
        onnx2mil.build_coreml(path)
