"""Accelerator description: cores, memories, DRAM and links, loaded from YAML and validated.

YAML layout (units are in the key names; every key below is required unless marked optional):

    name: str
    description: str                      (optional)
    source: str                           (optional) where the numbers come from
    clock_hz: number > 0
    memories:                             on-chip memories; several cores may share one
      - name: str
        capacity_bytes: int > 0
        bandwidth_bits_per_cycle: int > 0  one port shared by reads and writes, or both of:
        read_bandwidth_bits_per_cycle: int > 0    a read port and
        write_bandwidth_bits_per_cycle: int > 0   a separate write port
        read_energy_pj_per_bit: number >= 0
        write_energy_pj_per_bit: number >= 0
    cores:
      - name: str
        memory: name of a memory           the core's local (or shared) memory
        op_kinds: [group or kind, ...]     groups: mac, pool, vector, optimizer (see OP_KIND_GROUPS)
        double_buffered: bool              (optional, default true) false: an op's first tile of
                                           operands loads from DRAM before its compute starts
        pe_array:                          either a PE array ...
          unroll: {DIM: lanes, ...}        dataflow: loop dims unrolled spatially (B, K, C, OY, OX, FY, FX)
          mac_energy_pj: ENERGY            one MAC
          registers:                       (optional) per-PE register files, any of:
            input | weight | output:       the port of the op's first input, second input, output
              size_bits: int > 0           per PE (output: per output lane after the array's reduction)
              read_energy_pj_per_bit: number >= 0
              write_energy_pj_per_bit: number >= 0
        vector_unit:                       ... or a vector unit
          lanes: int > 0
          op_energy_pj: ENERGY             one vector operation
    dram:
      capacity_bytes: int > 0
      bandwidth_bits_per_cycle: int > 0
      energy_pj_per_bit: number >= 0      reads and writes alike, or both of:
      read_energy_pj_per_bit: number >= 0
      write_energy_pj_per_bit: number >= 0
    links:                                 point-to-point links (2 endpoints) or buses (more)
      - name: str
        endpoints: [core name or "dram", ...]
        bandwidth_bits_per_cycle: int > 0
        energy_pj_per_bit: number >= 0

ENERGY is a number (every operand type alike) or a mapping from element type to pJ ({int8: 0.04,
fp32: 0.9}); a type not listed is priced from the listed type nearest in width, scaled by
(bits / listed bits)^2 for a MAC (a multiplier grows with the square of its operand width:
Horowitz, ISSCC 2014, 8-bit vs 32-bit integer multiply 0.2 vs 3.1 pJ) and by bits / listed bits
for a vector operation (adders and comparators grow linearly).

Matmul-like ops are mapped onto the conv dimension names for the unrolling: N -> K (output
channels), K -> C (reduction), M -> OX (rows), B -> B.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monet_opt.errors import InputError
from monet_opt.io import check_schema, load_data
from monet_opt.model.workload.ir import MAC_KINDS, DType, OpKind

DRAM = "dram"

POOL_KINDS = frozenset({OpKind.MAXPOOL, OpKind.AVGPOOL, OpKind.MAXPOOL_BACKWARD, OpKind.AVGPOOL_BACKWARD})
OPTIMIZER_KINDS = frozenset({OpKind.SGD_UPDATE, OpKind.MOMENTUM_UPDATE, OpKind.ADAM_UPDATE, OpKind.ADAMW_UPDATE})
OP_KIND_GROUPS: Mapping[str, frozenset[OpKind]] = {
    "mac": MAC_KINDS,
    "pool": POOL_KINDS,
    "optimizer": OPTIMIZER_KINDS,
    "vector": frozenset(OpKind) - MAC_KINDS - POOL_KINDS - OPTIMIZER_KINDS,
}
"""Named groups of op kinds usable in a core's `op_kinds`."""

UNROLL_DIMS = ("B", "K", "C", "OY", "OX", "FY", "FX")


@dataclass(frozen=True)
class Memory:
    """An on-chip memory with one port shared by reads and writes (`bandwidth_bits_per_cycle`), or
    a read port and a write port (`read_bandwidth_bits_per_cycle`, `write_bandwidth_bits_per_cycle`;
    `bandwidth_bits_per_cycle` is then 0)."""

    name: str
    capacity_bytes: int
    bandwidth_bits_per_cycle: int
    read_energy_pj_per_bit: float
    write_energy_pj_per_bit: float
    read_bandwidth_bits_per_cycle: int = 0
    write_bandwidth_bits_per_cycle: int = 0

    def transfer_cycles(self, read_bits: int, write_bits: int) -> int:
        """Cycles to read and write that many bits: ceil((read + write) / bandwidth) over a shared
        port; max(ceil(read / read bandwidth), ceil(write / write bandwidth)) over separate ports,
        which work at the same time."""
        if self.bandwidth_bits_per_cycle:
            return math.ceil((read_bits + write_bits) / self.bandwidth_bits_per_cycle)
        return max(math.ceil(read_bits / self.read_bandwidth_bits_per_cycle),
                   math.ceil(write_bits / self.write_bandwidth_bits_per_cycle))


@dataclass(frozen=True)
class WidthEnergy:
    """Energy of one operation by operand type (module docstring, ENERGY): `flat_pj` for every type
    when `by_dtype` is empty; else the listed energy, or the nearest listed width's energy scaled
    by (bits / listed bits) ** `exponent`."""

    flat_pj: float
    by_dtype: tuple[tuple[DType, float], ...] = ()
    exponent: int = 1

    def pj(self, dtype: DType) -> float:
        if not self.by_dtype:
            return self.flat_pj
        listed = dict(self.by_dtype)
        if dtype in listed:
            return listed[dtype]
        nearest = min(listed, key=lambda d: (abs(d.bits - dtype.bits), -d.bits, d.value))
        return listed[nearest] * (dtype.bits / nearest.bits) ** self.exponent

    def to_yaml(self) -> float | dict[str, float]:
        return {d.value: e for d, e in self.by_dtype} if self.by_dtype else self.flat_pj

    def __str__(self) -> str:
        return ", ".join(f"{d.value} {e:g}" for d, e in self.by_dtype) if self.by_dtype else f"{self.flat_pj:g}"


@dataclass(frozen=True)
class Register:
    """A register file of a PE array's operand port: `size_bits` per PE (per output lane for the
    output port), read and written at its own per-bit energies."""

    size_bits: int
    read_energy_pj_per_bit: float
    write_energy_pj_per_bit: float


REGISTER_PORTS = ("input", "weight", "output")
"""Register ports of a PE array: the op's first input, second input and output (for the backward
ops the same positions: conv_dx reads (dY, W), conv_dw reads (X, dY) and writes dW)."""


@dataclass(frozen=True)
class Core:
    """A compute core: a PE array (`unroll` non-empty) or a vector unit (`vector_lanes` > 0)."""

    name: str
    memory: str
    op_kinds: frozenset[OpKind]
    unroll: Mapping[str, int]
    mac_energy: WidthEnergy
    vector_lanes: int
    vector_op_energy: WidthEnergy
    registers: Mapping[str, Register] = field(default_factory=dict)
    double_buffered: bool = True

    @property
    def is_pe_array(self) -> bool:
        return bool(self.unroll)

    @property
    def lanes(self) -> int:
        """Parallel MACs (PE array) or operations (vector unit) per cycle."""
        return math.prod(self.unroll.values()) if self.unroll else self.vector_lanes

    def can_run(self, kind: OpKind) -> bool:
        return kind in self.op_kinds


@dataclass(frozen=True)
class Dram:
    capacity_bytes: int
    bandwidth_bits_per_cycle: int
    read_energy_pj_per_bit: float
    write_energy_pj_per_bit: float


@dataclass(frozen=True)
class Link:
    name: str
    endpoints: tuple[str, ...]
    bandwidth_bits_per_cycle: int
    energy_pj_per_bit: float


@dataclass(frozen=True)
class Accelerator:
    name: str
    description: str
    source: str
    clock_hz: float
    memories: Mapping[str, Memory]
    cores: tuple[Core, ...]
    dram: Dram
    links: tuple[Link, ...]

    def core(self, name: str) -> Core:
        for c in self.cores:
            if c.name == name:
                return c
        raise InputError(f"accelerator {self.name!r} has no core {name!r}")

    def link_between(self, a: str, b: str) -> Link:
        """The link joining `a` and `b` (core names or "dram"): a point-to-point link if there is one,
        else the fastest bus that reaches both. Loading guarantees every core reaches DRAM."""
        candidates = [link for link in self.links if a in link.endpoints and b in link.endpoints]
        if not candidates:
            raise InputError(f"accelerator {self.name!r}: no link joins {a!r} and {b!r}")
        return min(candidates, key=lambda link: (len(link.endpoints), -link.bandwidth_bits_per_cycle, link.name))

    def usable_bytes(self, memory: str, limits_bytes: Mapping[str, int] | None = None) -> int:
        """The memory's capacity, or its budget in `limits_bytes` when that is smaller."""
        capacity = self.memories[memory].capacity_bytes
        return min(capacity, (limits_bytes or {}).get(memory, capacity))

    def working_capacity_bytes(self, core: str, limits_bytes: Mapping[str, int] | None = None) -> int:
        """Bytes of its memory a core may use for a working set: the usable bytes (`usable_bytes`)
        divided evenly among the cores that share the memory (so concurrent working sets never
        overflow it)."""
        memory = self.core(core).memory
        sharers = sum(1 for c in self.cores if c.memory == memory)
        return self.usable_bytes(memory, limits_bytes) // sharers

    def dram_bandwidth_bits_per_cycle(self, core: str) -> int:
        """DRAM <-> core bandwidth: the slower of the DRAM port and the link that carries the traffic."""
        return min(self.dram.bandwidth_bits_per_cycle, self.link_between(DRAM, core).bandwidth_bits_per_cycle)


_POSITIVE_INT = {"type": "integer", "exclusiveMinimum": 0}
_POSITIVE_NUMBER = {"type": "number", "exclusiveMinimum": 0}
_ENERGY = {"type": "number", "minimum": 0}
_WIDTH_ENERGY = {"oneOf": [_ENERGY, {"type": "object", "minProperties": 1, "additionalProperties": False,
                                     "properties": {d.value: _ENERGY for d in DType}}]}
_NAME = {"type": "string", "minLength": 1}


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [k for k in properties if k not in optional],
        "additionalProperties": False,
    }


SCHEMA = _object(
    {
        "name": _NAME,
        "description": {"type": "string"},
        "source": {"type": "string"},
        "clock_hz": _POSITIVE_NUMBER,
        "memories": {"type": "array", "minItems": 1, "items": _object({
            "name": _NAME,
            "capacity_bytes": _POSITIVE_INT,
            "bandwidth_bits_per_cycle": _POSITIVE_INT,
            "read_bandwidth_bits_per_cycle": _POSITIVE_INT,
            "write_bandwidth_bits_per_cycle": _POSITIVE_INT,
            "read_energy_pj_per_bit": _ENERGY,
            "write_energy_pj_per_bit": _ENERGY,
        }, optional=("bandwidth_bits_per_cycle", "read_bandwidth_bits_per_cycle", "write_bandwidth_bits_per_cycle"))},
        "cores": {"type": "array", "minItems": 1, "items": _object({
            "name": _NAME,
            "memory": _NAME,
            "op_kinds": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "double_buffered": {"type": "boolean"},
            "pe_array": _object({
                "unroll": {"type": "object", "minProperties": 1, "additionalProperties": False,
                           "properties": {d: _POSITIVE_INT for d in UNROLL_DIMS}},
                "mac_energy_pj": _WIDTH_ENERGY,
                "registers": {"type": "object", "additionalProperties": False, "properties": {
                    port: _object({"size_bits": _POSITIVE_INT, "read_energy_pj_per_bit": _ENERGY,
                                   "write_energy_pj_per_bit": _ENERGY}) for port in REGISTER_PORTS}},
            }, optional=("registers",)),
            "vector_unit": _object({"lanes": _POSITIVE_INT, "op_energy_pj": _WIDTH_ENERGY}),
        }, optional=("pe_array", "vector_unit", "double_buffered"))},
        "dram": _object({
            "capacity_bytes": _POSITIVE_INT,
            "bandwidth_bits_per_cycle": _POSITIVE_INT,
            "energy_pj_per_bit": _ENERGY,
            "read_energy_pj_per_bit": _ENERGY,
            "write_energy_pj_per_bit": _ENERGY,
        }, optional=("energy_pj_per_bit", "read_energy_pj_per_bit", "write_energy_pj_per_bit")),
        "links": {"type": "array", "items": _object({
            "name": _NAME,
            "endpoints": {"type": "array", "minItems": 2, "items": {"type": "string"}},
            "bandwidth_bits_per_cycle": _POSITIVE_INT,
            "energy_pj_per_bit": _ENERGY,
        })},
    },
    optional=("description", "source"),
)


def schema_error_message(error: Any) -> str:
    path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path).replace(".[", "[")
    where = path or "top level"
    if error.validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - allowed)
        key = f"{path}.{extra[0]}" if path else extra[0]
        return f"{key}: unknown key (allowed: {', '.join(sorted(allowed))})"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        key = f"{path}.{missing[0]}" if path else missing[0]
        return f"{key}: missing key"
    if error.validator == "type":
        return f"{where}: expected {error.validator_value}, got {error.instance!r}"
    if error.validator == "oneOf":  # only energies by width use it
        return f"{where}: expected a number >= 0 or a mapping from element type to number, got {error.instance!r}"
    if error.validator in ("exclusiveMinimum", "minimum"):
        bound = ">" if error.validator == "exclusiveMinimum" else ">="
        return f"{where}: must be {bound} {error.validator_value}, got {error.instance!r}"
    return f"{where}: {error.message}"


def accelerator_from_dict(data: Any, source: str) -> Accelerator:
    """Validate `data` (parsed YAML) and build the Accelerator; InputError naming `source` and the key path."""
    check_schema(data, SCHEMA, source, schema_error_message)

    def fail(path: str, problem: str) -> InputError:
        return InputError(f"{source}: {path}: {problem}")

    memories: dict[str, Memory] = {}
    for i, m in enumerate(data["memories"]):
        if m["name"] in memories or m["name"] == DRAM:
            raise fail(f"memories[{i}].name", f"duplicate or reserved name {m['name']!r}")
        _one_form(m, f"memories[{i}]", "bandwidth_bits_per_cycle",
                  ("read_bandwidth_bits_per_cycle", "write_bandwidth_bits_per_cycle"), fail)
        memories[m["name"]] = Memory(
            m["name"], m["capacity_bytes"], m.get("bandwidth_bits_per_cycle", 0), float(m["read_energy_pj_per_bit"]),
            float(m["write_energy_pj_per_bit"]), m.get("read_bandwidth_bits_per_cycle", 0),
            m.get("write_bandwidth_bits_per_cycle", 0))
    cores: list[Core] = []
    for i, c in enumerate(data["cores"]):
        path = f"cores[{i}]"
        if c["name"] in {x.name for x in cores} or c["name"] == DRAM:
            raise fail(f"{path}.name", f"duplicate or reserved name {c['name']!r}")
        if c["memory"] not in memories:
            raise fail(f"{path}.memory", f"unknown memory {c['memory']!r} (known: {', '.join(memories)})")
        if ("pe_array" in c) == ("vector_unit" in c):
            raise fail(path, "a core has exactly one of pe_array or vector_unit")
        kinds: set[OpKind] = set()
        for j, k in enumerate(c["op_kinds"]):
            if k in OP_KIND_GROUPS:
                kinds |= OP_KIND_GROUPS[k]
            elif k in {kind.value for kind in OpKind}:
                kinds.add(OpKind(k))
            else:
                raise fail(f"{path}.op_kinds[{j}]", f"unknown op kind or group {k!r} (groups: {', '.join(OP_KIND_GROUPS)})")
        pe = c.get("pe_array")
        if pe is not None and not kinds <= MAC_KINDS:
            raise fail(f"{path}.op_kinds", "a pe_array core runs only mac kinds (conv, conv_dx, conv_dw, matmul)")
        vec = c.get("vector_unit")
        cores.append(Core(
            name=c["name"], memory=c["memory"], op_kinds=frozenset(kinds),
            unroll=dict(pe["unroll"]) if pe else {},
            mac_energy=_width_energy(pe["mac_energy_pj"], 2) if pe else WidthEnergy(0.0),
            vector_lanes=int(vec["lanes"]) if vec else 0,
            vector_op_energy=_width_energy(vec["op_energy_pj"], 1) if vec else WidthEnergy(0.0),
            registers={port: Register(r["size_bits"], float(r["read_energy_pj_per_bit"]),
                                      float(r["write_energy_pj_per_bit"]))
                       for port, r in (pe.get("registers", {}) if pe else {}).items()},
            double_buffered=bool(c.get("double_buffered", True)),
        ))
    names = {c.name for c in cores} | {DRAM}
    links: list[Link] = []
    for i, link in enumerate(data["links"]):
        for j, e in enumerate(link["endpoints"]):
            if e not in names:
                raise fail(f"links[{i}].endpoints[{j}]", f"unknown endpoint {e!r} (cores or 'dram')")
        if link["name"] in {x.name for x in links}:
            raise fail(f"links[{i}].name", f"duplicate name {link['name']!r}")
        links.append(Link(link["name"], tuple(link["endpoints"]), link["bandwidth_bits_per_cycle"],
                          float(link["energy_pj_per_bit"])))
    for i, core in enumerate(cores):
        if not any(DRAM in link.endpoints and core.name in link.endpoints for link in links):
            raise fail(f"cores[{i}]", f"core {core.name!r} has no link to dram")
    return Accelerator(
        name=data["name"], description=data.get("description", ""), source=data.get("source", ""),
        clock_hz=float(data["clock_hz"]), memories=memories, cores=tuple(cores), dram=_dram(data["dram"], fail),
        links=tuple(links),
    )


def _width_energy(value: float | Mapping[str, float], exponent: int) -> WidthEnergy:
    if isinstance(value, Mapping):
        return WidthEnergy(0.0, tuple((DType(k), float(v)) for k, v in value.items()), exponent)
    return WidthEnergy(float(value), (), exponent)


def _one_form(entry: Mapping[str, Any], path: str, shorthand: str, pair: tuple[str, str],
              fail: Callable[[str, str], InputError]) -> None:
    """Check that `entry` gives either `shorthand` or both keys of `pair`, not both forms."""
    given = [k for k in pair if k in entry]
    if shorthand in entry and given:
        raise fail(f"{path}.{given[0]}", f"give {shorthand} or {' and '.join(pair)}, not both")
    if shorthand not in entry and len(given) < 2:
        missing = next(k for k in pair if k not in entry)
        raise fail(f"{path}.{missing if given else shorthand}", "missing key")


def _dram(entry: Mapping[str, Any], fail: Callable[[str, str], InputError]) -> Dram:
    """DRAM from `energy_pj_per_bit` (reads and writes alike) or read and write energies."""
    _one_form(entry, "dram", "energy_pj_per_bit", ("read_energy_pj_per_bit", "write_energy_pj_per_bit"), fail)
    read = entry.get("read_energy_pj_per_bit", entry.get("energy_pj_per_bit"))
    write = entry.get("write_energy_pj_per_bit", entry.get("energy_pj_per_bit"))
    return Dram(entry["capacity_bytes"], entry["bandwidth_bits_per_cycle"], float(read), float(write))


LIBRARY_DIR = Path(__file__).parent / "library"


def builtin_hardware() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in LIBRARY_DIR.glob("*.yaml")))


def load_accelerator(name_or_path: str | Path) -> Accelerator:
    """A built-in accelerator by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and (LIBRARY_DIR / f"{name_or_path}.yaml").is_file():
        path = LIBRARY_DIR / f"{name_or_path}.yaml"
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a hardware file")
    if not path.is_file():
        raise InputError(f"unknown hardware {str(name_or_path)!r}; built-in: {', '.join(builtin_hardware())}; or a YAML file")
    return accelerator_from_dict(load_data(path), str(path))
