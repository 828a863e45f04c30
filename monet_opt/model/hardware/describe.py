"""Readable and JSON descriptions of an accelerator (`monet hardware show`)."""

from __future__ import annotations

import textwrap
from typing import Any

from monet_opt.model.hardware.model import OP_KIND_GROUPS, Accelerator, Core, Memory


def _kinds(core: Core) -> list[str]:
    """The core's op kinds as group names where a whole group is covered, else kind names."""
    names, covered = [], set()
    for group, kinds in OP_KIND_GROUPS.items():
        if kinds <= core.op_kinds:
            names.append(group)
            covered |= kinds
    return names + sorted(k.value for k in core.op_kinds - covered)


def accelerator_to_dict(hw: Accelerator) -> dict[str, Any]:
    return {
        "name": hw.name, "description": hw.description, "source": hw.source, "clock_hz": hw.clock_hz,
        "memories": [_memory_dict(m) for m in hw.memories.values()],
        "cores": [
            {"name": c.name, "memory": c.memory, "op_kinds": _kinds(c),
             **({} if c.double_buffered else {"double_buffered": False}),
             **({"pe_array": {"unroll": dict(c.unroll), "mac_energy_pj": c.mac_energy.to_yaml(),
                              **({"registers": {port: r.__dict__ for port, r in c.registers.items()}}
                                 if c.registers else {})}} if c.is_pe_array else
                {"vector_unit": {"lanes": c.vector_lanes, "op_energy_pj": c.vector_op_energy.to_yaml()}})}
            for c in hw.cores
        ],
        "dram": hw.dram.__dict__,
        "links": [{**link.__dict__, "endpoints": list(link.endpoints)} for link in hw.links],
    }


def _memory_dict(m: Memory) -> dict[str, Any]:
    """The memory in the YAML schema: the shared-port form, or the separate-ports one."""
    ports = ({"bandwidth_bits_per_cycle": m.bandwidth_bits_per_cycle} if m.bandwidth_bits_per_cycle else
             {"read_bandwidth_bits_per_cycle": m.read_bandwidth_bits_per_cycle,
              "write_bandwidth_bits_per_cycle": m.write_bandwidth_bits_per_cycle})
    return {"name": m.name, "capacity_bytes": m.capacity_bytes, **ports,
            "read_energy_pj_per_bit": m.read_energy_pj_per_bit, "write_energy_pj_per_bit": m.write_energy_pj_per_bit}


def _bandwidth_text(m: Memory) -> str:
    return (f"{m.bandwidth_bits_per_cycle} bits/cycle" if m.bandwidth_bits_per_cycle else
            f"read {m.read_bandwidth_bits_per_cycle} / write {m.write_bandwidth_bits_per_cycle} bits/cycle")


def format_accelerator(hw: Accelerator) -> str:
    lines = [f"{hw.name}: {hw.description}", f"clock {hw.clock_hz / 1e9:g} GHz", "", "cores:"]
    for c in hw.cores:
        engine = (f"PE array {' x '.join(f'{d}{n}' for d, n in c.unroll.items())} ({c.lanes} MACs/cycle, "
                  f"{c.mac_energy} pJ/MAC)" if c.is_pe_array else
                  f"vector unit {c.vector_lanes} lanes ({c.vector_op_energy} pJ/op)")
        registers = "".join(f"; {port} register {r.size_bits} bits" for port, r in c.registers.items())
        buffering = "" if c.double_buffered else "; not double-buffered"
        lines.append(f"  {c.name:<8} {engine}{registers}{buffering}; memory {c.memory}; runs {', '.join(_kinds(c))}")
    lines.append("memories:")
    for m in hw.memories.values():
        lines.append(f"  {m.name:<10} {m.capacity_bytes:,} B, {_bandwidth_text(m)}, "
                     f"read {m.read_energy_pj_per_bit} / write {m.write_energy_pj_per_bit} pJ/bit")
    lines.append(f"dram: {hw.dram.capacity_bytes:,} B, {hw.dram.bandwidth_bits_per_cycle} bits/cycle, "
                 f"read {hw.dram.read_energy_pj_per_bit} / write {hw.dram.write_energy_pj_per_bit} pJ/bit")
    lines.append("links:")
    for link in hw.links:
        lines.append(f"  {link.name:<16} {' - '.join(link.endpoints)}: {link.bandwidth_bits_per_cycle} bits/cycle, "
                     f"{link.energy_pj_per_bit} pJ/bit")
    if hw.source:
        lines += ["", "source:", textwrap.fill(hw.source, 100, initial_indent="  ", subsequent_indent="  ")]
    return "\n".join(lines)
