"""Hardware design spaces: a base accelerator and the parameters that vary, as a YAML file.

    name: NAME                      (optional; default the file's stem)
    base: HARDWARE                  a built-in accelerator or a hardware YAML file (relative to the space)
    parameters:                     at least one; each takes one value per design point
      NAME:
        values: [v1, v2, ...]       a list of numbers, or
        range: {from: A, to: B, step: S}    A, A+S, ... up to B (inclusive), or
        range: {from: A, to: B, factor: F}  A, A*F, ... up to B (inclusive; F > 1)
        set: [PATH, ...]            the base's keys the value replaces (at least one)
    constraints: [EXPR, ...]        (optional) every design point satisfies each, e.g.
                                    "k_lanes * c_lanes <= 4096"
    area: {...}                     (optional) the area proxy's coefficients (`area_proxy`)

A PATH is a dotted key path into the hardware YAML in which a list is indexed by a name pattern
in brackets, matched against each entry's `name` (shell-style: `*`, `?`): `cores[tpu*].pe_array.
unroll.K` is the K unrolling of every core whose name starts with "tpu", `memories[tpu*.sram].
capacity_bytes` the capacity of their memories, `dram.bandwidth_bits_per_cycle` the DRAM port.
Every path must reach an existing key of the base (a typo is an error, not a new key), and every
pattern must match at least one entry. An integer value stays an integer.

Constraints are arithmetic over the parameter names (+ - * / // % **, comparisons, and, or, not,
parentheses, numbers); nothing else is evaluated.

A design point is one value per parameter, identified by its index in the product of the value
lists (mixed radix, the first parameter most significant): `point_values(space, index)`. Sampling
(`sample_points`) draws indices uniformly without replacement with Python's `random.Random(seed)`
and keeps those that satisfy the constraints, in the order drawn, so the same seed gives the same
points; `grid_points` enumerates every satisfying index in order. Each point's accelerator
(`point_accelerator`) is the base with the point's values set, validated like any hardware file.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import math
import operator
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monet_opt.errors import InputError
from monet_opt.hardware.model import LIBRARY_DIR, Accelerator, accelerator_from_dict, schema_error_message
from monet_opt.io import load_data, load_mapping
from monet_opt.solvers.genetic import pareto_front as genetic_pareto_front

_NUMBER = {"type": "number"}
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["base", "parameters"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "base": {"type": "string", "minLength": 1},
        "parameters": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "additionalProperties": False, "required": ["set"],
            "oneOf": [{"required": ["values"]}, {"required": ["range"]}],
            "properties": {
                "values": {"type": "array", "minItems": 1, "items": _NUMBER},
                "range": {"type": "object", "additionalProperties": False, "required": ["from", "to"],
                          "oneOf": [{"required": ["step"]}, {"required": ["factor"]}],
                          "properties": {"from": _NUMBER, "to": _NUMBER, "step": {"type": "number", "exclusiveMinimum": 0},
                                         "factor": {"type": "number", "exclusiveMinimum": 1}}},
                "set": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            }}},
        "constraints": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "area": {"type": "object", "additionalProperties": False, "properties": {
            "mm2_per_mac": {"type": "number", "minimum": 0},
            "mm2_per_vector_lane": {"type": "number", "minimum": 0},
            "mm2_per_mib_sram": {"type": "number", "minimum": 0},
            "mm2_per_kib_registers": {"type": "number", "minimum": 0}}},
    },
}
MAX_RANGE_VALUES = 10_000
"""Most values a range may expand to."""


@dataclass(frozen=True)
class Parameter:
    name: str
    values: tuple[float | int, ...]
    paths: tuple[str, ...]


@dataclass(frozen=True)
class AreaCoefficients:
    """The area proxy's coefficients (`area_proxy`). Defaults: relative weights, not a process
    node's figures: one MAC unit 1, one vector lane 1, one MiB of SRAM 64, one KiB of register
    file 0.5 (so a 32x32 array with 2 MiB of SRAM is about 1,150). A space calibrates them with
    `area:` (e.g. in mm^2 for its technology)."""

    mm2_per_mac: float = 1.0
    mm2_per_vector_lane: float = 1.0
    mm2_per_mib_sram: float = 64.0
    mm2_per_kib_registers: float = 0.5


@dataclass(frozen=True)
class DesignSpace:
    name: str
    source: str
    base: Mapping[str, Any]  # the base accelerator's YAML data
    base_name: str
    parameters: tuple[Parameter, ...]
    constraints: tuple[str, ...]
    area: AreaCoefficients

    @property
    def size(self) -> int:
        """Points in the product of the value lists (before the constraints)."""
        return math.prod(len(p.values) for p in self.parameters)


def load_space(path: str | Path) -> DesignSpace:
    """The design space in `path`, checked (module docstring); InputError naming the file and key."""
    path = Path(path)
    source = str(path)
    data = load_mapping(path, SCHEMA, _space_schema_message)
    base_path = Path(data["base"])
    if not base_path.suffix and (LIBRARY_DIR / f"{data['base']}.yaml").is_file():
        base_path = LIBRARY_DIR / f"{data['base']}.yaml"
    elif not base_path.is_absolute():
        base_path = path.parent / base_path
    if not base_path.is_file():
        raise InputError(f"{source}: base: unknown hardware {data['base']!r} (a built-in name or a YAML file)")
    base = load_data(base_path)
    accelerator_from_dict(base, str(base_path))  # the base must be valid on its own
    parameters = tuple(_parameter(source, name, spec, base) for name, spec in data["parameters"].items())
    constraints = tuple(data.get("constraints", ()))
    for i, text in enumerate(constraints):
        _check_expression(text, {p.name for p in parameters}, f"{source}: constraints[{i}]")
    space = DesignSpace(data.get("name", path.stem), source, base, str(data["base"]), parameters, constraints,
                        AreaCoefficients(**data.get("area", {})))
    return space


def _space_schema_message(error: Any) -> str:
    if error.validator == "oneOf" and "parameters" in list(error.absolute_path):
        where = ".".join(str(p) for p in error.absolute_path)
        if where.endswith(".range"):
            return f"{where}: give exactly one of step or factor"
        return f"{where}: give exactly one of values or range"
    if error.validator == "minProperties":
        return "parameters: name at least one parameter"
    return schema_error_message(error)


def _parameter(source: str, name: str, spec: Mapping[str, Any], base: Mapping[str, Any]) -> Parameter:
    where = f"{source}: parameters.{name}"
    if not name.isidentifier():
        raise InputError(f"{where}: a parameter name must be an identifier (letters, digits, _)")
    if "values" in spec:
        values = tuple(spec["values"])
    else:
        values = _expand_range(spec["range"], f"{where}.range")
    values = tuple(int(v) if float(v).is_integer() and not isinstance(v, bool) else float(v) for v in values)
    if len(set(values)) != len(values):
        raise InputError(f"{where}.values: repeated value")
    for i, text in enumerate(spec["set"]):
        if not list(_targets(base, text, f"{where}.set[{i}]")):
            raise InputError(f"{where}.set[{i}]: {text!r} reaches no key of the base")
    return Parameter(name, values, tuple(spec["set"]))


def _expand_range(spec: Mapping[str, float], where: str) -> tuple[float, ...]:
    start, stop = spec["from"], spec["to"]
    if stop < start:
        raise InputError(f"{where}: to ({stop}) is below from ({start})")
    if "factor" in spec and start <= 0:
        raise InputError(f"{where}: from must be > 0 with a factor, got {start}")
    values: list[float] = []
    value = start
    while value <= stop * (1 + 1e-12):
        values.append(value)
        if len(values) > MAX_RANGE_VALUES:
            raise InputError(f"{where}: more than {MAX_RANGE_VALUES} values")
        value = start + len(values) * spec["step"] if "step" in spec else value * spec["factor"]
    return tuple(values)


def _targets(data: Any, path: str, where: str) -> Iterator[tuple[Any, str | int]]:
    """Every (container, key) that `path` reaches in `data` (module docstring); InputError for a
    key that does not exist or a pattern that matches nothing."""
    nodes: list[Any] = [data]
    parts = path.split(".")
    # a dot inside brackets belongs to the pattern: rejoin those pieces
    merged: list[str] = []
    for part in parts:
        if merged and merged[-1].count("[") > merged[-1].count("]"):
            merged[-1] += "." + part
        else:
            merged.append(part)
    for depth, part in enumerate(merged):
        key, _, pattern = part.partition("[")
        last = depth == len(merged) - 1
        next_nodes: list[Any] = []
        for node in nodes:
            if not isinstance(node, Mapping) or key not in node:
                raise InputError(f"{where}: {'.'.join(merged[:depth + 1])!r}: no key {key!r} in the base")
            if not pattern:
                if last:
                    yield node, key
                next_nodes.append(node[key])
                continue
            if not pattern.endswith("]") or not isinstance(node[key], list):
                raise InputError(f"{where}: {part!r}: brackets select entries of a list by name: key[pattern]")
            matched = [i for i, entry in enumerate(node[key])
                       if isinstance(entry, Mapping) and fnmatch.fnmatchcase(str(entry.get("name", "")), pattern[:-1])]
            if not matched:
                raise InputError(f"{where}: {part!r}: no entry of {key} is named like {pattern[:-1]!r}")
            if last:
                raise InputError(f"{where}: {path!r}: must end at a key, not at list entries")
            next_nodes += [node[key][i] for i in matched]
        nodes = next_nodes


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
              ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
              ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
              ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.USub: operator.neg, ast.UAdd: operator.pos,
              ast.Not: operator.not_}


def _check_expression(text: str, names: set[str], where: str) -> None:
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise InputError(f"{where}: {text!r} is not an expression ({exc.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names:
            raise InputError(f"{where}: {node.id!r} is not a parameter (known: {', '.join(sorted(names))})")
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Name, ast.Load, ast.And,
                   ast.Or, *_OPERATORS)
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float)) or \
                not isinstance(node, (*allowed, ast.Constant)):
            raise InputError(f"{where}: {text!r}: only arithmetic and comparisons of parameters and numbers")


def evaluate_expression(text: str, values: Mapping[str, float]) -> Any:
    """The value of a checked constraint (`_check_expression`) for the parameter values."""
    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            return _OPERATORS[type(node.op)](value(node.operand))
        if isinstance(node, ast.BinOp):
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.BoolOp):
            results = (value(v) for v in node.values)
            return all(results) if isinstance(node.op, ast.And) else any(results)
        assert isinstance(node, ast.Compare)
        left = value(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = value(right_node)
            if not _OPERATORS[type(op)](left, right):
                return False
            left = right
        return True
    return value(ast.parse(text, mode="eval"))


def point_values(space: DesignSpace, index: int) -> dict[str, float | int]:
    """The parameter values of the point with this index (module docstring)."""
    if not 0 <= index < space.size:
        raise ValueError(f"point index {index} outside 0..{space.size - 1}")
    values: dict[str, float | int] = {}
    for parameter in reversed(space.parameters):
        index, digit = divmod(index, len(parameter.values))
        values[parameter.name] = parameter.values[digit]
    return {p.name: values[p.name] for p in space.parameters}


def satisfies(space: DesignSpace, values: Mapping[str, float]) -> bool:
    return all(evaluate_expression(text, values) for text in space.constraints)


def grid_points(space: DesignSpace) -> list[int]:
    """Every point index that satisfies the constraints, in order."""
    return [i for i in range(space.size) if satisfies(space, point_values(space, i))]


def sample_points(space: DesignSpace, samples: int, seed: int) -> list[int]:
    """Up to `samples` distinct point indices drawn uniformly (module docstring); fewer only when
    fewer points satisfy the constraints."""
    rng = random.Random(seed)
    if space.size <= 4 * samples:  # small space: a shuffled grid is exact and as fast
        order = list(range(space.size))
        rng.shuffle(order)
        return [i for i in order if satisfies(space, point_values(space, i))][:samples]
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < samples and len(seen) < space.size:
        index = rng.randrange(space.size)
        if index in seen:
            continue
        seen.add(index)
        if satisfies(space, point_values(space, index)):
            chosen.append(index)
    return chosen


def point_accelerator(space: DesignSpace, index: int) -> Accelerator:
    """The base accelerator with the point's values set, named NAME/INDEX."""
    data = copy.deepcopy(dict(space.base))
    for parameter, value in zip(space.parameters, point_values(space, index).values(), strict=True):
        for path in parameter.paths:
            for container, key in _targets(data, path, f"{space.source}: parameters.{parameter.name}"):
                container[key] = value
    data["name"] = f"{space.name}/{index}"
    return accelerator_from_dict(data, f"{space.source}: point {index}")


def area_proxy(hw: Accelerator, area: AreaCoefficients) -> float:
    """area = mm2_per_mac x (PEs of every array) + mm2_per_vector_lane x (vector lanes)
    + mm2_per_mib_sram x (local memory MiB) + mm2_per_kib_registers x (register KiB per PE x PEs).
    DRAM and links are off the die or negligible and not counted."""
    macs = sum(math.prod(core.unroll.values()) for core in hw.cores if core.unroll)
    lanes = sum(core.vector_lanes for core in hw.cores)
    sram_mib = sum(m.capacity_bytes for m in hw.memories.values()) / 2**20
    register_kib = sum(math.prod(core.unroll.values()) * sum(r.size_bits for r in core.registers.values()) / 8 / 1024
                       for core in hw.cores if core.unroll)
    return (area.mm2_per_mac * macs + area.mm2_per_vector_lane * lanes + area.mm2_per_mib_sram * sram_mib
            + area.mm2_per_kib_registers * register_kib)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated in both coordinates (both minimised), sorted by the
    second coordinate; of equal points the first is kept."""
    return [i for _, _, i in genetic_pareto_front([(x, y, i) for i, (x, y) in enumerate(points)])]
