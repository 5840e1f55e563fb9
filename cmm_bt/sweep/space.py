"""The search space of a sweep: ``--param`` specs and the points of grid and random search.

A ``--param`` is ``KEY=SPEC`` where ``KEY`` is any ``-o`` path and ``SPEC`` is one of

- ``V1,V2,...``: a list of values (each parsed as YAML, like an ``-o`` value; commas inside
  ``[...]``, ``{...}`` or quotes do not split);
- ``log(LO,HI)``: log-uniform between ``LO`` and ``HI`` (random and tpe);
- ``uniform(LO,HI)``: uniform between ``LO`` and ``HI`` (random and tpe);
- ``int(LO,HI)``: an integer in ``LO..HI`` inclusive (random and tpe; grid takes every integer);
- ``log(LO,HI,N)`` / ``uniform(LO,HI,N)``: ``N`` points spaced that way, ends included (a list:
  any search).

A point is ``{key: value}``; :func:`override_for` turns one value into the ``-o`` string.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Literal

from cmm_bt.config.yamlio import parse_scalar
from cmm_bt.errors import CmmBtError

Kind = Literal["choice", "log", "uniform", "int"]
_RANGE = re.compile(r"^(log|uniform|int)\((.*)\)$", re.S)
#: Grid size above which a grid is refused (use random or tpe search).
MAX_GRID = 10_000


@dataclass(frozen=True)
class Param:
    """One swept key.  ``choices`` are parsed values for a list; ``low``/``high`` for a range."""

    key: str
    kind: Kind
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None

    @property
    def discrete(self) -> bool:
        return self.kind == "choice" or self.kind == "int"

    def grid_values(self) -> list[Any]:
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        raise CmmBtError(
            f"{self.kind}({_num(self.low)},{_num(self.high)}) is a continuous range: grid search needs values "
            f"(a list, or {self.kind}(LO,HI,N) for N points) or use --search random|tpe",
            key=f"--param {self.key}",
        )

    def sample(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return self.choices[rng.randrange(len(self.choices))]
        if self.kind == "int":
            return rng.randint(int(self.low), int(self.high))
        if self.kind == "log":
            return _round(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))
        return _round(rng.uniform(self.low, self.high))

    def describe(self) -> str:
        if self.kind == "choice":
            return ",".join(_show(v) for v in self.choices)
        return f"{self.kind}({_num(self.low)},{_num(self.high)})"

    def to_json(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"kind": "choice", "values": list(self.choices)}
        return {"kind": self.kind, "low": self.low, "high": self.high}


def _num(x: float | None) -> str:
    return "" if x is None else (str(int(x)) if float(x).is_integer() else repr(float(x)))


def _round(x: float) -> float:
    """Sampled floats to 6 significant digits: readable folder names and YAML, same value everywhere."""
    return float(f"{x:.6g}")


def _show(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def split_values(text: str) -> list[str]:
    """Split on top-level commas (not inside brackets, braces or quotes)."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_param(text: str) -> Param:
    """``KEY=V1,V2`` / ``KEY=log(LO,HI)`` / ... as a :class:`Param`; a bad spec is a :class:`CmmBtError`."""
    key, sep, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    where = f"--param {text}"
    if not sep or not key or not spec:
        raise CmmBtError("expected KEY=V1,V2,... or KEY=log(LO,HI) (KEY is an -o path)", key=where)
    if any(not part for part in key.split(".")):
        raise CmmBtError(f"bad key {key!r}", key=where)
    m = _RANGE.match(spec)
    if m:
        kind, inner = m.group(1), m.group(2)
        parts = split_values(inner)
        if len(parts) not in (2, 3):
            raise CmmBtError(f"{kind}() takes LO,HI or LO,HI,N", key=where)
        try:
            lo, hi = float(parts[0]), float(parts[1])
            n = int(parts[2]) if len(parts) == 3 else None
        except ValueError:
            raise CmmBtError(f"{kind}() needs numbers, got {inner!r}", key=where) from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            raise CmmBtError(f"{kind}() needs LO < HI, got {inner!r}", key=where)
        if kind == "log" and lo <= 0:
            raise CmmBtError(f"log() needs LO > 0, got {parts[0]}", key=where)
        if kind == "int":
            if not (lo.is_integer() and hi.is_integer()) or n is not None:
                raise CmmBtError(f"int() takes two integers LO,HI, got {inner!r}", key=where)
            return Param(key, "int", low=lo, high=hi)
        if n is not None:
            if n < 2:
                raise CmmBtError(f"{kind}(LO,HI,N) needs N >= 2, got {n}", key=where)
            if kind == "log":
                pts = [math.exp(math.log(lo) + i * (math.log(hi) - math.log(lo)) / (n - 1)) for i in range(n)]
            else:
                pts = [lo + i * (hi - lo) / (n - 1) for i in range(n)]
            return Param(key, "choice", choices=tuple(dict.fromkeys(_round(p) for p in pts)))
        return Param(key, kind, low=lo, high=hi)
    raws = split_values(spec)
    if any(r == "" for r in raws):
        raise CmmBtError("empty value in the list", key=where)
    values = tuple(parse_scalar(r) for r in raws)
    if len({canonical(v) for v in values}) != len(values):
        raise CmmBtError("a value is listed twice", key=where)
    return Param(key, "choice", choices=values)


def parse_params(texts: list[str]) -> list[Param]:
    params = [parse_param(t) for t in texts]
    seen: set[str] = set()
    for p in params:
        if p.key in seen:
            raise CmmBtError("key swept twice", key=f"--param {p.key}")
        seen.add(p.key)
    return params


# ------------------------------------------------------------------------------------- points
def canonical(value: Any) -> str:
    """A stable text of a value (the trial key hashes it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def override_for(key: str, value: Any) -> str:
    """The ``-o`` string that sets ``key`` to ``value`` (YAML flow syntax, parsed back to ``value``)."""
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:  # YAML 1.1 reads 1e-05 as a string
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return f"{key}={text}"
    if isinstance(value, str):
        return f"{key}={value}" if parse_scalar(value) == value else f"{key}={json.dumps(value)}"
    return f"{key}={json.dumps(value)}"


def grid_points(params: list[Param]) -> list[dict[str, Any]]:
    """Every combination, the first key varying slowest."""
    axes = [p.grid_values() for p in params]
    size = math.prod(len(a) for a in axes)
    if size > MAX_GRID:
        raise CmmBtError(f"grid has {size:,} points (more than {MAX_GRID:,}); use --search random|tpe with --trials", key="--param")
    return [dict(zip((p.key for p in params), combo)) for combo in itertools.product(*axes)]


def random_points(params: list[Param], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` seeded points; without replacement when every key is discrete (at most the grid's size)."""
    rng = random.Random(seed)
    if all(p.discrete for p in params):
        grid = grid_points(params)
        rng.shuffle(grid)
        return grid[:n]
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(n * 20):
        point = {p.key: p.sample(rng) for p in params}
        if (c := canonical(point)) not in seen:
            seen.add(c)
            out.append(point)
            if len(out) == n:
                break
    return out


def corner_points(params: list[Param]) -> list[dict[str, Any]]:
    """Points that put every value (lists) and both ends (ranges) of every key in front of the
    validator, the other keys at their first value: what tpe will be asked to run is not known
    in advance, but every value it can pick lies in these."""
    def ends(p: Param) -> list[Any]:
        if p.kind == "choice":
            return list(p.choices)
        if p.kind == "int":
            return [int(p.low), int(p.high)]
        return [_round(p.low), _round(p.high)]

    base = {p.key: ends(p)[0] for p in params}
    points = [dict(base)]
    for p in params:
        for v in ends(p)[1:]:
            points.append({**base, p.key: v})
    return points
