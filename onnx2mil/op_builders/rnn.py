"""ONNX RNN / GRU / LSTM (forward, reverse, bidirectional; layout 0/1; initial states; peepholes;
clip; input_forget; linear_before_reset; every ONNX activation; sequence_lens by masking each
step: past its length a sequence keeps its state and outputs zeros): one input-projection matmul
for all steps, then per step a recurrent matmul and the gate math, exactly as the ONNX equations
(gate orders: LSTM i,o,f,c; GRU z,r,h). A one-step sequence is emitted once; any longer one,
static or symbolic, runs the same step in a ``while_loop`` that scatters each step's output into a
[T, B, H] buffer, so the op count does not grow with the sequence length. MIL's lstm/gru/rnn ops
are not used: they take constant weights only and fewer activations, and MIL gru adds the
recurrent bias of the new gate outside ``r * (...)``, which matches neither linear_before_reset."""
from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil.types.symbolic import is_symbolic

from ..backend.convert.context import mil_dtype_of
from ..backend.convert.registry import op_builder
from ._common import const_like, input_refusal

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
# activation -> (uses alpha, uses beta, default alpha, default beta), as ONNX's operators
_ACTIVATIONS = {
    "Relu": (False, False, None, None), "Tanh": (False, False, None, None),
    "Sigmoid": (False, False, None, None), "Softsign": (False, False, None, None),
    "Softplus": (False, False, None, None), "Affine": (True, True, 1.0, 0.0),
    "LeakyRelu": (True, False, 0.01, None), "ThresholdedRelu": (True, False, 1.0, None),
    "ScaledTanh": (True, True, 1.0, 1.0), "HardSigmoid": (True, True, 0.2, 0.5), "Elu": (True, False, 1.0, None),
}


def activations(node):
    """[(name, alpha, beta)] per direction, alphas/betas consumed in order by the functions using them."""
    names = [n.decode() if isinstance(n, bytes) else n for n in node.attr("activations") or []]
    per_dir = len(_DEFAULT_ACTIVATIONS[node.op_type])
    n_dir = 2 if node.attr("direction") == "bidirectional" else 1
    if not names:
        names = _DEFAULT_ACTIVATIONS[node.op_type] * n_dir
    alphas = list(node.attr("activation_alpha") or [])
    betas = list(node.attr("activation_beta") or [])
    funcs = []
    for name in names:
        canon = next((k for k in _ACTIVATIONS if k.lower() == name.lower()), name)
        uses_a, uses_b, da, db = _ACTIVATIONS.get(canon, (False, False, None, None))
        a = alphas.pop(0) if uses_a and alphas else da
        b = betas.pop(0) if uses_b and betas else db
        funcs.append((canon, a, b))
    return [funcs[d * per_dir:(d + 1) * per_dir] for d in range(n_dir)]


def activate(ctx, x, func, name):
    kind, a, b = func
    if kind == "Relu":
        return mb.relu(x=x, name=name)
    if kind == "Tanh":
        return mb.tanh(x=x, name=name)
    if kind == "Sigmoid":
        return mb.sigmoid(x=x, name=name)
    if kind == "Softsign":
        return mb.softsign(x=x, name=name)
    if kind == "Softplus":
        return mb.softplus(x=x, name=name)
    if kind == "Affine":
        return mb.linear_activation(x=x, alpha=const_like(a, x), beta=const_like(b, x), name=name)
    if kind == "LeakyRelu":
        return mb.leaky_relu(x=x, alpha=const_like(a, x), name=name)
    if kind == "ThresholdedRelu":  # MIL thresholded_relu keeps x == alpha; ONNX zeroes it
        keep = mb.greater(x=x, y=const_like(a, x), name=ctx.scratch(f"{name}_keep"))
        return mb.select(cond=keep, a=x, b=const_like(0.0, x), name=name)
    if kind == "ScaledTanh":
        return mb.scaled_tanh(x=x, alpha=const_like(a, x), beta=const_like(b, x), name=name)
    if kind == "HardSigmoid":
        return mb.sigmoid_hard(x=x, alpha=const_like(a, x), beta=const_like(b, x), name=name)
    return mb.elu(x=x, alpha=const_like(a, x), name=name)


class Recurrence:
    """Per-direction parameters (numpy constants or MIL vars) and the per-step gate math."""

    def __init__(self, node, ctx, like):
        self.node, self.ctx, self.like = node, ctx, like
        self.out = node.outputs[0] or next(o for o in node.outputs if o)
        self.hidden = node.attr("hidden_size")
        self.clip = node.attr("clip")
        self.batch_major = node.attr("layout", 0) == 1

    def name(self, what):
        return self.ctx.scratch(f"{self.out}_{what}")

    def param(self, i: int, d: int, begin=None, end=None):
        """Input i at direction d ([d, begin:end] along the second axis), or None if absent."""
        node, ctx = self.node, self.ctx
        if not node.has_input(i):
            return None
        value = ctx.const(node.inputs[i])
        if value is not None:
            value = mil_dtype_of(value)[d]
            return const_like(value[begin:end] if begin is not None else value, self.like)
        var = ctx.var(node.inputs[i])
        rank = var.rank
        lo = [d] + [0] * (rank - 1)
        hi = [d + 1] + list(var.shape[1:])
        if begin is not None:
            lo[1], hi[1] = begin, end
        var = mb.slice_by_index(x=var, begin=lo, end=hi, name=self.name(f"{i}_dir{d}"))
        return mb.squeeze(x=var, axes=[0], name=self.name(f"{i}_dir{d}_squeezed"))

    def state(self, i: int, d: int, x):
        """initial_h / initial_c for direction d as [B, H] (zeros when absent); ``x`` is the
        sequence-major input [T, B, I]."""
        node, ctx = self.node, self.ctx
        batch = x.shape[1]
        if not node.has_input(i) and not is_symbolic(batch):
            return const_like(np.zeros((int(batch), self.hidden)), self.like)
        if not node.has_input(i):  # a symbolic batch: zeros of the runtime [B, H]
            b = mb.slice_by_index(x=mb.shape(x=x, name=self.name(f"x_shape{i}")), begin=[1], end=[2],
                                  name=self.name(f"batch{i}"))
            shape = mb.concat(values=[b, np.array([self.hidden], np.int32)], axis=0, name=self.name(f"state{i}_shape"))
            return mb.fill(shape=shape, value=const_like(0.0, x), name=self.name(f"zeros{i}_dir{d}"))
        value = ctx.const(node.inputs[i])
        if value is not None:
            value = np.swapaxes(value, 0, 1) if self.batch_major else value
            return const_like(value[d], self.like)
        var = ctx.var(node.inputs[i])
        if self.batch_major:
            var = mb.transpose(x=var, perm=[1, 0, 2], name=self.name(f"{i}_seq_major"))
        var = mb.slice_by_index(x=var, begin=[d, 0, 0], end=[d + 1, 0, 0], end_mask=[False, True, True],
                                name=self.name(f"{i}_dir{d}"))
        return mb.squeeze(x=var, axes=[0], name=self.name(f"{i}_dir{d}_squeezed"))

    def pre(self, x):
        if not self.clip:
            return x
        c = float(self.clip)
        return mb.clip(x=x, alpha=const_like(-c, x), beta=const_like(c, x), name=self.name("clipped"))


def _gate(r: Recurrence, xw, k: int):
    """Gate k ([B, H]) of a [B, G*H] projection."""
    h = r.hidden
    return mb.slice_by_index(x=xw, begin=[0, k * h], end=[0, (k + 1) * h], begin_mask=[True, False],
                             end_mask=[True, False], name=r.name(f"gate{k}"))


def _project(r: Recurrence, x, d: int):
    """X [T, B, I] @ W_d^T (+ Wb + Rb) -> [T, B, G*H]."""
    w = r.param(1, d)
    xw = mb.matmul(x=x, y=w, transpose_y=True, name=r.name(f"xw_dir{d}"))
    gh = _GATES[r.node.op_type] * r.hidden
    if r.node.has_input(3):
        wb = r.param(3, d, 0, gh)
        if r.node.op_type == "GRU" and r.node.attr("linear_before_reset"):
            # the h-gate's recurrent bias stays inside r * (...): add Rb for z and r only
            rb = r.param(3, d, gh, gh + 2 * r.hidden)
            zeros = const_like(np.zeros(r.hidden), r.like)
            rb = mb.concat(values=[rb, zeros], axis=0, name=r.name("rb_zr")) if not isinstance(rb, np.ndarray) \
                else np.concatenate([rb, zeros])
        else:
            rb = r.param(3, d, gh, 2 * gh)
        bias = (wb + rb) if isinstance(wb, np.ndarray) and isinstance(rb, np.ndarray) else \
            mb.add(x=wb, y=rb, name=r.name(f"bias_dir{d}"))
        xw = mb.add(x=xw, y=bias, name=r.name(f"xwb_dir{d}"))
    return xw


def _step_rnn(r, xw_t, h, c, d, funcs, rmat, extra):
    a = mb.add(x=xw_t, y=mb.matmul(x=h, y=rmat, transpose_y=True, name=r.name("hr")), name=r.name("a"))
    return activate(r.ctx, r.pre(a), funcs[0], r.name("h")), None


def _step_gru(r, xw_t, h, c, d, funcs, rmat, extra):
    f, g = funcs
    r_zr = extra["r_zr"]
    r_h = extra["r_h"]
    hr = mb.matmul(x=h, y=r_zr, transpose_y=True, name=r.name("hr_zr"))
    z = activate(r.ctx, r.pre(mb.add(x=_gate(r, xw_t, 0), y=_gate(r, hr, 0), name=r.name("z_pre"))), f, r.name("z"))
    rt = activate(r.ctx, r.pre(mb.add(x=_gate(r, xw_t, 1), y=_gate(r, hr, 1), name=r.name("r_pre"))), f, r.name("r"))
    if r.node.attr("linear_before_reset"):
        hh = mb.matmul(x=h, y=r_h, transpose_y=True, name=r.name("hr_h"))
        if extra["rb_h"] is not None:
            hh = mb.add(x=hh, y=extra["rb_h"], name=r.name("hr_hb"))
        hh = mb.mul(x=rt, y=hh, name=r.name("reset_hr"))
    else:
        hh = mb.matmul(x=mb.mul(x=rt, y=h, name=r.name("reset_h")), y=r_h, transpose_y=True, name=r.name("hr_h"))
    cand = activate(r.ctx, r.pre(mb.add(x=_gate(r, xw_t, 2), y=hh, name=r.name("h_pre"))), g, r.name("h_cand"))
    # (1 - z) * cand + z * h  ==  cand + z * (h - cand)
    diff = mb.sub(x=h, y=cand, name=r.name("h_minus_cand"))
    return mb.add(x=cand, y=mb.mul(x=z, y=diff, name=r.name("z_diff")), name=r.name("h")), None


def _step_lstm(r, xw_t, h, c, d, funcs, rmat, extra):
    f, g, hf = funcs
    a = mb.add(x=xw_t, y=mb.matmul(x=h, y=rmat, transpose_y=True, name=r.name("hr")), name=r.name("a"))
    pi, po, pf = extra["peepholes"]
    gi = _gate(r, a, 0)
    if pi is not None:
        gi = mb.add(x=gi, y=mb.mul(x=c, y=pi, name=r.name("pi_c")), name=r.name("i_peep"))
    i = activate(r.ctx, r.pre(gi), f, r.name("i"))
    if r.node.attr("input_forget"):
        ft = mb.sub(x=const_like(1.0, r.like), y=i, name=r.name("f"))
    else:
        gf = _gate(r, a, 2)
        if pf is not None:
            gf = mb.add(x=gf, y=mb.mul(x=c, y=pf, name=r.name("pf_c")), name=r.name("f_peep"))
        ft = activate(r.ctx, r.pre(gf), f, r.name("f"))
    cand = activate(r.ctx, r.pre(_gate(r, a, 3)), g, r.name("c_cand"))
    c_new = mb.add(x=mb.mul(x=ft, y=c, name=r.name("fc")), y=mb.mul(x=i, y=cand, name=r.name("ic")), name=r.name("c"))
    go = _gate(r, a, 1)
    if po is not None:
        go = mb.add(x=go, y=mb.mul(x=c_new, y=po, name=r.name("po_c")), name=r.name("o_peep"))
    o = activate(r.ctx, r.pre(go), f, r.name("o"))
    return mb.mul(x=o, y=activate(r.ctx, c_new, hf, r.name("c_act")), name=r.name("h")), c_new


_STEPS = {"RNN": _step_rnn, "GRU": _step_gru, "LSTM": _step_lstm}


def _extra(r: Recurrence, d: int):
    op, hs = r.node.op_type, r.hidden
    if op == "GRU":
        gh = 3 * hs
        rb_h = r.param(3, d, gh + 2 * hs, 2 * gh) if r.node.has_input(3) else None
        return {"r_zr": r.param(2, d, 0, 2 * hs), "r_h": r.param(2, d, 2 * hs, 3 * hs), "rb_h": rb_h}
    if op == "LSTM":
        if r.node.has_input(7):
            return {"peepholes": [r.param(7, d, k * hs, (k + 1) * hs) for k in range(3)]}
        return {"peepholes": [None, None, None]}
    return {}


def _single_step(r: Recurrence, xw, h, c, d: int, funcs, rmat, extra, lens):
    """A one-step sequence: (Y of this direction [1, B, H], final h, final c)."""
    xw_t = mb.squeeze(x=xw, axes=[0], name=r.name(f"step0_dir{d}"))
    h, c, y = _masked_step(r, xw_t, h, c, d, funcs, rmat, extra, lens, np.int32(0))
    return mb.expand_dims(x=y, axes=[0], name=r.name(f"y_dir{d}")), h, c


def _looped(r: Recurrence, xw, h, c, d: int, forward: bool, funcs, rmat, extra, lens, x):
    """A while_loop over the runtime sequence length: step t reads xw[t] (xw[T-1-t] in reverse)
    and scatters its output into a [T, B, H] buffer carried as a loop variable."""
    length = mb.gather(x=mb.shape(x=x, name=r.name("x_shape")), indices=np.int32(0), axis=0,
                       name=r.name(f"steps_dir{d}"))
    last = mb.sub(x=length, y=np.int32(1), name=r.name(f"last_dir{d}"))
    # every position is written before the loop ends; the buffer starts as a slice of xw (its dtype)
    buffer = mb.slice_by_index(x=xw, begin=[0, 0, 0], end=[0, 0, r.hidden], begin_mask=[True, True, True],
                               end_mask=[True, True, False], name=r.name(f"y_buffer_dir{d}"))
    has_c = c is not None

    def cond(t, *_):
        return mb.less(x=t, y=length, name=r.name(f"more_dir{d}"))

    def body(t, h, *rest):
        c, buf = rest if has_c else (None, rest[0])
        at = t if forward else mb.sub(x=last, y=t, name=r.name(f"at_dir{d}"))
        xw_t = mb.gather(x=xw, indices=at, axis=0, name=r.name(f"step_dir{d}"))
        h, c, y_t = _masked_step(r, xw_t, h, c, d, funcs, rmat, extra, lens, at)
        buf = mb.scatter(data=buf, indices=mb.expand_dims(x=at, axes=[0], name=r.name(f"at_dir{d}_1d")),
                         updates=mb.expand_dims(x=y_t, axes=[0], name=r.name(f"y_t_dir{d}")), axis=0,
                         mode="update", name=r.name(f"y_written_dir{d}"))
        t_next = mb.add(x=t, y=np.int32(1), name=r.name(f"t_next_dir{d}"))
        return (t_next, h, c, buf) if has_c else (t_next, h, buf)

    state = (np.int32(0), h, c, buffer) if has_c else (np.int32(0), h, buffer)
    results = mb.while_loop(_cond=cond, _body=body, loop_vars=state, name=r.name(f"loop_dir{d}"))
    return results[-1], results[1], results[2] if has_c else None


def _masked_step(r: Recurrence, xw_t, h, c, d: int, funcs, rmat, extra, lens, t):
    """(h, c, output) after step ``t``; steps at or past a sequence's length keep its state and
    output zeros."""
    h_new, c_new = _STEPS[r.node.op_type](r, xw_t, h, c, d, funcs, rmat, extra)
    if lens is None:
        return h_new, c_new if c_new is not None else c, h_new
    active = mb.expand_dims(x=mb.greater(x=lens, y=t, name=r.name("active")), axes=[1], name=r.name("active_col"))
    h = mb.select(cond=active, a=h_new, b=h, name=r.name("h_kept"))
    c = mb.select(cond=active, a=c_new, b=c, name=r.name("c_kept")) if c_new is not None else c
    return h, c, mb.select(cond=active, a=h_new, b=const_like(np.zeros(1), r.like), name=r.name("y_masked"))


def unrolls(steps) -> bool:
    """Only a single step is emitted inline: unrolling would emit one block of ops per step."""
    return isinstance(steps, int) and steps == 1


@op_builder("RNN", "GRU", "LSTM", min_opset=7)
def recurrent(node, ctx):
    x = ctx.input(node, 0)
    r = Recurrence(node, ctx, x)
    if r.batch_major:
        x = mb.transpose(x=x, perm=[1, 0, 2], name=r.name("seq_major"))
    steps = x.shape[0] if is_symbolic(x.shape[0]) else int(x.shape[0])
    directions = ["forward", "reverse"] if node.attr("direction") == "bidirectional" else [node.attr("direction")]
    funcs = activations(node)
    lens = _lengths(node, ctx, steps)
    ys, hs, cs = [], [], []
    for d, direction in enumerate(directions):
        xw = _project(r, x, d)
        h = r.state(5, d, x)
        c = r.state(6, d, x) if node.op_type == "LSTM" else None
        rmat = r.param(2, d) if node.op_type != "GRU" else None
        extra = _extra(r, d)
        forward = direction == "forward"
        if unrolls(steps):
            y, h, c = _single_step(r, xw, h, c, d, funcs[d], rmat, extra, lens)
        else:
            y, h, c = _looped(r, xw, h, c, d, forward, funcs[d], rmat, extra, lens, x)
        ys.append(y)
        hs.append(h)
        cs.append(c)
    names = list(node.outputs) + [""] * (3 - len(node.outputs))

    def bound(k, what):
        return ctx.mil_name(names[k]) if names[k] else r.name(what)

    y = mb.stack(values=ys, axis=1, name=r.name("y_stacked") if r.batch_major else bound(0, "y"))
    if r.batch_major:
        y = mb.transpose(x=y, perm=[2, 0, 1, 3], name=bound(0, "y"))
    results = [y, _final(r, hs, bound(1, "y_h"))]
    if node.op_type == "LSTM":
        c_final = [cc if not isinstance(cc, np.ndarray) else mb.identity(x=cc, name=r.name("c_init")) for cc in cs]
        results.append(_final(r, c_final, bound(2, "y_c")))
    ctx.set_output(node, *results)


def _lengths(node, ctx, steps: int):
    """sequence_lens as an int32 var or constant, or None when absent or every length is full."""
    if not node.has_input(4):
        return None
    value = ctx.const(node.inputs[4])
    if value is not None:
        return None if isinstance(steps, int) and np.all(value == steps) else value.astype(np.int32)
    var = ctx.var(node.inputs[4])
    return var if var.dtype.__name__ == "int32" else mb.cast(x=var, dtype="int32", name=ctx.scratch(f"{node.name}_lens"))


def _final(r: Recurrence, states, name):
    """[D, B, H] (layout 0) or [B, D, H] (layout 1) from per-direction [B, H]."""
    return mb.stack(values=states, axis=1 if r.batch_major else 0, name=name)


@recurrent.check
def _(node, ctx):
    refusal = input_refusal(ctx, node.inputs[0], what="recurrences take")
    if refusal:
        return refusal
    shape = ctx.shape(node.inputs[0])
    if len(shape) != 3:
        return f"input has rank {len(shape)}, not 3"
    batch_major = node.attr("layout", 0) == 1
    steps = shape[1] if batch_major else shape[0]
    if not isinstance(shape[2], int):
        return "the input size must be static (symbolic sequence and batch lengths are fine)"
    if node.attr("hidden_size") is None:
        return "hidden_size attribute is required"
    for i in (1, 2):
        if ctx.shape(node.inputs[i]) is None or not all(isinstance(v, int) for v in ctx.shape(node.inputs[i])):
            return "W and R need static shapes"
    if node.has_input(4):
        lens = ctx.const(node.inputs[4])
        if lens is not None and (np.any(lens < 1) or (isinstance(steps, int) and np.any(lens > steps))):
            return f"sequence_lens {lens.tolist()} outside 1..{steps}"
    for func in sum(activations(node), []):
        if func[0] not in _ACTIVATIONS:
            return f"activation '{func[0]}'"
    return None
