"""Reading a compiled HLO module's text: the collectives it runs per step, and the activations
it gathers whole. Written by hand because neither JAX nor XLA exposes these as an API."""

import math
import re

COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")

# One HLO instruction: "%name = TYPE opcode(OPERANDS), attributes". TYPE is an array type such as
# bf16[8,128]{1,0} or a tuple of them.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.+?)\s+([a-z][\w\-]*)\((.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")  # unindented, ends with "{"
_ARRAY = re.compile(r"\b(pred|s8|u8|s16|u16|s32|u32|s64|u64|f16|bf16|f32|f64|f8e4m3fn|f8e5m2)\[([\d,]*)\]")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
          "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8}
_CALLS = re.compile(r"\b(calls|body|to_apply|branch_computations|true_computation|false_computation)="
                    r"(?:\{([^}]*)\}|%?([\w.\-]+))")
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"')


def collectives(hlo_text: str) -> dict:
    """Count and bytes per step of each collective kind in a compiled HLO module.

    A collective inside a loop body counts once per iteration (the loop's known trip count;
    a loop without one counts once, and `loops_without_trip_count` says how many there were).
    Bytes: the larger of the collective's input and output on one device, i.e. the whole buffer
    it gathers, reduces or sends. Async pairs (-start/-done) count once.
    """
    ops, calls = _parse(hlo_text)
    entry = next((name for name, is_entry in ops["__entry__"] if is_entry), None)
    totals = {kind: {"count": 0, "bytes": 0} for kind in COLLECTIVES}
    unknown = 0

    def visit(computation: str, times: int, depth: int = 0):
        nonlocal unknown
        if depth > 64:
            return
        for kind, nbytes in ops.get(computation, ()):
            totals[kind]["count"] += times
            totals[kind]["bytes"] += times * nbytes
        for callee, trips in calls.get(computation, ()):
            if trips is None:
                unknown += 1
            visit(callee, times * (trips or 1), depth + 1)

    if entry:
        visit(entry, 1)
    result = {k: v for k, v in totals.items() if v["count"]}
    if unknown:
        result["loops_without_trip_count"] = unknown
    return result


def whole_batch_collectives(hlo_text: str, batch: int, seq_len: int) -> list[str]:
    """Collectives that assemble a [batch, seq_len, ...] array on one device: activations the
    partitioner could not keep split by batch and gathered whole (an "involuntary full
    rematerialization"). A sharded step should have none."""
    found = []
    for line in hlo_text.splitlines():
        m = _INSTRUCTION.match(line)
        if m and m.group(2).removesuffix("-start") in COLLECTIVES:
            shapes = [dims.split(",") for _, dims in _ARRAY.findall(m.group(1))]
            if any(len(d) >= 2 and d[0] == str(batch) and d[1] in (str(seq_len), str(seq_len + 1))
                   for d in shapes):
                found.append(line.strip()[:200])
    return found


def _parse(hlo_text: str):
    """computation -> [(collective kind, bytes)], computation -> [(callee, times per call or None)]."""
    ops: dict = {"__entry__": []}
    calls: dict = {}
    bounds: dict = {}  # computation -> the integer constant a "counter < K" compare uses
    loops = []  # (computation, body, condition, known trip count or None)
    current = None
    for line in hlo_text.splitlines():
        header = _COMPUTATION.match(line)
        if header:
            current = header.group(1)
            ops["__entry__"].append((current, line.startswith("ENTRY")))
            continue
        m = _INSTRUCTION.match(line)
        if not m or current is None:
            continue
        result_type, opcode, rest = m.groups()
        kind = opcode.removesuffix("-start")
        if kind in COLLECTIVES and not opcode.endswith("-done"):
            nbytes = max(_largest_array(result_type), _largest_array(rest.split("),")[0]))
            ops.setdefault(current, []).append((kind, nbytes))
        if opcode == "constant" and re.match(r"[su]32\[\]", result_type):
            bounds.setdefault(current, []).append(int(re.match(r"(-?\d+)", rest).group(1)))
        if opcode == "compare" and "direction=LT" in rest:
            bounds.setdefault(current, []).append("LT")
        if opcode == "while":
            body, cond = re.search(r"body=%?([\w.\-]+)", rest), re.search(r"condition=%?([\w.\-]+)", rest)
            trips = _TRIP_COUNT.search(rest)
            loops.append((current, body.group(1), cond.group(1), int(trips.group(1)) if trips else None))
            continue
        for _, listed, single in _CALLS.findall(rest):
            for callee in (re.split(r",\s*", listed) if listed else [single]):
                calls.setdefault(current, []).append((callee.strip().lstrip("%"), 1))
    for computation, body, cond, trips in loops:
        calls.setdefault(computation, []).append((body, trips or _trip_count(bounds.get(cond, []))))
    return ops, calls


def _trip_count(cond: list) -> int | None:
    """A loop condition that is one "counter < K" compare (scan's loops: the counter runs from
    0 by 1) runs its body K times; anything else is not guessed."""
    constants = [c for c in cond if c != "LT"]
    return constants[0] if "LT" in cond and len(constants) == 1 else None


def _largest_array(types: str) -> int:
    sizes = [_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d)
             for dtype, dims in _ARRAY.findall(types)]
    return max(sizes, default=0)
