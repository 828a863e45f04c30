"""Accelerator YAML: the built-in library and every kind of bad input."""

import subprocess
import sys

import pytest
import yaml

from monet_opt.errors import InputError
from monet_opt.model.hardware import accelerator_from_dict, builtin_hardware, load_accelerator
from monet_opt.model.hardware.model import Register
from monet_opt.model.workload import OpKind
from monet_opt.model.workload.ir import DType
from hw_fixtures import toy_data


def test_library_has_the_required_designs():
    assert {"edge-tpu-quad", "edge-hetero", "fusemax-dc", "dc-mesh4"} <= set(builtin_hardware())
    for name in builtin_hardware():
        hw = load_accelerator(name)
        assert hw.source, f"{name} must say where its numbers come from"


def test_edge_tpu_quad_matches_streams_example():
    hw = load_accelerator("edge-tpu-quad")
    tpus = [c for c in hw.cores if c.name.startswith("tpu")]
    assert len(tpus) == 4 and all(dict(c.unroll) == {"K": 32, "C": 32} and c.mac_energy.pj(DType.INT8) == 0.04
                                  for c in tpus)
    # Stream's rf_128B (weights, per PE) and rf_2B (outputs): 0.095 pJ per 8 bits, 0.021 pJ per 16 bits
    assert all(c.registers["weight"] == Register(1024, 0.011875, 0.011875) for c in tpus)
    assert all(c.registers["output"] == Register(16, 0.0013125, 0.0013125) for c in tpus)
    assert all(hw.memories[c.memory].capacity_bytes == 2 * 1024 * 1024 for c in tpus)
    assert hw.link_between("tpu0", "tpu1").bandwidth_bits_per_cycle == 32
    assert hw.link_between("dram", "tpu0").bandwidth_bits_per_cycle == 128
    assert hw.dram_bandwidth_bits_per_cycle("tpu0") == 64  # the 64-bit DRAM port is slower than the bus
    assert hw.core("pool").can_run(OpKind.MAXPOOL) and not hw.core("pool").can_run(OpKind.RELU)


def test_edge_hetero_has_different_dataflows():
    hw = load_accelerator("edge-hetero")
    arrays = [dict(c.unroll) for c in hw.cores if c.is_pe_array]
    assert len(arrays) == 2 and arrays[0] != arrays[1]


def test_shared_memory_is_split_between_its_cores():
    hw = load_accelerator("fusemax-dc")
    assert hw.working_capacity_bytes("array") == hw.working_capacity_bytes("vector") == 1024 * 1024


def _set(data, path, value):
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node[k]
    last = keys[-1]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value


_DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("memories.0.colour", "red", "memories[0].colour: unknown key"),
    ("dram.capacity_bytes", _DELETE, "dram.capacity_bytes: missing key"),
    ("cores.0.pe_array.mac_energy_pj", "cheap", "cores[0].pe_array.mac_energy_pj: expected a number >= 0 or a mapping from element type to number, got 'cheap'"),
    ("memories.1.capacity_bytes", 0, "memories[1].capacity_bytes: must be > 0, got 0"),
    ("links.1.bandwidth_bits_per_cycle", -8, "links[1].bandwidth_bits_per_cycle: must be > 0, got -8"),
    ("cores.0.memory", "nowhere", "cores[0].memory: unknown memory 'nowhere'"),
    ("links.0.endpoints", ["pe", "gpu"], "links[0].endpoints[1]: unknown endpoint 'gpu'"),
    ("cores.1.op_kinds", ["vector", "magic"], "cores[1].op_kinds[1]: unknown op kind or group 'magic'"),
    ("cores.0.op_kinds", ["mac", "relu"], "cores[0].op_kinds: a pe_array core runs only mac kinds"),
    ("links.1.endpoints", ["dram", "pe"], "cores[1]: core 'vec' has no link to dram"),
    ("cores.0.pe_array.unroll", {"Q": 4}, "cores[0].pe_array.unroll.Q: unknown key"),
    ("memories.0.read_bandwidth_bits_per_cycle", 64, "memories[0].read_bandwidth_bits_per_cycle: give "
     "bandwidth_bits_per_cycle or read_bandwidth_bits_per_cycle and write_bandwidth_bits_per_cycle, not both"),
    ("memories.0.bandwidth_bits_per_cycle", _DELETE, "memories[0].bandwidth_bits_per_cycle: missing key"),
    ("dram.energy_pj_per_bit", _DELETE, "dram.energy_pj_per_bit: missing key"),
    ("dram.write_energy_pj_per_bit", 3.0, "dram.write_energy_pj_per_bit: give energy_pj_per_bit or"),
])
def test_bad_hardware_names_file_and_key_path(path, value, message):
    data = toy_data()
    _set(data, path, value)
    with pytest.raises(InputError) as info:
        accelerator_from_dict(data, "bad.yaml")
    assert str(info.value).startswith("bad.yaml: ") and message in str(info.value), str(info.value)


def test_bad_hardware_files_on_the_cli(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    data = toy_data()
    data["dram"]["bandwidth_bits_per_cycle"] = 0
    zero = tmp_path / "zero.yaml"
    zero.write_text(yaml.safe_dump(data))
    for path, message in ((broken, "not valid YAML at line"), (zero, "dram.bandwidth_bits_per_cycle: must be > 0"),
                          (tmp_path / "missing.yaml", "unknown hardware")):
        proc = subprocess.run([sys.executable, "-m", "monet_opt", "hardware", "show", str(path)],
                              capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_hardware_show_round_trips_through_json(capsys):
    from monet_opt.cli import main
    import json
    assert main(["hardware", "show", "edge-hetero", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    again = accelerator_from_dict(data, "round-trip")
    assert again == load_accelerator("edge-hetero")
