"""``save`` never destroys data: it refuses (SaveError, nothing touched) any destination that is not
an .mlpackage written by onnx2mil, replaces its own packages by an atomic swap, and leaves no
temporary files — also when the saving process is killed with SIGKILL at any instant."""
import gc
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import onnx2mil
from onnx2mil.backend.convert import pipeline
from onnx2mil.cli import main
from onnx2mil.errors import SaveError


def conv_model(cout=4, cin=3, k=3, seed=0):
    w = numpy_helper.from_array(np.random.default_rng(seed).standard_normal((cout, cin, k)).astype(np.float32), "w")
    graph = oh.make_graph([oh.make_node("Conv", ["x", "w"], ["y"], name="/conv/Conv", pads=[k // 2, k // 2])],
                          "conv", [oh.make_tensor_value_info("x", 1, [1, cin, 16])],
                          [oh.make_tensor_value_info("y", 1, [1, cout, 16])], [w])
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def mlmodel():
    return onnx2mil.build_coreml(conv_model())


def tree(path: Path) -> dict:
    """Every file under ``path`` (relative name -> sha256), and every folder (-> None)."""
    out = {}
    for p in sorted(path.rglob("*")):
        out[str(p.relative_to(path))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
    return out


def user_folder(path: Path) -> dict:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    (path / "sub").mkdir()
    (path / "sub" / "data.bin").write_bytes(b"\x00\x01")
    return tree(path)


def test_a_name_without_suffix_gets_mlpackage_and_a_folder_of_that_name_is_untouched(mlmodel, tmp_path):
    before = user_folder(tmp_path / "results")
    written = onnx2mil.save(mlmodel, tmp_path / "results")
    assert written == tmp_path / "results.mlpackage"
    assert pipeline.written_by_onnx2mil(written)
    assert tree(tmp_path / "results") == before


def test_dot_and_other_non_names_are_refused(mlmodel, tmp_path, monkeypatch):
    before = user_folder(tmp_path / "cwd")
    monkeypatch.chdir(tmp_path / "cwd")
    for bad in (".", "..", "/", "sub/.."):
        with pytest.raises(SaveError, match="not a package name"):
            onnx2mil.save(mlmodel, bad)
    assert tree(tmp_path / "cwd") == before


@pytest.mark.parametrize("name", ["model.onnx", "model.mlmodel", "results.v2"])
def test_a_suffix_other_than_mlpackage_is_refused(mlmodel, tmp_path, name):
    with pytest.raises(SaveError, match=r"saved as a \.mlpackage folder"):
        onnx2mil.save(mlmodel, tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_an_ordinary_folder_named_mlpackage_is_refused_and_untouched(mlmodel, tmp_path):
    before = user_folder(tmp_path / "x.mlpackage")
    with pytest.raises(SaveError, match="not an .mlpackage written by onnx2mil") as err:
        onnx2mil.save(mlmodel, tmp_path / "x.mlpackage")
    assert err.value.path == tmp_path / "x.mlpackage"
    assert tree(tmp_path / "x.mlpackage") == before
    assert sorted(os.listdir(tmp_path)) == ["x.mlpackage"]


def test_files_empty_folders_symlinks_and_foreign_packages_are_refused(mlmodel, tmp_path):
    (tmp_path / "file.mlpackage").write_text("a file")
    (tmp_path / "empty.mlpackage").mkdir()
    ours = onnx2mil.save(mlmodel, tmp_path / "ours.mlpackage")
    (tmp_path / "link.mlpackage").symlink_to(ours)
    foreign = tmp_path / "foreign.mlpackage"
    mlmodel.save(str(foreign))  # coremltools' own save: a package, but not onnx2mil's metadata
    spec = pipeline.open_model(foreign).get_spec()
    del spec.description.metadata.userDefined[pipeline.META_VERSION]
    (foreign / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(spec.SerializeToString())
    before = tree(tmp_path)
    for name in ("file", "empty", "link", "foreign"):
        with pytest.raises(SaveError, match="not an .mlpackage written by onnx2mil"):
            onnx2mil.save(mlmodel, tmp_path / f"{name}.mlpackage")
    assert tree(tmp_path) == before


def test_an_onnx2mil_package_is_replaced(tmp_path):
    target = tmp_path / "m.mlpackage"
    onnx2mil.save(onnx2mil.build_coreml(conv_model(cin=3)), target)
    onnx2mil.save(onnx2mil.build_coreml(conv_model(cin=5)), target)
    prog = onnx2mil.load_saved_program(target)
    assert prog.functions["main"].inputs["x"].shape[1] == 5
    assert sorted(os.listdir(tmp_path)) == ["m.mlpackage"]


def test_replacing_without_an_atomic_swap_restores_the_old_package_after_a_kill(tmp_path, monkeypatch):
    """Where the OS has no atomic swap, save renames twice; a kill between the renames leaves the old
    package in the staging folder, and the next save puts it back before it does anything else."""
    target = tmp_path / "m.mlpackage"
    old = onnx2mil.build_coreml(conv_model(cin=3))
    onnx2mil.save(old, target)
    old_tree = tree(target)
    monkeypatch.setattr(pipeline, "_atomic_rename", lambda src, dst, flags: False)
    onnx2mil.save(onnx2mil.build_coreml(conv_model(cin=5)), target)  # the fallback path works
    assert onnx2mil.load_saved_program(target).functions["main"].inputs["x"].shape[1] == 5
    assert sorted(os.listdir(tmp_path)) == ["m.mlpackage"]
    # what a kill between the two renames leaves, from a process that no longer runs
    onnx2mil.save(old, target)
    stage = tmp_path / f".m.mlpackage.onnx2mil-{dead_pid()}-abc"
    stage.mkdir()
    os.rename(target, stage / "previous.mlpackage")
    pipeline._sweep_stale(tmp_path, ".m.mlpackage.onnx2mil-", target)  # what the next save does first
    assert tree(target) == old_tree
    assert sorted(os.listdir(tmp_path)) == ["m.mlpackage"]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_build_leaves_no_temporary_package_once_the_model_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = onnx2mil.build_coreml(conv_model())
    (package,) = os.listdir(tmp_path)
    assert package.startswith(f"onnx2mil-{os.getpid()}-") and package.endswith(".mlpackage")
    assert Path(model.package_path) == tmp_path / package
    del model
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_a_failed_conversion_leaves_no_temporary_package(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def half_written(*args, package_dir, **kwargs):
        (Path(package_dir) / "Manifest.json").write_text("{}")
        raise RuntimeError("coremltools failed")

    monkeypatch.setattr(pipeline.ct, "convert", half_written)
    with pytest.raises(onnx2mil.errors.ConversionError, match="RuntimeError: coremltools failed"):
        onnx2mil.build_coreml(conv_model())
    assert os.listdir(tmp_path) == []


def test_temporary_folders_of_killed_processes_are_swept(mlmodel, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dead = dead_pid()
    stale_build = tmp_path / "tmp" / f"onnx2mil-{dead}-x1y2.mlpackage"
    stale_build.mkdir()
    live_build = tmp_path / "tmp" / f"onnx2mil-{os.getpid()}-live.mlpackage"
    live_build.mkdir()
    foreign_tmp = tmp_path / "tmp" / "tmpabcdef"
    foreign_tmp.mkdir()
    stale_stage = tmp_path / f".m.mlpackage.onnx2mil-{dead}-q9"
    (stale_stage / "m.mlpackage").mkdir(parents=True)
    other_stage = tmp_path / f".other.mlpackage.onnx2mil-{dead}-q9"
    other_stage.mkdir()
    onnx2mil.build_coreml(conv_model())
    onnx2mil.save(mlmodel, tmp_path / "m.mlpackage")
    assert not stale_build.exists() and not stale_stage.exists()
    assert live_build.exists() and foreign_tmp.exists() and other_stage.exists()  # not ours to remove


def test_cli_convert_refuses_before_building_and_touches_nothing(capsys, tmp_path, monkeypatch):
    from onnx import save as save_onnx

    save_onnx(conv_model(), str(tmp_path / "m.onnx"))
    before = user_folder(tmp_path / "work")
    monkeypatch.chdir(tmp_path / "work")
    built = []
    monkeypatch.setattr(onnx2mil, "build_coreml", lambda *a, **k: built.append(1))
    for out in (".", "sub/..", "notes.txt"):
        code = main(["convert", str(tmp_path / "m.onnx"), "-o", out])
        _, err = capsys.readouterr()
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("onnx2mil convert: error: cannot save to")
    (tmp_path / "work" / "mine.mlpackage").mkdir()
    (tmp_path / "work" / "mine.mlpackage" / "keep.txt").write_text("x")
    code = main(["convert", str(tmp_path / "m.onnx"), "-o", "mine.mlpackage"])
    assert code == 2 and "not an .mlpackage written by onnx2mil" in capsys.readouterr().err
    assert built == []
    assert (tmp_path / "work" / "mine.mlpackage" / "keep.txt").read_text() == "x"
    assert {k: v for k, v in tree(tmp_path / "work").items() if not k.startswith("mine")} == before


def test_cli_convert_adds_the_suffix(capsys, tmp_path):
    from onnx import save as save_onnx

    save_onnx(conv_model(), str(tmp_path / "m.onnx"))
    code = main(["convert", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "out")])
    out, _ = capsys.readouterr()
    assert code == 0 and f"wrote {tmp_path / 'out.mlpackage'}" in out
    assert pipeline.written_by_onnx2mil(tmp_path / "out.mlpackage")


# ---- kill -9 at random instants ------------------------------------------------------------------

def kill_during_save(model, dest: Path, delay: float) -> None:
    """Fork a child that saves ``model`` to ``dest``; SIGKILL it after ``delay`` seconds."""
    pid = os.fork()
    if pid == 0:  # the child: save and leave at once, no atexit or finalizers
        try:
            onnx2mil.save(model, dest)
        finally:
            os._exit(0)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)  # reaped: its process id no longer exists


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kill_at_random_instants_leaves_absent_old_or_new_and_no_temporary_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    # two models of 8 MB of fp16 weights, so that a save spans many instants
    models = [onnx2mil.build_coreml(conv_model(cout=256, cin=256, k=64, seed=s)) for s in (1, 2)]
    refs = []
    for i, m in enumerate(models):
        refs.append(tree(onnx2mil.save(m, tmp_path / "refs" / f"r{i}.mlpackage")))
    start = time.perf_counter()
    onnx2mil.save(models[0], tmp_path / "timing" / "t.mlpackage")
    duration = time.perf_counter() - start
    rng = random.Random(11)
    outcomes = {"absent": 0, "old": 0, "new": 0, "rounds ending with a staging folder": 0}
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "m.mlpackage"
    for round_ in range(24):  # new saves: nothing at the destination before
        kill_during_save(models[round_ % 2], dest, rng.uniform(0, 2.0 * duration))
        if dest.exists():
            assert tree(dest) == refs[round_ % 2], f"new save, round {round_}: incomplete package"
            outcomes["new"] += 1
            shutil.rmtree(dest)
        else:
            outcomes["absent"] += 1
        leftovers = [n for n in os.listdir(out) if n != "m.mlpackage"]
        assert all(n.startswith(".m.mlpackage.onnx2mil-") for n in leftovers), leftovers
        outcomes["rounds ending with a staging folder"] += bool(leftovers)
    onnx2mil.save(models[0], dest)
    current = 0
    for round_ in range(24):  # overwrites: an onnx2mil package at the destination before
        new = 1 - current
        kill_during_save(models[new], dest, rng.uniform(0, 2.0 * duration))
        got = tree(dest)
        assert got in (refs[current], refs[new]), f"overwrite, round {round_}: neither old nor new"
        if got == refs[new]:
            outcomes["new"] += 1
            current = new
        else:
            outcomes["old"] += 1
        leftovers = [n for n in os.listdir(out) if n != "m.mlpackage"]
        assert all(n.startswith(".m.mlpackage.onnx2mil-") for n in leftovers), leftovers
        outcomes["rounds ending with a staging folder"] += bool(leftovers)
    onnx2mil.save(models[current], dest)  # the next save removes what the killed ones left
    assert os.listdir(out) == ["m.mlpackage"]
    assert [n for n in os.listdir(tmp_path / "tmp") if not n.startswith(f"onnx2mil-{os.getpid()}-")] == []
    print(f"kill test: save takes {duration * 1000:.1f} ms; outcomes {outcomes}")


def test_save_writes_what_coremltools_save_writes_with_the_weights_linked(tmp_path):
    """onnx2mil's save stages coremltools' own save from a shadow without the weight files and
    hard-links the weights of the built package in: file for file the package coremltools' save
    writes (made deterministic the same way)."""
    mlmodel = onnx2mil.build_coreml(conv_model(seed=3))
    ours = onnx2mil.save(mlmodel, tmp_path / "ours.mlpackage")
    theirs = tmp_path / "theirs.mlpackage"
    mlmodel.save(str(theirs))
    pipeline._make_deterministic(theirs)
    assert tree(ours) == tree(theirs)
    assert Path(mlmodel.package_path).name != "shadow.mlpackage"  # the MLModel's own package is back
    built = Path(mlmodel.package_path) / pipeline._PACKAGE_WEIGHTS / "weight.bin"
    saved = ours / pipeline._PACKAGE_WEIGHTS / "weight.bin"
    assert os.path.samefile(built, saved)  # linked: tmp_path and the build folder share a filesystem
    x = np.random.default_rng(0).standard_normal((1, 3, 16)).astype(np.float32)
    expected = onnx2mil.predict(mlmodel, {"x": x})["y"]
    del mlmodel
    gc.collect()
    assert not built.exists()  # the build's package went with the MLModel; the saved one keeps its data
    np.testing.assert_array_equal(onnx2mil.predict(ours, {"x": x})["y"], expected)


def test_a_package_opened_from_disk_is_copied_not_linked(mlmodel, tmp_path):
    first = onnx2mil.save(mlmodel, tmp_path / "first.mlpackage")
    second = onnx2mil.save(pipeline.open_model(first), tmp_path / "second.mlpackage")
    assert tree(first) == tree(second)
    weights = pipeline._PACKAGE_WEIGHTS / "weight.bin"
    assert not os.path.samefile(first / weights, second / weights)


def test_the_built_package_is_the_one_coremltools_would_write(monkeypatch, tmp_path):
    """The weights are moved into the package instead of copied: the same package as coremltools'
    own ``_create_mlpackage`` writes (its manifest's random identifiers made deterministic)."""
    moved = onnx2mil.build_coreml(conv_model(seed=4))
    monkeypatch.setattr(pipeline, "_weights_moved_into_package", __import__("contextlib").nullcontext)
    copied = onnx2mil.build_coreml(conv_model(seed=4))
    packages = []
    for name, model in (("moved", moved), ("copied", copied)):
        package = tmp_path / f"{name}.mlpackage"
        shutil.copytree(model.package_path, package)
        pipeline._make_deterministic(package)
        packages.append(tree(package))
    assert packages[0] == packages[1]
    assert (Path(moved.package_path) / pipeline._PACKAGE_WEIGHTS / "weight.bin").stat().st_size > 0
