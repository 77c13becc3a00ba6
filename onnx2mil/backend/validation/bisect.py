"""Truncation bisection (validate's method "truncation"): probe the model cut at one tensor, and
narrow to the first failing tensor as git bisect narrows to a commit."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from .report import FAIL, MISSING, PASS, LayerResult


def bisect(candidates: Sequence[LayerResult], nodes, probe: Callable[[list[str]], None]) -> tuple[Optional[str], int]:
    """(the first failing tensor or None, the number of probes). ``probe(tensors)`` builds the
    model cut at ``tensors``, runs it and fills their rows' statuses. The candidates narrow to the
    ancestors of the latest failing tensor that no passing probe already clears (a passing probe
    clears its ancestors: a cut model that matches implies its inputs did); cleared rows pass."""
    for r in candidates:  # only probed (or cleared) tensors get a status
        r.status, r.reason, r.mil_var = MISSING, "not probed by the bisection", None
    producer = {o: n for n in nodes for o in n.outputs}
    consumed = {i for n in nodes for i in n.inputs if i}
    by_tensor = {r.tensor: r for r in candidates}
    memo: dict[str, frozenset] = {}

    def ancestors(tensor: str) -> frozenset:
        if tensor not in memo:
            found = set()
            for i in producer[tensor].inputs:
                if i in producer:
                    found.add(i)
                    found |= ancestors(i)
            memo[tensor] = frozenset(found)
        return memo[tensor]

    ends = [r.tensor for r in candidates if r.tensor not in consumed]
    probe(ends)
    probes, worst = 1, next((t for t in ends if by_tensor[t].status == FAIL), None)
    cleared: set[str] = set()
    if worst is not None:
        pool = [r.tensor for r in candidates if r.tensor in ancestors(worst)]
        while pool:
            mid = _best_split(pool, ancestors)
            probe([mid])
            probes += 1
            if by_tensor[mid].status == FAIL:
                worst = mid
                pool = [t for t in pool if t in ancestors(mid)]
            else:
                cleared |= ancestors(mid)
                pool = [t for t in pool if t not in cleared and t != mid]
    for t in cleared & set(by_tensor):
        if by_tensor[t].status == MISSING:
            by_tensor[t].status, by_tensor[t].reason = PASS, "cleared by a passing probe downstream"
    return worst, probes


def _best_split(pool: list[str], ancestors: Callable[[str], frozenset], samples: int = 64) -> str:
    """The probe that best halves ``pool`` whatever its outcome (as git bisect picks a commit):
    a failing probe keeps its ancestors, a passing one drops them and itself. Among up to
    ``samples`` evenly spaced candidates, so a large graph costs O(samples x pool)."""
    members = set(pool)
    step = max(1, len(pool) // samples)

    def worst_case(t: str) -> int:
        kept_if_fail = len(ancestors(t) & members)
        return max(kept_if_fail, len(pool) - kept_if_fail - 1)

    return min(pool[::step], key=worst_case)
