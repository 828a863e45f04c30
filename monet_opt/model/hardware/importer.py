"""Hardware from the field: ZigZag core descriptions and Stream multi-core accelerators, translated
into the project's schema (`monet hardware import`).

The formats (KULeuven-MICAS/zigzag `zigzag/inputs/model/hardware/*.yaml`, KULeuven-MICAS/stream
`stream/inputs/examples/model/hardware/*.yaml`): a core lists its memory levels from the innermost
(registers) to the outermost, each with `size` in bits, `r_cost` / `w_cost` in pJ per access, ports
with `bandwidth_max` in bits per cycle and the `operands` it serves (I1, I2 inputs, O output), and
an `operational_array` (`dimensions`, `sizes`, `unit_energy` in pJ per operation). A Stream
accelerator names its cores by id (core files relative to it), the `offchip_core_id` that fronts
DRAM, and `core_connectivity` (point-to-point `link`s and `bus`es with a bandwidth in bits per
cycle, `unit_energy_cost` in pJ per bit).

The translation, and what it cannot keep (each said in `Imported.notes`):
- A core's local memory is its largest on-chip level: capacity size / 8 bytes; bandwidth the sum of
  its ports' `bandwidth_max`, one shared port when any port is read_write, else separate read and
  write ports; read and write energy per bit `r_cost` and `w_cost` over the widest port that reads
  (writes): an access moves that many bits. A smaller on-chip level that serves one operand
  becomes that operand's register file (I1: input, I2: weight, O: output; size and energies per bit
  as above, one per PE); other smaller levels (shared buffers) are not represented.
- A PE array's unit_energy is taken as the energy of an int8 MAC (ZigZag's workloads are 8-bit;
  other widths scale by the schema's rule), and its core is not double-buffered (ZigZag's latency
  includes loading the first operands before computing).
- DRAM is the outermost level of a ZigZag core (its off-chip level) or the memory of Stream's
  off-chip core: capacity, port bandwidth, read and write energies per bit.
- A core whose array has a MAC-type operator (no `operator_types`, or any of Conv, Gemm, MatMul)
  becomes a PE array: ZigZag's spatial mapping is a separate file, so the loop dimension of each
  array dimension comes from `unroll` (default: D1=K, D2=C, D3=OX, ZigZag's tpu_like mapping).
  Other cores become vector units with lanes = the product of the sizes, pooling ones running
  pooling ops and the rest vector and optimizer ops.
- ZigZag and Stream count cycles only: a 1 GHz clock is assumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monet_opt.errors import InputError
from monet_opt.io import load_data
from monet_opt.model.hardware.model import DRAM, UNROLL_DIMS, accelerator_from_dict

DEFAULT_UNROLL = {"D1": "K", "D2": "C", "D3": "OX"}
"""Loop dimension of each array dimension when the user gives none (ZigZag's tpu_like mapping)."""
MAC_OPERATORS = {"Conv", "Gemm", "MatMul", "ConvTranspose"}
POOL_OPERATORS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"}
CLOCK_HZ = 1.0e9
REGISTER_OF_OPERAND = {"I1": "input", "I2": "weight", "O": "output"}
"""Register port of each ZigZag memory operand (ZigZag's mappings link I -> I1, W -> I2, O -> O)."""


@dataclass(frozen=True)
class Imported:
    """The project's hardware document (validated) and what the translation could not represent."""

    document: dict[str, Any]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _Level:
    """A memory level: its ports' bandwidth, shared (read_write ports) or separate (read and write
    ports), and its energies per bit."""

    name: str
    size_bits: int
    read_pj_per_bit: float
    write_pj_per_bit: float
    shared_bits_per_cycle: int  # 0: separate read and write ports
    read_bits_per_cycle: int
    write_bits_per_cycle: int
    operands: tuple[str, ...] = ()
    served_dimensions: tuple[str, ...] = ()

    def ports(self) -> dict[str, int]:
        """The schema's bandwidth keys of this level."""
        if self.shared_bits_per_cycle:
            return {"bandwidth_bits_per_cycle": self.shared_bits_per_cycle}
        return {"read_bandwidth_bits_per_cycle": self.read_bits_per_cycle,
                "write_bandwidth_bits_per_cycle": self.write_bits_per_cycle}


def _key(data: Any, key: str, source: str, path: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise InputError(f"{source}: {path + '.' if path else ''}{key}: missing key")
    return data[key]


def _number(data: Any, key: str, source: str, path: str, positive: bool = False) -> float:
    value = _key(data, key, source, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (positive and value == 0):
        raise InputError(f"{source}: {path}.{key}: expected a {'positive' if positive else 'non-negative'} number, "
                         f"got {value!r}")
    return value


def _level(name: str, data: Any, source: str, path: str) -> _Level:
    """One memory level: bandwidth the sum of its ports' `bandwidth_max` (shared when any port is
    read_write, else separate read and write sums); energy per bit the cost of an access over the
    widest port that reads (writes)."""
    ports = _key(data, "ports", source, path)
    if not isinstance(ports, list) or not ports:
        raise InputError(f"{source}: {path}.ports: expected a non-empty list of ports")
    widest = {"read": 0, "write": 0}
    total = {"read": 0, "write": 0, "read_write": 0}
    for i, port in enumerate(ports):
        kind = _key(port, "type", source, f"{path}.ports[{i}]")
        width = int(_number(port, "bandwidth_max", source, f"{path}.ports[{i}]", positive=True))
        if kind not in total:
            raise InputError(f"{source}: {path}.ports[{i}].type: expected read, write or read_write, got {kind!r}")
        total[kind] += width
        for direction in ("read", "write"):
            if direction in kind:
                widest[direction] = max(widest[direction], width)
    for direction, width in widest.items():
        if width == 0:
            raise InputError(f"{source}: {path}.ports: no {direction} port")
    shared = sum(total.values()) if total["read_write"] else 0
    operands = data.get("operands") or []
    served = data.get("served_dimensions") or []
    return _Level(name, int(_number(data, "size", source, path, positive=True)),
                  _number(data, "r_cost", source, path) / widest["read"],
                  _number(data, "w_cost", source, path) / widest["write"], shared, total["read"], total["write"],
                  tuple(map(str, operands)) if isinstance(operands, list) else (),
                  tuple(map(str, served)) if isinstance(served, list) else ())


def _levels(core: Any, source: str, path: str) -> list[_Level]:
    memories = _key(core, "memories", source, path)
    if not isinstance(memories, Mapping) or not memories:
        raise InputError(f"{source}: {path + '.' if path else ''}memories: expected a mapping of memory levels")
    prefix = f"{path}." if path else ""
    return [_level(name, data, source, f"{prefix}memories.{name}") for name, data in memories.items()]


def _array(core: Any, source: str, path: str) -> tuple[list[str], list[int], float]:
    where = f"{path + '.' if path else ''}operational_array"
    array = _key(core, "operational_array", source, path)
    dimensions = _key(array, "dimensions", source, where)
    sizes = _key(array, "sizes", source, where)
    if not isinstance(dimensions, list) or not isinstance(sizes, list) or len(dimensions) != len(sizes) or not sizes:
        raise InputError(f"{source}: {where}: dimensions and sizes must be lists of the same length")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise InputError(f"{source}: {where}.sizes: expected positive integers, got {sizes!r}")
    return [str(d) for d in dimensions], sizes, _number(array, "unit_energy", source, where)


def _compute_core(core: Any, name: str, source: str, path: str, unroll: Mapping[str, str],
                  notes: list[str], outermost_is_dram: bool) -> tuple[dict, dict, _Level | None]:
    """(core entry, its memory entry, the DRAM level when the core's outermost level is DRAM)."""
    levels = _levels(core, source, path)
    dram = levels.pop() if outermost_is_dram else None
    if not levels:
        raise InputError(f"{source}: {path + '.' if path else ''}memories: no on-chip level below DRAM")
    local = max(levels, key=lambda level: level.size_bits)
    registers: dict[str, dict[str, Any]] = {}
    for level in levels:
        if level is local:
            continue
        port = REGISTER_OF_OPERAND.get(level.operands[0]) if len(level.operands) == 1 else None
        if port is not None and port not in registers:
            registers[port] = {"size_bits": level.size_bits, "read_energy_pj_per_bit": level.read_pj_per_bit,
                               "write_energy_pj_per_bit": level.write_pj_per_bit}
            if level.served_dimensions:
                notes.append(f"{source}: {name}: register {level.name!r} serves {', '.join(level.served_dimensions)}: "
                             f"taken as the {port} register of each PE (of each output lane for the output)")
        else:
            notes.append(f"{source}: {name}: memory level {level.name!r} ({level.size_bits} bits) is not represented "
                         f"(one local memory per core: {local.name!r}; registers serve one operand each)")
    dimensions, sizes, unit_energy = _array(core, source, path)
    operators = set(core.get("operator_types") or []) if isinstance(core, Mapping) else set()
    memory = f"{name}.{local.name}"
    entry: dict[str, Any] = {"name": name, "memory": memory}
    if not operators or operators & MAC_OPERATORS:
        mapped: dict[str, int] = {}
        for dimension, size in zip(dimensions, sizes, strict=True):
            loop = unroll.get(dimension)
            if loop is None or loop not in UNROLL_DIMS:
                raise InputError(f"{source}: {path + '.' if path else ''}operational_array.dimensions: no loop "
                                 f"dimension for {dimension!r} (give --unroll {dimension}=K|C|OX|...)")
            mapped[loop] = mapped.get(loop, 1) * size
        entry |= {"op_kinds": ["mac"], "double_buffered": False,
                  "pe_array": {"unroll": mapped, "mac_energy_pj": {"int8": unit_energy},
                               **({"registers": registers} if registers else {})}}
        notes.append(f"{source}: {name}: array {'x'.join(map(str, sizes))} unrolls "
                     + ", ".join(f"{d}={unroll[d]}" for d in dimensions) + " (ZigZag's spatial mapping is a separate "
                     "file; --unroll changes it)")
        notes.append(f"{source}: {name}: unit_energy {unit_energy} pJ taken as an int8 MAC (ZigZag's workloads are "
                     "8-bit), other widths scaled; not double-buffered (ZigZag loads the first operands before "
                     "computing)")
    else:
        kinds = ["pool"] if operators <= POOL_OPERATORS else ["vector", "optimizer"]
        entry |= {"op_kinds": kinds, "vector_unit": {"lanes": math.prod(sizes), "op_energy_pj": unit_energy}}
    return entry, _memory_entry(memory, local), dram


def _memory_entry(name: str, level: _Level) -> dict[str, Any]:
    return {"name": name, "capacity_bytes": level.size_bits // 8, **level.ports(),
            "read_energy_pj_per_bit": level.read_pj_per_bit, "write_energy_pj_per_bit": level.write_pj_per_bit}


def _dram_entry(level: _Level, source: str, notes: list[str]) -> dict[str, Any]:
    bandwidth = level.shared_bits_per_cycle
    if not bandwidth:
        bandwidth = max(level.read_bits_per_cycle, level.write_bits_per_cycle)
        notes.append(f"{source}: DRAM {level.name!r}: separate read and write ports; one DRAM port in the schema, "
                     f"{bandwidth} bits/cycle")
    return {"capacity_bytes": level.size_bits // 8, "bandwidth_bits_per_cycle": bandwidth,
            "read_energy_pj_per_bit": level.read_pj_per_bit, "write_energy_pj_per_bit": level.write_pj_per_bit}


def _finish(name: str, source: str, memories: list, cores: list, dram: dict, links: list, notes: list[str],
            origin: str) -> Imported:
    notes.append(f"{source}: no clock in the file: {CLOCK_HZ:g} Hz assumed")
    document = {"name": name, "description": f"imported from {origin} {Path(source).name}",
                "source": f"{origin} description {source}, translated by monet hardware import", "clock_hz": CLOCK_HZ,
                "memories": memories, "cores": cores, "dram": dram, "links": links}
    accelerator_from_dict(document, source)  # what is written must load
    return Imported(document, tuple(notes))


def import_hardware(kind: str, path: str | Path, unroll: Mapping[str, str] | None = None) -> Imported:
    """`from_zigzag` or `from_stream` (`kind`) of the YAML file at `path`."""
    translate = {"zigzag": from_zigzag, "stream": from_stream}[kind]
    return translate(load_data(path), str(path), unroll)


def parse_unroll(text: str | None) -> dict[str, str]:
    """--unroll D1=K,D2=C -> {"D1": "K", "D2": "C"}; InputError for anything else."""
    out = {}
    for item in (text or "").split(","):
        if not item:
            continue
        dimension, _, loop = item.partition("=")
        if not dimension or loop not in UNROLL_DIMS:
            raise InputError(f"--unroll {text!r}: expected ARRAY_DIM=LOOP,... with LOOP one of "
                             f"{', '.join(UNROLL_DIMS)}")
        out[dimension] = loop
    return out


def from_zigzag(document: Any, source: str, unroll: Mapping[str, str] | None = None) -> Imported:
    """One ZigZag core (its outermost memory level is DRAM) as a one-core accelerator with a DRAM link
    as wide as the DRAM port."""
    notes: list[str] = []
    name = str(_key(document, "name", source, ""))
    core, memory, dram = _compute_core(document, name, source, "", {**DEFAULT_UNROLL, **(unroll or {})}, notes, True)
    assert dram is not None
    dram_entry = _dram_entry(dram, source, notes)
    if "pe_array" in core:
        notes.append(f"{source}: {name}: the core runs MAC ops only (a training step also needs a vector core)")
    link = {"name": f"{name}.dram", "endpoints": [DRAM, name],
            "bandwidth_bits_per_cycle": dram_entry["bandwidth_bits_per_cycle"], "energy_pj_per_bit": 0.0}
    return _finish(name, source, [memory], [core], dram_entry, [link], notes, "ZigZag")


def from_stream(document: Any, source: str, unroll: Mapping[str, str] | None = None) -> Imported:
    """A Stream accelerator: its cores (files relative to `source`), the off-chip core as DRAM, links
    and buses; a core that no link joins to DRAM gets one as wide as the DRAM port (noted)."""
    notes: list[str] = []
    name = str(_key(document, "name", source, ""))
    cores_by_id = _key(document, "cores", source, "")
    if not isinstance(cores_by_id, Mapping) or not cores_by_id:
        raise InputError(f"{source}: cores: expected a mapping of core id to core file")
    offchip = _key(document, "offchip_core_id", source, "")
    if offchip not in cores_by_id:
        raise InputError(f"{source}: offchip_core_id: {offchip!r} is not a core id "
                         f"({', '.join(map(str, cores_by_id))})")
    base = Path(source).parent
    names: dict[Any, str] = {}
    memories, cores = [], []
    dram_entry: dict[str, Any] = {}
    for core_id, file in cores_by_id.items():
        path = base / str(file)
        core_doc = load_data(path)
        if core_id == offchip:
            levels = _levels(core_doc, str(path), "")
            dram_entry = _dram_entry(max(levels, key=lambda level: level.size_bits), str(path), notes)
            names[core_id] = DRAM
            continue
        names[core_id] = f"{_key(core_doc, 'name', str(path), '')}{core_id}"
        core, memory, _ = _compute_core(core_doc, names[core_id], str(path), "", {**DEFAULT_UNROLL, **(unroll or {})},
                                        notes, False)
        cores.append(core)
        memories.append(memory)
    default_energy = float(document.get("unit_energy_cost", 0.0) or 0.0)
    links = []
    for i, connection in enumerate(document.get("core_connectivity") or []):
        where = f"core_connectivity[{i}]"
        members = _key(connection, "cores", source, where)
        if not isinstance(members, list) or len(members) < 2 or any(m not in names for m in members):
            raise InputError(f"{source}: {where}.cores: expected two or more core ids of `cores`, got {members!r}")
        endpoints = [names[m] for m in members]
        links.append({"name": f"{connection.get('type', 'link')}{i}." + "-".join(map(str, members)),
                      "endpoints": endpoints,
                      "bandwidth_bits_per_cycle": int(_number(connection, "bandwidth", source, where, positive=True)),
                      "energy_pj_per_bit": float(connection.get("unit_energy_cost", default_energy))})
    for core in cores:
        if not any(DRAM in link["endpoints"] and core["name"] in link["endpoints"] for link in links):
            links.append({"name": f"{core['name']}.dram", "endpoints": [DRAM, core["name"]],
                          "bandwidth_bits_per_cycle": dram_entry["bandwidth_bits_per_cycle"], "energy_pj_per_bit": 0.0})
            notes.append(f"{source}: core {core['name']!r} has no link to the off-chip core: one added, as wide as "
                         "the DRAM port")
    return _finish(name, source, memories, cores, dram_entry, links, notes, "Stream")
