"""`monet hardware import`: ZigZag cores and Stream accelerators, written here in those formats
(after ZigZag's tpu_like and Stream's tpu_like_quad_core examples), translated by hand."""

import pytest
import yaml

from monet_opt.cli import main
from monet_opt.errors import InputError
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.hardware.importer import import_hardware


def port(name, kind, width, *allocation):
    return {"name": name, "type": kind, "bandwidth_min": 8, "bandwidth_max": width, "allocation": list(allocation)}


def level(size_bits, r_cost, w_cost, operands, ports, served=("D1", "D2")):
    return {"size": size_bits, "r_cost": r_cost, "w_cost": w_cost, "area": 0, "latency": 1, "operands": operands,
            "ports": ports, "served_dimensions": list(served)}


RF_WEIGHTS = level(1024, 0.095, 0.095, ["I2"], [port("r", "read", 8, "I2, tl"), port("w", "write", 8, "I2, fh")], ())
RF_OUTPUT = level(16, 0.021, 0.021, ["O"], [port("r", "read", 16, "O, tl"), port("w", "write", 16, "O, fh")], ())
SRAM_2MB = level(16777216, 416.16, 378.4, ["I1", "O"],
                 [port("r", "read", 2048, "I1, tl", "O, tl"), port("w", "write", 2048, "I1, fh", "O, fh")])
DRAM_LEVEL = level(10 ** 10, 700, 750, ["I1", "I2", "O"], [port("rw", "read_write", 64, "I1, fh", "I1, tl")])
TPU_ARRAY = {"unit_energy": 0.04, "unit_area": 1, "dimensions": ["D1", "D2"], "sizes": [32, 32]}


def zigzag_tpu_like():
    return {"name": "tpu_like", "memories": {"rf_128B": RF_WEIGHTS, "rf_2B": RF_OUTPUT, "sram_2MB": SRAM_2MB,
                                             "dram": DRAM_LEVEL},
            "operational_array": TPU_ARRAY}


def write(path, document):
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_a_zigzag_core_by_hand(tmp_path):
    imported = import_hardware("zigzag", write(tmp_path / "tpu_like.yaml", zigzag_tpu_like()))
    doc = imported.document
    [memory] = doc["memories"]
    assert memory == {"name": "tpu_like.sram_2MB", "capacity_bytes": 2 * 1024 * 1024,
                      "read_bandwidth_bits_per_cycle": 2048, "write_bandwidth_bits_per_cycle": 2048,
                      "read_energy_pj_per_bit": 416.16 / 2048, "write_energy_pj_per_bit": 378.4 / 2048}
    # the register files: 0.095 pJ per 8-bit weight access, 0.021 pJ per 16-bit output access
    registers = {"weight": {"size_bits": 1024, "read_energy_pj_per_bit": 0.095 / 8, "write_energy_pj_per_bit": 0.095 / 8},
                 "output": {"size_bits": 16, "read_energy_pj_per_bit": 0.021 / 16, "write_energy_pj_per_bit": 0.021 / 16}}
    assert doc["cores"] == [{"name": "tpu_like", "memory": "tpu_like.sram_2MB", "op_kinds": ["mac"],
                             "double_buffered": False,
                             "pe_array": {"unroll": {"K": 32, "C": 32}, "mac_energy_pj": {"int8": 0.04},
                                          "registers": registers}}]
    # 700 and 750 pJ per 64-bit access
    assert doc["dram"] == {"capacity_bytes": 1_250_000_000, "bandwidth_bits_per_cycle": 64,
                           "read_energy_pj_per_bit": 700 / 64, "write_energy_pj_per_bit": 750 / 64}
    assert doc["links"] == [{"name": "tpu_like.dram", "endpoints": ["dram", "tpu_like"], "bandwidth_bits_per_cycle": 64,
                             "energy_pj_per_bit": 0.0}]
    notes = "\n".join(imported.notes)
    for said in ("unit_energy 0.04 pJ taken as an int8 MAC", "not double-buffered", "unrolls D1=K, D2=C",
                 "MAC ops only", "1e+09 Hz assumed"):
        assert said in notes
    eyeriss = import_hardware("zigzag", tmp_path / "tpu_like.yaml", {"D1": "OY", "D2": "FY"})
    assert eyeriss.document["cores"][0]["pe_array"]["unroll"] == {"OY": 32, "FY": 32}


def stream_files(tmp_path, bus_reaches_simd=True):
    cores = tmp_path / "cores"
    cores.mkdir()
    tpu = {"name": "tpu_like", "type": "zigzag.compute",
           "memories": {"rf_128B": RF_WEIGHTS, "sram_2MB": SRAM_2MB}, "operational_array": TPU_ARRAY}
    simd = {"name": "simd", "type": "zigzag.compute",
            "memories": {"sram_128KB": level(1048576, 60, 75, ["I1", "I2", "O"],
                                             [port("rw1", "read_write", 512, "I1, fh"),
                                              port("rw2", "read_write", 512, "I1, tl")], ["D1"])},
            "operational_array": {"unit_energy": 0.1, "unit_area": 0.01, "dimensions": ["D1"], "sizes": [64]},
            "operator_types": ["Add", "Relu"]}
    offchip = {"name": "offchip", "type": "zigzag.offchip",
               "memories": {"dram": level(10 ** 10, 1000, 1000, ["I1", "I2", "O"], [port("rw", "read_write", 64)])},
               "operational_array": {"unit_energy": 0, "unit_area": 0, "dimensions": ["D1", "D2"], "sizes": [1, 1]}}
    for name, doc in (("tpu_like", tpu), ("simd", simd), ("offchip", offchip)):
        write(cores / f"{name}.yaml", doc)
    bus = [0, 1, 2, 3] if bus_reaches_simd else [0, 1, 3]
    accelerator = {"name": "tpu_like_dual_core",
                   "cores": {0: "./cores/tpu_like.yaml", 1: "./cores/tpu_like.yaml", 2: "./cores/simd.yaml",
                             3: "./cores/offchip.yaml"},
                   "offchip_core_id": 3, "unit_energy_cost": 0,
                   "core_connectivity": [{"type": "link", "cores": [0, 1], "bandwidth": 32},
                                         {"type": "link", "cores": [0, 2], "bandwidth": 32, "unit_energy_cost": 0.5},
                                         {"type": "bus", "cores": bus, "bandwidth": 128}]}
    return write(tmp_path / "dual.yaml", accelerator)


def test_a_stream_accelerator_by_hand(tmp_path):
    imported = import_hardware("stream", stream_files(tmp_path))
    doc = imported.document
    assert [c["name"] for c in doc["cores"]] == ["tpu_like0", "tpu_like1", "simd2"]
    assert doc["cores"][2] == {"name": "simd2", "memory": "simd2.sram_128KB", "op_kinds": ["vector", "optimizer"],
                               "vector_unit": {"lanes": 64, "op_energy_pj": 0.1}}
    # two read_write ports of 512 bits: one shared port of 1024
    assert doc["memories"][2] == {"name": "simd2.sram_128KB", "capacity_bytes": 131072, "bandwidth_bits_per_cycle": 1024,
                                  "read_energy_pj_per_bit": 60 / 512, "write_energy_pj_per_bit": 75 / 512}
    assert doc["dram"] == {"capacity_bytes": 1_250_000_000, "bandwidth_bits_per_cycle": 64,
                           "read_energy_pj_per_bit": 1000 / 64, "write_energy_pj_per_bit": 1000 / 64}
    assert [(link["endpoints"], link["bandwidth_bits_per_cycle"], link["energy_pj_per_bit"]) for link in doc["links"]] == [
        (["tpu_like0", "tpu_like1"], 32, 0.0), (["tpu_like0", "simd2"], 32, 0.5),
        (["tpu_like0", "tpu_like1", "simd2", "dram"], 128, 0.0)]
    hw = load_accelerator(write(tmp_path / "out.yaml", doc))
    assert hw.dram_bandwidth_bits_per_cycle("simd2") == 64 and hw.link_between("tpu_like0", "simd2").energy_pj_per_bit == 0.5
    (tmp_path / "cut").mkdir()
    cut = import_hardware("stream", stream_files(tmp_path / "cut", bus_reaches_simd=False))
    assert cut.document["links"][-1]["endpoints"] == ["dram", "simd2"]
    assert any("'simd2' has no link to the off-chip core" in note for note in cut.notes)


def test_import_command_and_its_errors(tmp_path, capsys):
    source = write(tmp_path / "tpu_like.yaml", zigzag_tpu_like())
    out = tmp_path / "out" / "tpu.yaml"
    assert main(["hardware", "import", "--from", "zigzag", str(source), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "note:" in captured.err and "wrote" in captured.out
    assert load_accelerator(out).core("tpu_like").lanes == 1024
    broken = zigzag_tpu_like()
    del broken["operational_array"]
    bad = write(tmp_path / "bad.yaml", broken)
    for argv, message in (([str(bad)], "bad.yaml: operational_array: missing key"),
                          ([str(source), "--unroll", "D1=Q"], "--unroll 'D1=Q': expected"),
                          ([str(source), "--unroll", "D1=K"], None)):
        target = tmp_path / "refused.yaml"
        code = main(["hardware", "import", "--from", "zigzag", *argv, "-o", str(target)])
        if message is None:
            assert code == 0 and target.exists()
            continue
        assert code == 2 and message in capsys.readouterr().err and not target.exists()
    no_write_port = zigzag_tpu_like()
    no_write_port["memories"]["sram_2MB"] = dict(SRAM_2MB, ports=[port("r", "read", 2048)])
    with pytest.raises(InputError, match=r"memories\.sram_2MB\.ports: no write port"):
        import_hardware("zigzag", write(tmp_path / "noport.yaml", no_write_port))


def test_the_zigzag_tpu_like_library_entry_is_the_import_of_zigzags_core(tmp_path):
    """The library's zigzag-tpu-like TPU core, its memory and DRAM are what the importer makes of
    ZigZag's tpu_like description (its numbers, as written above)."""
    doc = import_hardware("zigzag", write(tmp_path / "tpu_like.yaml", zigzag_tpu_like())).document
    hw = load_accelerator("zigzag-tpu-like")
    [memory], [core] = doc["memories"], doc["cores"]
    ours = hw.memories["tpu.sram"]
    assert (ours.capacity_bytes, ours.read_bandwidth_bits_per_cycle, ours.write_bandwidth_bits_per_cycle,
            ours.read_energy_pj_per_bit, ours.write_energy_pj_per_bit) == (
        memory["capacity_bytes"], memory["read_bandwidth_bits_per_cycle"], memory["write_bandwidth_bits_per_cycle"],
        memory["read_energy_pj_per_bit"], memory["write_energy_pj_per_bit"])
    tpu = hw.core("tpu")
    assert dict(tpu.unroll) == core["pe_array"]["unroll"] and tpu.mac_energy.to_yaml() == {"int8": 0.04}
    assert {port: r.__dict__ for port, r in tpu.registers.items()} == core["pe_array"]["registers"]
    assert tpu.double_buffered is core["double_buffered"] is False
    assert (hw.dram.capacity_bytes, hw.dram.bandwidth_bits_per_cycle, hw.dram.read_energy_pj_per_bit,
            hw.dram.write_energy_pj_per_bit) == tuple(doc["dram"].values())
