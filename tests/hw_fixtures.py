"""Small hand-made accelerators for hand-computed tests."""

import copy

from monet_opt.model.hardware import accelerator_from_dict

BASE = {
    "name": "toy",
    "clock_hz": 1.0e9,
    "memories": [
        {"name": "sram", "capacity_bytes": 1 << 30, "bandwidth_bits_per_cycle": 1 << 30,
         "read_energy_pj_per_bit": 0.5, "write_energy_pj_per_bit": 0.25},
        {"name": "vsram", "capacity_bytes": 1 << 20, "bandwidth_bits_per_cycle": 1 << 20,
         "read_energy_pj_per_bit": 0.1, "write_energy_pj_per_bit": 0.1},
    ],
    "cores": [
        {"name": "pe", "memory": "sram", "op_kinds": ["mac"], "pe_array": {"unroll": {"K": 32, "C": 32}, "mac_energy_pj": 1.0}},
        {"name": "vec", "memory": "vsram", "op_kinds": ["vector", "pool", "optimizer"],
         "vector_unit": {"lanes": 16, "op_energy_pj": 0.5}},
    ],
    "dram": {"capacity_bytes": 1 << 40, "bandwidth_bits_per_cycle": 1 << 30, "energy_pj_per_bit": 10.0},
    "links": [
        {"name": "pe-vec", "endpoints": ["pe", "vec"], "bandwidth_bits_per_cycle": 64, "energy_pj_per_bit": 1.0},
        {"name": "bus", "endpoints": ["dram", "pe", "vec"], "bandwidth_bits_per_cycle": 1 << 30, "energy_pj_per_bit": 2.0},
    ],
}


def toy(**changes):
    """BASE with dotted-path overrides, e.g. toy(**{"memories.0.capacity_bytes": 4096})."""
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = data
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        last = keys[-1]
        node[int(last) if last.isdigit() else last] = value
    return accelerator_from_dict(data, "toy.yaml")


def toy_data():
    return copy.deepcopy(BASE)
