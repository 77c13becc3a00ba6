"""Build configuration: lowering variants per hazard, tolerances. A dict or a YAML file (configs/)."""
from __future__ import annotations

import copy
import numbers
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

import yaml

from ...errors import ConfigError

# The lowering variants each hazard-bearing op family can take; the first is the default.
LOWERINGS: dict[str, tuple[str, ...]] = {
    # ANE adds a rank-3 conv_transpose bias to the first elements only (MNN/BigVGAN report).
    "conv_transpose_1d": ("as_2d", "native", "split_bias"),
    "conv_1d": ("native", "as_2d"),
    # A fused norm's (x - mean)^2 overflows fp16 for deviations above ~256 (hazards.py
    # norm_fp16_overflow); "scaled" normalizes (x - mean) / s with eps / s^2 (op_builders/layer_norm.py).
    "norm_fp16": ("native", "scaled"),
}
# Where each lowering choice applies: the ONNX op types and the rank of their input 0 (None: any).
LOWERING_SITES: dict[str, tuple[tuple[str, ...], Optional[int]]] = {
    "conv_transpose_1d": (("ConvTranspose",), 3), "conv_1d": (("Conv",), 3),
    "norm_fp16": (("LayerNormalization", "GroupNormalization", "InstanceNormalization"), None)}

# fp16 rounding of constant weights (backend/convert/fp16_weights.py); the first is the default.
PRECISION: dict[str, tuple[str, ...]] = {
    # depthwise Conv/ConvTranspose (one input channel per group: fixed FIR filters such as an
    # anti-aliasing low-pass): "keep_sums" keeps each output's (and phase's) tap sum, "nearest"
    # rounds every tap to its nearest fp16 value (coremltools' cast).
    "fp16_depthwise_weights": ("keep_sums", "nearest"),
}

DEFAULTS: dict[str, Any] = {
    "lowering": {key: variants[0] for key, variants in LOWERINGS.items()},
    "precision": {key: variants[0] for key, variants in PRECISION.items()},
    # Per-node overrides: {"<onnx node name>": {"conv_transpose_1d": "native"}}
    "node_lowering": {},
    # Build-time resources: a constant the build would compute (fold) larger than this is refused.
    "limits": {"max_constant_bytes": 1 << 30},
    # Validation tolerances by compute precision (MNN's check: max abs error <= 1% of max |ref|).
    "tolerances": {
        "fp32": {"rel_to_max": 1.0e-4, "min_cosine": 0.99999},
        "fp16": {"rel_to_max": 1.0e-2, "min_cosine": 0.999},
    },
    # Local-error allowance for ops whose error, after their inputs are rounded to the compute
    # precision, grows with the inputs' magnitude (see backend/validation/compare.py):
    # ulps x unit roundoff x max|input| (x max|output| for "relative" ops).
    "input_rounding": {
        "ulps": 2,
        "absolute": ["Add", "Sub", "Sin", "Cos", "Softplus"],
        "relative": ["Exp", "Pow"],
    },
}


# Tolerance keys and the range each value must lie in.
TOLERANCE_KEYS: dict[str, tuple[float, float]] = {"rel_to_max": (0.0, float("inf")), "min_cosine": (-1.0, 1.0)}


def _mapping(value, key: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a mapping, not {type(value).__name__} {value!r}")
    for k in value:
        if not isinstance(k, str):
            raise ConfigError(f"{key}.{k!r}" if key else repr(k), "keys must be strings")
    return value


def _known(value: Mapping, key: str, known: Iterable[str]) -> None:
    unknown = [k for k in value if k not in known]
    if unknown:
        where = f"{key}.{unknown[0]}" if key else unknown[0]
        raise ConfigError(where, f"unknown key (known: {', '.join(known)})")


def _check_lowering(value, key: str) -> None:
    _known(_mapping(value, key), key, LOWERINGS)
    for name, variant in value.items():
        if variant not in LOWERINGS[name]:
            raise ConfigError(f"{key}.{name}",
                              f"cannot be {variant!r} (choose one of {', '.join(LOWERINGS[name])})")


def validate(data) -> None:
    """Check a user's config (before defaults are merged in) against the schema; a ConfigError
    names the first offending key, dotted (``tolerances.fp16.rel_to_max``)."""
    _known(_mapping(data, ""), "", DEFAULTS)
    if "lowering" in data:
        _check_lowering(data["lowering"], "lowering")
    precision = _mapping(data.get("precision", {}), "precision")
    _known(precision, "precision", PRECISION)
    for name, variant in precision.items():
        if variant not in PRECISION[name]:
            raise ConfigError(f"precision.{name}", f"cannot be {variant!r} (choose one of {', '.join(PRECISION[name])})")
    for node, lowering in _mapping(data.get("node_lowering", {}), "node_lowering").items():
        _check_lowering(lowering, f"node_lowering.{node}")
    limits = _mapping(data.get("limits", {}), "limits")
    _known(limits, "limits", DEFAULTS["limits"])
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ConfigError(f"limits.{name}", f"must be a whole number >= 0, not {value!r}")
    rounding = _mapping(data.get("input_rounding", {}), "input_rounding")
    _known(rounding, "input_rounding", DEFAULTS["input_rounding"])
    if "ulps" in rounding:
        ulps = rounding["ulps"]
        if isinstance(ulps, bool) or not isinstance(ulps, numbers.Real) or ulps < 0:
            raise ConfigError("input_rounding.ulps", f"must be a number >= 0, not {ulps!r}")
    for name in ("absolute", "relative"):
        ops = rounding.get(name, [])
        if not isinstance(ops, (list, tuple)) or not all(isinstance(op, str) for op in ops):
            raise ConfigError(f"input_rounding.{name}", f"must be a list of ONNX op types, not {ops!r}")
    tolerances = _mapping(data.get("tolerances", {}), "tolerances")
    _known(tolerances, "tolerances", DEFAULTS["tolerances"])
    for precision, values in tolerances.items():
        where = f"tolerances.{precision}"
        _known(_mapping(values, where), where, TOLERANCE_KEYS)
        for name, value in values.items():
            low, high = TOLERANCE_KEYS[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ConfigError(f"{where}.{name}", f"must be a number, not {type(value).__name__} {value!r}")
            if not low <= value <= high:
                raise ConfigError(f"{where}.{name}", f"{value!r} is outside [{low:g}, {high:g}]")


def _merge(base: dict, override: Mapping) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Config:
    """Resolved configuration: DEFAULTS overlaid with the user's dict or YAML file, checked against
    the schema (``validate``) first."""

    def __init__(self, data: Optional[Mapping] = None):
        validate(data if data is not None else {})
        self.data = _merge(DEFAULTS, data or {})

    @classmethod
    def load(cls, config: Union[None, str, Path, Mapping, "Config"]) -> "Config":
        if isinstance(config, Config):
            return config
        if config is None:
            return cls()
        if isinstance(config, (str, Path)):
            try:
                with open(config) as f:
                    data = yaml.safe_load(f)
            except OSError as e:
                raise ConfigError("", f"cannot read {config}: {e.strerror or e}") from e
            except (yaml.YAMLError, UnicodeDecodeError) as e:
                raise ConfigError("", f"{config} is not valid YAML: {e}".replace("\n", " ")) from e
            return cls(data if data is not None else {})
        if not isinstance(config, Mapping):
            raise ConfigError("", f"config must be a mapping or a YAML path, not {type(config).__name__}")
        return cls(config)

    def check_nodes(self, node_names: Iterable[str]) -> None:
        """Every node named in ``node_lowering`` must be a node of the model."""
        names = set(node_names)
        for node in self.data["node_lowering"]:
            if node not in names:
                raise ConfigError(f"node_lowering.{node}", "no node of the model has this name")

    def lowering(self, key: str, node_name: Optional[str] = None) -> str:
        per_node = self.data["node_lowering"].get(node_name or "", {})
        return per_node.get(key, self.data["lowering"][key])

    def tolerance(self, precision: str) -> dict:
        return self.data["tolerances"][precision]
