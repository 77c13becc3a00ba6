"""The real-export corpus: its manifest, paths and seeded input feeds that respect each model's
input ranges (token ids below the vocabulary size, attention masks of ones, log-mels in range).
Pure numpy + json: the tests need no torch."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"


def manifest() -> dict:
    """The whole manifest: opset, seed, versions, ``models`` (exported) and ``failed`` (with reasons)."""
    return json.loads(MANIFEST.read_text())


def models(tag: Optional[str] = None) -> list[dict]:
    """The exported models' entries, optionally only those whose ``covers`` has ``tag``."""
    entries = manifest()["models"]
    return [m for m in entries if tag is None or tag in m["covers"]]


def entry(name: str) -> dict:
    """One model's manifest entry by name (e.g. ``bert_dynamo``)."""
    for m in manifest()["models"]:
        if m["name"] == name:
            return m
    raise KeyError(f"no model '{name}' in {MANIFEST}")


def path(model: Union[str, Mapping]) -> Path:
    """The .onnx file of a model (name or manifest entry)."""
    return HERE / (entry(model) if isinstance(model, str) else model)["file"]


def make_feeds(model: Union[str, Mapping], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for a model (name or manifest entry), one array per input, each within its
    declared range: ``"range": [lo, hi]`` is uniform in [lo, hi) (integers: ``rng.integers``),
    ``"kind": "ones"`` is all ones."""
    spec = entry(model) if isinstance(model, str) else model
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in spec["inputs"]:
        shape, dtype = tuple(inp["shape"]), np.dtype(inp["dtype"])
        if inp.get("kind") == "ones":
            feeds[inp["name"]] = np.ones(shape, dtype=dtype)
        elif dtype.kind in "iu":
            lo, hi = inp["range"]
            feeds[inp["name"]] = rng.integers(lo, hi, size=shape).astype(dtype)
        elif dtype.kind == "f":
            lo, hi = inp["range"]
            feeds[inp["name"]] = rng.uniform(lo, hi, size=shape).astype(dtype)
        else:
            raise ValueError(f"input {inp['name']}: no generator for dtype {dtype}")
    return feeds
