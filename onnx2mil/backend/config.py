"""Build configuration: lowering variants per hazard, tolerances. A dict or a YAML file (configs/)."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

# The lowering variants each hazard-bearing op family can take; the first is the default.
LOWERINGS: dict[str, tuple[str, ...]] = {
    # ANE adds a rank-3 conv_transpose bias to the first elements only (MNN/BigVGAN report).
    "conv_transpose_1d": ("as_2d", "native", "split_bias"),
    "conv_1d": ("native", "as_2d"),
}

DEFAULTS: dict[str, Any] = {
    "lowering": {key: variants[0] for key, variants in LOWERINGS.items()},
    # Per-node overrides: {"<onnx node name>": {"conv_transpose_1d": "native"}}
    "node_lowering": {},
    # Validation tolerances by compute precision (MNN's check: max abs error <= 1% of max |ref|).
    "tolerances": {
        "fp32": {"rel_to_max": 1.0e-4, "min_cosine": 0.99999},
        "fp16": {"rel_to_max": 1.0e-2, "min_cosine": 0.999},
    },
    # Local-error allowance for ops whose error, after their inputs are rounded to the compute
    # precision, grows with the inputs' magnitude (see backend/compare.py):
    # ulps x unit roundoff x max|input| (x max|output| for "relative" ops).
    "input_rounding": {
        "ulps": 2,
        "absolute": ["Add", "Sub", "Sin", "Cos", "Softplus"],
        "relative": ["Exp", "Pow"],
    },
}


def _merge(base: dict, override: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Config:
    """Resolved configuration: DEFAULTS overlaid with the user's dict or YAML file."""

    def __init__(self, data: Optional[Mapping] = None):
        self.data = _merge(DEFAULTS, data or {})
        for key, variant in self.data["lowering"].items():
            self._check_variant(key, variant, "lowering")
        for node, lowering in self.data["node_lowering"].items():
            for key, variant in lowering.items():
                self._check_variant(key, variant, f"node_lowering[{node!r}]")

    @staticmethod
    def _check_variant(key: str, variant: str, where: str) -> None:
        if key not in LOWERINGS:
            raise ValueError(f"{where}: unknown lowering '{key}' (known: {', '.join(LOWERINGS)})")
        if variant not in LOWERINGS[key]:
            raise ValueError(
                f"{where}: '{key}' cannot be '{variant}' (choose one of {', '.join(LOWERINGS[key])})"
            )

    @classmethod
    def load(cls, config: Union[None, str, Path, Mapping, "Config"]) -> "Config":
        if isinstance(config, Config):
            return config
        if config is None:
            return cls()
        if isinstance(config, (str, Path)):
            with open(config) as f:
                return cls(yaml.safe_load(f) or {})
        return cls(config)

    def lowering(self, key: str, node_name: Optional[str] = None) -> str:
        per_node = self.data["node_lowering"].get(node_name or "", {})
        return per_node.get(key, self.data["lowering"][key])

    def tolerance(self, precision: str) -> dict:
        return self.data["tolerances"][precision]
