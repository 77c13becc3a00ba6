"""``ValidationReport``: per-layer comparison of CoreML (MIL) against onnxruntime, as JSON, as a
self-contained HTML page (table plus an inline-SVG error plot) and as a rich table."""
from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Union

# Statuses a layer can have. Only "fail" is a failure; the others say why nothing was compared.
PASS, FAIL = "pass", "fail"
FUSED = "fused"        # the passes fused the tensor away: no MIL var holds it
FOLDED = "folded"      # folded to a constant at build time
MISSING = "missing"    # expected in the run but absent (no ORT type, or var not captured)
LOSSY = "lossy"        # beyond tolerance where the op reads compressed weights: compression's error
COMPARED = (PASS, FAIL, LOSSY)


@dataclass
class LayerResult:
    """One ONNX tensor (a node output) compared between the reference and CoreML."""

    index: int
    node: str
    op_type: str
    tensor: str
    shape: Optional[list]
    status: str
    mil_var: Optional[str] = None
    dtype: Optional[str] = None
    # Accumulated error: the MIL program run end to end from the model's inputs.
    max_abs_err: Optional[float] = None
    max_abs_ref: Optional[float] = None
    rel_to_max: Optional[float] = None    # max abs error / max |reference| (MNN's check)
    cosine: Optional[float] = None
    snr_db: Optional[float] = None        # None when the error is exactly zero (infinite SNR)
    drift: Optional[bool] = None          # accumulated error beyond the tolerance
    # Local error: the ops that compute this tensor, run on onnxruntime's values of their inputs
    # (method "capture"). The status judges the local error when there is one.
    local_max_abs_err: Optional[float] = None
    local_rel_to_max: Optional[float] = None
    local_cosine: Optional[float] = None
    allowed_abs_err: Optional[float] = None   # the tolerance the local error was judged by
    underflow: bool = False   # values below the precision's normal range: a precision warning
    compressed: Optional[str] = None  # the constexpr op that decompresses this op's weight
    uncompressed_local_rel_to_max: Optional[float] = None  # same layer, uncompressed build (compression report)
    reason: str = ""

    @property
    def metrics(self) -> dict:
        return {"max_abs_err": self.max_abs_err, "max_abs_ref": self.max_abs_ref,
                "rel_to_max": self.rel_to_max, "cosine": self.cosine, "snr_db": self.snr_db,
                "local_max_abs_err": self.local_max_abs_err, "local_rel_to_max": self.local_rel_to_max,
                "local_cosine": self.local_cosine, "allowed_abs_err": self.allowed_abs_err}

    @property
    def judged_error(self) -> Optional[float]:
        """The error the status judges: local when measured, else accumulated (rel to max|ref|)."""
        return self.local_rel_to_max if self.local_rel_to_max is not None else self.rel_to_max


@dataclass
class Divergence:
    """The earliest failing node whose inputs all pass (looking through fused tensors)."""

    node: str
    op_type: str
    tensor: str
    layer: LayerResult
    # Nodes whose outputs were fused away between this node and its compared inputs: the
    # fault may lie in any of them, since their values could not be observed.
    looked_through: list = field(default_factory=list)

    @property
    def metrics(self) -> dict:
        return self.layer.metrics

    def to_dict(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "tensor": self.tensor,
                "metrics": self.metrics, "looked_through": list(self.looked_through)}


@dataclass
class ValidationReport:
    model: str
    runtime: str
    method: str                 # "capture" | "outputs" | "truncation"
    precision: str              # "fp16" | "fp32"
    tolerances: dict
    layers: list
    first_divergence: Optional[Divergence] = None
    compute_units: Optional[str] = None
    notes: list = field(default_factory=list)
    outputs: list = field(default_factory=list)   # the model's output tensors
    # With compressed weights and compression_report: the compressed layers, most hurt first
    compression: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No op is wrong (local error) and the model's outputs are within tolerance end to end."""
        return not any(layer.status == FAIL for layer in self.layers) and not self.drifting_outputs

    @property
    def drifting_outputs(self) -> list:
        """Model outputs whose accumulated error exceeds the tolerance."""
        return [layer for layer in self.layers if layer.tensor in self.outputs and layer.drift]

    @property
    def drifting(self) -> list:
        """Tensors within tolerance locally whose accumulated error exceeds it."""
        return [layer for layer in self.layers if layer.drift and layer.status == PASS]

    @property
    def counts(self) -> dict:
        out: dict = {}
        for layer in self.layers:
            out[layer.status] = out.get(layer.status, 0) + 1
        return out

    def layer(self, tensor: str) -> LayerResult:
        for layer in self.layers:
            if layer.tensor == tensor:
                return layer
        raise KeyError(f"no layer for tensor '{tensor}'")

    # ---- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "model": self.model, "runtime": self.runtime, "method": self.method,
            "compute_units": self.compute_units, "precision": self.precision,
            "tolerances": self.tolerances, "counts": self.counts, "notes": list(self.notes),
            "first_divergence": self.first_divergence.to_dict() if self.first_divergence else None,
            "compression": list(self.compression),
            "layers": [asdict(layer) for layer in self.layers],
        }

    def to_json(self, path: Union[None, str, Path] = None, indent: int = 2) -> str:
        text = json.dumps(json_finite(self.to_dict()), indent=indent)
        if path is not None:
            Path(path).write_text(text)
        return text

    # ---- terminal ------------------------------------------------------------------------------
    def worst_rows(self, count: int = 10) -> list:
        """What a person reads first: every failing row (up to ``count``), the drifting model
        outputs, then the compared rows with the largest judged error, in topological order."""
        compared = [layer for layer in self.layers if layer.status in COMPARED]
        chosen = {id(layer): layer for layer in compared if layer.status == FAIL}
        chosen = dict(list(chosen.items())[:count])
        for layer in compared:  # the model's outputs: what the user ships
            if layer.tensor in self.outputs:
                chosen[id(layer)] = layer
        ranked = sorted(compared, key=lambda layer: -(layer.judged_error or 0.0))
        for layer in ranked:
            if len(chosen) >= count:
                break
            chosen.setdefault(id(layer), layer)
        return sorted(chosen.values(), key=lambda layer: layer.index)

    def rich_table(self, rows: Optional[list] = None):
        """The given rows (default: every row) as a rich table."""
        from rich.table import Table

        title = (f"{self.model}: {self.runtime} ({self.precision}, method {self.method}) vs onnxruntime"
                 f" — {'OK' if self.ok else 'DIVERGES'}")
        table = Table(title=title, show_lines=False)
        local = any(layer.local_rel_to_max is not None for layer in self.layers)
        columns = [("#", "right"), ("node", "left"), ("op", "left"), ("shape", "left")]
        if local:
            columns += [("local err/max|ref|", "right"), ("allowed", "right")]
        columns += [("accumulated err/max|ref|", "right"), ("cosine", "right"), ("SNR dB", "right"),
                    ("status", "left")]
        for col, justify in columns:
            table.add_column(col, justify=justify)
        first = self.first_divergence.tensor if self.first_divergence else None
        for layer in self.layers if rows is None else rows:
            style = {PASS: "green", FAIL: "bold red", LOSSY: "yellow"}.get(layer.status, "dim")
            status = layer.status + (" ◀ first" if layer.tensor == first else "")
            if layer.drift and layer.status == PASS:
                status += " (drift)"
            cells = [str(layer.index), layer.node, layer.op_type, _shape(layer.shape)]
            if local:
                allowed = (layer.allowed_abs_err / layer.max_abs_ref
                           if layer.allowed_abs_err is not None and layer.max_abs_ref else None)
                cells += [_num(layer.local_rel_to_max), _num(allowed)]
            cells += [_num(layer.rel_to_max), _num(layer.cosine, 6), _snr(layer), f"[{style}]{status}[/{style}]"]
            table.add_row(*cells)
        return table

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        lines = []
        if self.ok:
            lines.append(f"OK: every op within tolerance and the outputs too ({counts})")
        elif self.first_divergence is not None:
            d = self.first_divergence
            lines.append(f"DIVERGES: first divergence at node '{d.node}' ({d.op_type}), tensor '{d.tensor}' ({counts})")
        elif self.drifting_outputs:
            names = ", ".join(f"'{layer.tensor}'" for layer in self.drifting_outputs)
            why = ("the error of the compressed weights" if any(layer.status == LOSSY for layer in self.layers)
                   else "every op is within tolerance on reference inputs: error accumulates")
            lines.append(f"DIVERGES: output {names} beyond tolerance end to end; no op is wrong: {why} ({counts})")
        else:
            lines.append(f"DIVERGES: unknown node ({counts})")
        lossy = [layer for layer in self.layers if layer.status == LOSSY]
        compressed = [layer for layer in self.layers if layer.compressed]
        if compressed:
            lines.append(f"compressed weights in {len(compressed)} layer(s); {len(lossy)} beyond tolerance from "
                         "compression (lossy, not counted as divergence)"
                         + ("" if self.compression else "; compression_report=True ranks them against an "
                            "uncompressed build"))
        underflowing = [layer for layer in self.layers if layer.underflow]
        if underflowing:
            lines.append(f"precision warning: {len(underflowing)} tensor(s) lie below {self.precision}'s normal "
                         f"range and keep little precision (first: '{underflowing[0].node}'); "
                         "consider fp32 for them")
        drifting = self.drifting
        if drifting:
            cause = ("error carried from the divergence upstream" if self.first_divergence is not None
                     else "error carried from the compressed layers" if lossy
                     else f"accumulated {self.precision} error, no op is wrong")
            lines.append(f"{len(drifting)} tensor(s) beyond tolerance end to end while their own ops are right: "
                         f"{cause} (first: '{drifting[0].node}')")
        return "\n".join(lines)

    def print(self, console=None, all_rows: bool = False, count: int = 10) -> None:
        """Summary, first divergence and the worst rows; ``all_rows`` for the full table."""
        from rich.console import Console

        console = console or Console()
        rows = None if all_rows else self.worst_rows(count)
        console.print(self.rich_table(rows))
        if rows is not None:
            compared = sum(layer.status in COMPARED for layer in self.layers)
            console.print(f"{len(rows)} of {len(self.layers)} rows shown ({compared} compared): the worst; "
                          f"--all for every row")
        if self.compression:
            console.print(self.compression_table(count))
        for note in self.notes:
            console.print(f"note: {note}", style="dim")
        console.print(self.summary())

    def compression_table(self, count: int = 10):
        """The compressed layers the compression hurts most (local error added over the
        uncompressed build)."""
        from rich.table import Table

        table = Table(title=f"compression: the {min(count, len(self.compression))} most sensitive layers "
                            f"of {len(self.compression)}")
        alone = any("output_error_alone" in entry for entry in self.compression)
        columns = ["rank", "node", "op", "weights", "local err (compressed)", "uncompressed", "added"]
        columns += ["output err, alone compressed"] if alone else []
        for col in columns:
            table.add_column(col, justify="left" if col in ("node", "op", "weights") else "right")
        for rank, entry in enumerate(self.compression[:count], 1):
            cells = [str(rank), entry["node"], entry["op_type"], entry["compressed"], _num(entry["local_rel_to_max"]),
                     _num(entry["uncompressed_local_rel_to_max"]), _num(entry["added"])]
            table.add_row(*cells, *([_num(entry.get("output_error_alone"))] if alone else []))
        return table

    # ---- HTML --------------------------------------------------------------------------------
    def to_html(self, path: Union[str, Path]) -> Path:
        """A self-contained page: summary, per-layer error plot (inline SVG), table. No assets."""
        path = Path(path)
        path.write_text(self.html())
        return path

    def html(self) -> str:
        esc = html.escape
        first = self.first_divergence.tensor if self.first_divergence else None
        rows = []
        for layer in self.layers:
            cls = layer.status + (" first" if layer.tensor == first else "")
            status = layer.status + (" (drift)" if layer.drift and layer.status == PASS else "")
            cells = [str(layer.index), layer.node, layer.op_type, layer.tensor, _shape(layer.shape),
                     layer.mil_var or "", _num(layer.local_rel_to_max), _num(layer.max_abs_err),
                     _num(layer.rel_to_max), _num(layer.cosine, 6), _snr(layer), status, layer.reason]
            anchor = ' id="first-divergence"' if layer.tensor == first else ""
            rows.append(f'<tr class="{esc(cls)}"{anchor}>' + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
        heads = ["#", "node", "op", "tensor", "shape", "MIL var", "local err / max|ref|", "accumulated max abs err",
                 "accumulated err / max|ref|", "cosine", "SNR dB", "status", "reason"]
        tol = ", ".join(f"{k} {v}" for k, v in self.tolerances.items())
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        jump = ' <a href="#first-divergence">(go to the row)</a>' if first else ""
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>onnx2mil validation: {esc(self.model)}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; }} .ok {{ color: #1a7f37; }} .bad {{ color: #c62828; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #ddd; padding: 2px 6px; text-align: left; white-space: nowrap; }}
th {{ background: #f3f3f3; position: sticky; top: 0; }}
tr.fail td {{ background: #fde0e0; }} tr.first td {{ background: #f8b4b4; font-weight: bold; }}
tr.fused td, tr.folded td, tr.missing td {{ color: #888; }}
svg {{ border: 1px solid #ddd; background: #fff; }}
</style></head><body>
<h1>onnx2mil validation: {esc(self.model)}</h1>
<p class="{'ok' if self.ok else 'bad'}" id="summary">{esc(self.summary())}{jump}</p>
<p>runtime <b>{esc(self.runtime)}</b>{esc(f' ({self.compute_units})' if self.compute_units else '')},
precision <b>{esc(self.precision)}</b>, method <b>{esc(self.method)}</b>; tolerances: {esc(tol)}</p>
<ul>{notes}</ul>
{self.svg_plot()}
<table id="layers"><thead><tr>{''.join(f'<th>{esc(h)}</th>' for h in heads)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""

    def svg_plot(self, width: int = 900, height: int = 260) -> str:
        """Error / max|ref| per compared layer on a log scale, accumulated (blue) and local (orange,
        when measured), with the tolerance as a line."""
        points = [(layer.index, layer.rel_to_max, layer.status, layer.tensor) for layer in self.layers
                  if layer.status in COMPARED and layer.rel_to_max is not None]
        local = [(layer.index, layer.local_rel_to_max, layer.status, layer.tensor) for layer in self.layers
                 if layer.status in COMPARED and layer.local_rel_to_max is not None]
        margin_l, margin_b, margin_t, margin_r = 60, 30, 20, 20
        plot_w, plot_h = width - margin_l - margin_r, height - margin_t - margin_b
        floor = 1e-8
        tol = self.tolerances.get("rel_to_max")
        values = [max(p[1], floor) for p in points + local] + ([tol] if tol else [])
        lo = math.floor(math.log10(min(values))) if values else -8
        hi = math.ceil(math.log10(max(values))) if values else 0
        hi = max(hi, lo + 1)
        n = max((layer.index for layer in self.layers), default=0)

        def x_of(i):
            return margin_l + (plot_w * i / n if n else plot_w / 2)

        def y_of(v):
            return margin_t + plot_h * (hi - math.log10(max(v, floor))) / (hi - lo)

        parts = [f'<svg id="error-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                 f'viewBox="0 0 {width} {height}" role="img" aria-label="error per layer">']
        for e in range(lo, hi + 1):
            y = y_of(10.0 ** e)
            parts.append(f'<line x1="{margin_l}" y1="{y:.1f}" x2="{width - margin_r}" y2="{y:.1f}" '
                         f'stroke="#eee"/><text x="{margin_l - 6}" y="{y + 4:.1f}" font-size="10" '
                         f'text-anchor="end">1e{e}</text>')
        if tol:
            y = y_of(tol)
            parts.append(f'<line x1="{margin_l}" y1="{y:.1f}" x2="{width - margin_r}" y2="{y:.1f}" '
                         f'stroke="#c62828" stroke-dasharray="4 3"/><text x="{width - margin_r}" '
                         f'y="{y - 4:.1f}" font-size="10" text-anchor="end" fill="#c62828">tolerance</text>')
        if self.first_divergence is not None:
            x = x_of(self.first_divergence.layer.index)
            parts.append(f'<line x1="{x:.1f}" y1="{margin_t}" x2="{x:.1f}" y2="{margin_t + plot_h}" '
                         f'stroke="#c62828" stroke-width="1"/><text x="{x - 4:.1f}" y="{margin_t + 10}" '
                         f'font-size="10" text-anchor="end" fill="#c62828">first divergence</text>')
        for series, line, label in ((points, "#1565c0", "accumulated"), (local, "#ef6c00", "local")):
            if not series:
                continue
            path = " ".join(f"{'M' if k == 0 else 'L'}{x_of(i):.1f},{y_of(v):.1f}"
                            for k, (i, v, _, _) in enumerate(series))
            parts.append(f'<path class="{label}" d="{path}" fill="none" stroke="{line}" stroke-width="1"/>')
            for i, v, status, tensor in series:
                color = "#c62828" if status == FAIL and label == "local" or not local and status == FAIL else line
                parts.append(f'<circle cx="{x_of(i):.1f}" cy="{y_of(v):.1f}" r="2.5" fill="{color}">'
                             f'<title>{html.escape(tensor)} ({label}): {v:.3g}</title></circle>')
        legend = [("accumulated", "#1565c0")] + ([("local (judged)", "#ef6c00")] if local else [])
        for k, (label, color) in enumerate(legend):
            parts.append(f'<text x="{margin_l + 8 + 130 * k}" y="{margin_t + 12}" font-size="11" fill="{color}">'
                         f'&#9679; {label}</text>')
        parts.append(f'<text x="{margin_l + plot_w / 2}" y="{height - 6}" font-size="11" text-anchor="middle">'
                     f'layer (topological order)</text>')
        parts.append(f'<text x="12" y="{margin_t + plot_h / 2}" font-size="11" text-anchor="middle" '
                     f'transform="rotate(-90 12 {margin_t + plot_h / 2})">max abs err / max |ref|</text>')
        parts.append("</svg>")
        return "\n".join(parts)


def json_finite(obj):
    """JSON has no Infinity/NaN: infinite or NaN floats become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_finite(v) for v in obj]
    return obj


def _num(v: Optional[float], digits: int = 3) -> str:
    if v is None:
        return ""
    return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.3e}"


def _snr(layer: LayerResult) -> str:
    if layer.status not in COMPARED:
        return ""
    return "exact" if layer.snr_db is None else f"{layer.snr_db:.1f}"


def _shape(shape) -> str:
    return "" if shape is None else "×".join(str(d) for d in shape) or "scalar"
