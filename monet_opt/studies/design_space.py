"""Hardware design spaces: a base accelerator and the parameters that vary, as a YAML file.

    name: NAME                      (optional; default the file's stem)
    base: HARDWARE                  a built-in accelerator or a hardware YAML file (relative to the space)
    parameters:                     at least one; each takes one value per design point
      NAME:
        values: [v1, v2, ...]       a list of numbers, or
        range: {from: A, to: B, step: S}    A, A+S, ... up to B (inclusive), or
        range: {from: A, to: B, factor: F}  A, A*F, ... up to B (inclusive; F > 1), or
        choices: {OPTION: VALUE, ...}       named options (a categorical parameter: the dataflow)
        set: [PATH, ...]            (optional) the base's keys the value replaces
    replicate:                      (optional) core families whose size varies
      - cores: PATTERN              the family: the base's cores named like PATTERN (e.g. "tpu*")
        rows: N | PARAMETER         the family becomes rows x cols copies of its first member
        cols: N | PARAMETER
    constraints: [EXPR, ...]        (optional) every design point satisfies each, e.g.
                                    "k_lanes * c_lanes <= 4096"
    area: {...}                     (optional) the area proxy's coefficients (`area_proxy`)

A PATH is a dotted key path into the hardware YAML in which a list is indexed by a name pattern
in brackets, matched against each entry's `name` (shell-style: `*`, `?`): `cores[tpu*].pe_array.
unroll.K` is the K unrolling of every core whose name starts with "tpu", `memories[tpu*.sram].
capacity_bytes` the capacity of their memories, `dram.bandwidth_bits_per_cycle` the DRAM port.
Every path must reach an existing key of the base (a typo is an error, not a new key), and every
pattern must match at least one entry of the base; at a design point whose replication leaves no
entry for a pattern (the mesh links of a single core) that path sets nothing. An integer value
stays an integer.

A choice's VALUE is any YAML value (a number, a mapping such as `{K: k_lanes, C: c_lanes}`); in
it, a string that names a numeric parameter stands for that parameter's value at the point. So a
dataflow parameter sets `cores[tpu*].pe_array.unroll` to one of several unrollings whose lane
counts are themselves parameters. A parameter without `set` changes nothing by itself: a choice,
a replication or a constraint must name it.

Replication (the number of cores): the family's first member is the template; its copies are
named by the template's name without its trailing digits, then 0, 1, ... (`tpu0` ... `tpu7`).
A memory only the template uses is copied for each copy (named by replacing the template's name
in it: `tpu0.sram` -> `tpu5.sram`); a shared memory stays shared. The links among the family are
replaced by a rows x cols mesh (each copy linked to its right and lower neighbour) whose links are
copies of the base's first family-to-family link, named `PREFIX.A-B` (PREFIX: that link's name up
to its first dot); each point-to-point link between the template and a core outside the family is
copied for every copy (the template's name replaced in its name); buses (three or more endpoints)
list every copy where they listed the family. Copies not adjacent in the mesh exchange data over
a bus, as non-adjacent cores of any accelerator do. Replication happens before the `set` paths,
so `cores[tpu*]` reaches every copy.

Constraints are arithmetic over the parameter names (+ - * / // % **, comparisons, and, or, not,
parentheses, numbers, and strings to compare a choice with: `dataflow == "KC"`); nothing else is
evaluated.

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
from monet_opt.io import load_data, load_mapping
from monet_opt.model.hardware.model import LIBRARY_DIR, Accelerator, accelerator_from_dict, schema_error_message
from monet_opt.solving.genetic import pareto_front as genetic_pareto_front

_NUMBER = {"type": "number"}
SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["base", "parameters"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "base": {"type": "string", "minLength": 1},
        "parameters": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object", "additionalProperties": False,
            "oneOf": [{"required": ["values"]}, {"required": ["range"]}, {"required": ["choices"]}],
            "properties": {
                "values": {"type": "array", "minItems": 1, "items": _NUMBER},
                "choices": {"type": "object", "minProperties": 1},
                "range": {"type": "object", "additionalProperties": False, "required": ["from", "to"],
                          "oneOf": [{"required": ["step"]}, {"required": ["factor"]}],
                          "properties": {"from": _NUMBER, "to": _NUMBER, "step": {"type": "number", "exclusiveMinimum": 0},
                                         "factor": {"type": "number", "exclusiveMinimum": 1}}},
                "set": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            }}},
        "replicate": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["cores", "rows", "cols"],
            "properties": {"cores": {"type": "string", "minLength": 1},
                           "rows": {"type": ["integer", "string"], "minimum": 1},
                           "cols": {"type": ["integer", "string"], "minimum": 1}}}},
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


Value = float | int | str  # a choice parameter's values are its option names


@dataclass(frozen=True)
class Parameter:
    name: str
    values: tuple[Value, ...]
    paths: tuple[str, ...]
    choices: Mapping[str, Any] | None = None  # option name -> YAML value (module docstring)

    @property
    def is_choice(self) -> bool:
        return self.choices is not None


@dataclass(frozen=True)
class Replication:
    """A core family resized to rows x cols copies of its first member (module docstring)."""

    cores: str  # name pattern
    rows: int | str  # a number or a parameter name
    cols: int | str


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
    replications: tuple[Replication, ...] = ()

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
    numeric = {p.name for p in parameters if not p.is_choice}
    named: set[str] = set()
    for parameter in parameters:
        if parameter.is_choice:
            named |= _check_choices(parameter, numeric, f"{source}: parameters.{parameter.name}.choices")
    replications = tuple(_replication(source, i, spec, base, parameters)
                         for i, spec in enumerate(data.get("replicate", ())))
    named |= {n for r in replications for n in (r.rows, r.cols) if isinstance(n, str)}
    constraints = tuple(data.get("constraints", ()))
    for i, text in enumerate(constraints):
        named |= _check_expression(text, {p.name for p in parameters}, f"{source}: constraints[{i}]")
    for parameter in parameters:
        if not parameter.paths and parameter.name not in named:
            raise InputError(f"{source}: parameters.{parameter.name}: changes nothing (give set, or name it in a "
                             "choice, a replication or a constraint)")
    space = DesignSpace(data.get("name", path.stem), source, base, str(data["base"]), parameters, constraints,
                        AreaCoefficients(**data.get("area", {})), replications)
    point_accelerator(space, 0)  # a replication or a choice that breaks the base fails here, once
    return space


def _space_schema_message(error: Any) -> str:
    if error.validator == "oneOf" and "parameters" in list(error.absolute_path):
        where = ".".join(str(p) for p in error.absolute_path)
        if where.endswith(".range"):
            return f"{where}: give exactly one of step or factor"
        return f"{where}: give exactly one of values, range or choices"
    if error.validator == "minProperties":
        return "parameters: name at least one parameter"
    return schema_error_message(error)


def _parameter(source: str, name: str, spec: Mapping[str, Any], base: Mapping[str, Any]) -> Parameter:
    where = f"{source}: parameters.{name}"
    if not name.isidentifier():
        raise InputError(f"{where}: a parameter name must be an identifier (letters, digits, _)")
    if "choices" in spec:
        if any(not isinstance(option, str) or not option for option in spec["choices"]):
            raise InputError(f"{where}.choices: option names are strings")
        values: tuple[Value, ...] = tuple(spec["choices"])
    else:
        numbers = tuple(spec["values"]) if "values" in spec else _expand_range(spec["range"], f"{where}.range")
        values = tuple(int(v) if float(v).is_integer() and not isinstance(v, bool) else float(v) for v in numbers)
        if len(set(values)) != len(values):
            raise InputError(f"{where}.values: repeated value")
    for i, text in enumerate(spec.get("set", ())):
        if not list(_targets(base, text, f"{where}.set[{i}]")):
            raise InputError(f"{where}.set[{i}]: {text!r} reaches no key of the base")
    return Parameter(name, values, tuple(spec.get("set", ())), dict(spec["choices"]) if "choices" in spec else None)


def _check_choices(parameter: Parameter, numeric: set[str], where: str) -> set[str]:
    """The numeric parameters the choices name; InputError for a name that is a choice parameter."""
    named: set[str] = set()

    def visit(value: Any, at: str) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                visit(item, f"{at}.{key}")
        elif isinstance(value, list):
            for k, item in enumerate(value):
                visit(item, f"{at}[{k}]")
        elif isinstance(value, str) and value.isidentifier() and value in numeric:
            named.add(value)
        elif isinstance(value, str) and value == parameter.name:
            raise InputError(f"{at}: a choice cannot name its own parameter")

    assert parameter.choices is not None
    for option, value in parameter.choices.items():
        visit(value, f"{where}.{option}")
    return named


def _replication(source: str, i: int, spec: Mapping[str, Any], base: Mapping[str, Any],
                 parameters: Sequence[Parameter]) -> Replication:
    where = f"{source}: replicate[{i}]"
    family = [c["name"] for c in base["cores"] if fnmatch.fnmatchcase(c["name"], spec["cores"])]
    if not family:
        raise InputError(f"{where}.cores: no core of the base is named like {spec['cores']!r}")
    if not _stem(family[0]):
        raise InputError(f"{where}.cores: the template {family[0]!r} is all digits; its copies need a name stem")
    by_name = {p.name: p for p in parameters}
    for key in ("rows", "cols"):
        value = spec[key]
        if isinstance(value, str):
            parameter = by_name.get(value)
            if parameter is None:
                raise InputError(f"{where}.{key}: {value!r} is not a parameter (known: {', '.join(by_name)})")
            bad = [v for v in parameter.values if not isinstance(v, int) or v < 1]
            if bad:
                raise InputError(f"{where}.{key}: parameter {value!r} takes {bad[0]!r}; a mesh side is an integer >= 1")
    return Replication(spec["cores"], spec["rows"], spec["cols"])


def _stem(name: str) -> str:
    return name.rstrip("0123456789")


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


def _targets(data: Any, path: str, where: str, must_match: bool = True) -> Iterator[tuple[Any, str | int]]:
    """Every (container, key) that `path` reaches in `data` (module docstring); InputError for a
    key that does not exist, or a pattern that matches nothing when `must_match`."""
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
            if not matched and must_match:
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


def _check_expression(text: str, names: set[str], where: str) -> set[str]:
    """The parameters `text` names; InputError unless it is arithmetic over parameters and constants."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise InputError(f"{where}: {text!r} is not an expression ({exc.msg})") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names:
            raise InputError(f"{where}: {node.id!r} is not a parameter (known: {', '.join(sorted(names))})")
        allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.BoolOp, ast.Name, ast.Load, ast.And,
                   ast.Or, *_OPERATORS)
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str)) or \
                not isinstance(node, (*allowed, ast.Constant)):
            raise InputError(f"{where}: {text!r}: only arithmetic and comparisons of parameters, numbers and strings")
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


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
    """Whether the parameter values satisfy every constraint; InputError naming the constraint and
    the values where one cannot be evaluated (a division by zero, a string compared with a number)."""
    for i, text in enumerate(space.constraints):
        try:
            if not evaluate_expression(text, values):
                return False
        except (ArithmeticError, TypeError, ValueError) as exc:
            shown = ", ".join(f"{k}={v}" for k, v in values.items())
            raise InputError(f"{space.source}: constraints[{i}]: {text!r} cannot be evaluated at {shown} "
                             f"({exc.__class__.__name__}: {exc})") from None
    return True


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
    """The base accelerator with the point's values set, named NAME/INDEX: replications first,
    then every parameter's paths (module docstring)."""
    data = copy.deepcopy(dict(space.base))
    values = point_values(space, index)
    for replication in space.replications:
        rows, cols = (values[n] if isinstance(n, str) else n for n in (replication.rows, replication.cols))
        _replicate(data, replication.cores, int(rows), int(cols))
    for parameter in space.parameters:
        value = values[parameter.name]
        if parameter.choices is not None:
            value = _substitute(parameter.choices[str(value)], values)
        for path in parameter.paths:
            for container, key in _targets(data, path, f"{space.source}: parameters.{parameter.name}",
                                           must_match=not space.replications):
                container[key] = copy.deepcopy(value)
    data["name"] = f"{space.name}/{index}"
    return accelerator_from_dict(data, f"{space.source}: point {index}")


def _substitute(value: Any, values: Mapping[str, Value]) -> Any:
    """`value` with every string naming a numeric parameter replaced by its value at the point."""
    if isinstance(value, Mapping):
        return {key: _substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, values) for item in value]
    if isinstance(value, str) and value in values and not isinstance(values[value], str):
        return values[value]
    return value


def _replicate(data: dict[str, Any], pattern: str, rows: int, cols: int) -> None:
    """Resize the core family named like `pattern` in hardware data `data` to a rows x cols mesh of
    copies of its first member (module docstring), in place."""
    cores = data["cores"]
    family = [c["name"] for c in cores if fnmatch.fnmatchcase(c["name"], pattern)]
    template = next(c for c in cores if c["name"] == family[0])
    names = [f"{_stem(template['name'])}{k}" for k in range(rows * cols)]
    memory = template["memory"]
    private = all(c["memory"] != memory for c in cores if c["name"] != template["name"])

    def renamed(text: str, name: str) -> str:
        return text.replace(template["name"], name) if template["name"] in text else f"{text}.{name}"

    first = next(i for i, c in enumerate(cores) if c["name"] in family)
    family_memories = {c["memory"] for c in cores if c["name"] in family}
    shared = {c["memory"] for c in cores if c["name"] not in family}
    copies = [{**copy.deepcopy(template), "name": n, "memory": renamed(memory, n) if private else memory}
              for n in names]
    data["cores"] = [c for c in cores[:first] if c["name"] not in family] + copies + \
        [c for c in cores[first:] if c["name"] not in family]
    if private:
        memory_entry = next(m for m in data["memories"] if m["name"] == memory)
        kept = [m for m in data["memories"] if m["name"] not in family_memories - shared]
        data["memories"] = kept + [{**copy.deepcopy(memory_entry), "name": renamed(memory, n)} for n in names]
    links = data.get("links", [])
    mesh_template = next((link for link in links if len(link["endpoints"]) == 2
                          and all(e in family for e in link["endpoints"])), None)
    new_links: list[dict[str, Any]] = []
    for link in links:
        inside = [e for e in link["endpoints"] if e in family]
        if not inside:
            new_links.append(link)
        elif len(link["endpoints"]) > 2:
            at = link["endpoints"].index(inside[0])
            outside = [e for e in link["endpoints"] if e not in family]
            new_links.append({**link, "endpoints": outside[:at] + names + outside[at:]})
        elif len(inside) == 1 and inside[0] == template["name"]:
            new_links += [{**link, "name": renamed(link["name"], n),
                           "endpoints": [n if e == template["name"] else e for e in link["endpoints"]]}
                          for n in names]
    if mesh_template is not None:
        prefix = mesh_template["name"].split(".")[0]
        for r in range(rows):
            for c in range(cols):
                a = names[r * cols + c]
                for b in ([names[r * cols + c + 1]] if c + 1 < cols else []) + \
                        ([names[(r + 1) * cols + c]] if r + 1 < rows else []):
                    new_links.append({**mesh_template, "name": f"{prefix}.{a}-{b}", "endpoints": [a, b]})
    data["links"] = new_links


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
