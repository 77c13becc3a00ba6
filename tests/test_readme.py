"""The README's promises: its worked extension example runs as written, and CI runs its test command."""
import re
from pathlib import Path

from onnx2mil.backend.convert import registry

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_extension_example_builds_and_validates_a_custom_op(monkeypatch, tmp_path):
    code = re.search(r"```python\n(.*?)```", section("Extending: your own op"), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    try:
        namespace: dict = {}
        exec(compile(code, "README.md", "exec"), namespace)
        report = namespace["report"]
        assert report.ok
        assert [layer.node for layer in report.layers if layer.op_type == "Snake"] == ["snake"]
        assert registry.find_builder("Snake", "com.example") is namespace["snake"]
    finally:
        registry.unregister("Snake", "com.example")


def test_ci_runs_the_readme_test_command():
    commands = re.search(r"```bash\n(.*?)```", README, re.S).group(1).splitlines()
    test_command = commands[1].split("#")[0].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text()
