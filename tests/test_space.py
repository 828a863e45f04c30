"""Design spaces (monet_opt/studies/design_space.py) and the evaluation of their points (monet_opt/studies/design_sweep.py)."""

import json

import pytest
import yaml

from hw_fixtures import toy_data
from monet_opt.errors import InputError
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.studies.design_space import (
    area_proxy, grid_points, load_space, pareto_front, point_accelerator, point_values, sample_points,
)
from monet_opt.studies.design_sweep import evaluate_point


def write_space(tmp_path, parameters, constraints=(), **extra):
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(toy_data()))
    data = {"name": "toyspace", "base": "toy.yaml", "parameters": parameters, **extra}
    if constraints:
        data["constraints"] = list(constraints)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def one_matmul():
    """x (64x32) times w (32x32), no loss: tests/test_cost.py prices it by hand on the toy."""
    g = GraphBuilder("mm")
    return g.build([g.matmul("mm", g.input("x", (64, 32)), g.weight("w", (32, 32)))])


def test_points_are_indexed_in_mixed_radix_and_set_every_matching_key(tmp_path):
    space = load_space(write_space(tmp_path, {
        "k": {"values": [16, 32], "set": ["cores[pe].pe_array.unroll.K"]},
        "mem": {"range": {"from": 1024, "to": 4096, "factor": 2}, "set": ["memories[*sram].capacity_bytes"]},
    }))
    assert space.size == 2 * 3 and [p.values for p in space.parameters] == [(16, 32), (1024, 2048, 4096)]
    assert [point_values(space, i) for i in (0, 1, 3, 5)] == [
        {"k": 16, "mem": 1024}, {"k": 16, "mem": 2048}, {"k": 32, "mem": 1024}, {"k": 32, "mem": 4096}]
    hw = point_accelerator(space, 4)
    assert hw.name == "toyspace/4" and hw.core("pe").unroll == {"K": 32, "C": 32}
    assert hw.memories["sram"].capacity_bytes == hw.memories["vsram"].capacity_bytes == 2048


def test_constraints_filter_the_grid_and_samples_are_reproducible(tmp_path):
    space = load_space(write_space(tmp_path, {
        "k": {"values": [8, 16, 32, 64], "set": ["cores[pe].pe_array.unroll.K"]},
        "c": {"range": {"from": 8, "to": 64, "step": 8}, "set": ["cores[pe].pe_array.unroll.C"]},
    }, constraints=["k * c <= 512", "not (k == 8 and c > 32)"]))
    # by hand: k=8: c in 8..32 (4 values; c > 32 excluded by the second rule); k=16: c <= 32 (4);
    # k=32: c <= 16 (2); k=64: c = 8 (1)
    grid = grid_points(space)
    assert len(grid) == 4 + 4 + 2 + 1
    assert all(point_values(space, i)["k"] * point_values(space, i)["c"] <= 512 for i in grid)
    drawn = sample_points(space, 5, seed=7)
    assert drawn == sample_points(space, 5, seed=7) and len(set(drawn)) == 5 and set(drawn) <= set(grid)
    assert sample_points(space, 5, seed=8) != drawn
    assert sorted(sample_points(space, 100, seed=1)) == grid  # more than there are: every satisfying point


def test_a_hand_computed_two_parameter_space_gives_the_hand_computed_front(tmp_path):
    """One matmul on the toy (tests/test_cost.py: 128 cycles, 2,154,496 pJ of which 65,536 are
    MACs at 1 pJ). Clock 1 or 2 GHz, MAC energy 1 or 3 pJ: latency 128 or 64 ns; energy 2,154,496
    or 2,154,496 + 2 x 65,536 = 2,285,568 pJ. (2 GHz, 1 pJ) dominates every other point, so it is
    the front alone. With the constraint "a 2 GHz clock needs the 3 pJ MAC" it is excluded; then
    (1 GHz, 1 pJ) and (2 GHz, 3 pJ) trade latency for energy and form the front, and (1 GHz, 3 pJ)
    is dominated by (1 GHz, 1 pJ)."""
    parameters = {"clock": {"values": [1.0e9, 2.0e9], "set": ["clock_hz"]},
                  "mac_pj": {"values": [1, 3], "set": ["cores[pe].pe_array.mac_energy_pj"]}}
    space = load_space(write_space(tmp_path, parameters))
    graphs = {"inference": one_matmul()}
    rows = [evaluate_point(space, i, graphs)[0] for i in range(space.size)]
    assert [(r.latency_cycles, r.energy_pj) for r in rows] == [(128, 2154496), (128, 2285568), (128, 2154496),
                                                               (128, 2285568)]
    assert [r.latency_s for r in rows] == pytest.approx([128e-9, 128e-9, 64e-9, 64e-9])
    points = [(r.latency_s, r.energy_pj) for r in rows]
    assert pareto_front(points) == [2]
    constrained = load_space(write_space(tmp_path, parameters, constraints=["clock <= 1e9 or mac_pj >= 3"]))
    kept = grid_points(constrained)
    assert kept == [0, 1, 3]
    assert [kept[i] for i in pareto_front([points[i] for i in kept])] == [0, 3]


def test_infeasible_points_are_kept_with_the_reason(tmp_path):
    space = load_space(write_space(tmp_path, {
        "dram": {"values": [1 << 40, 4096], "set": ["dram.capacity_bytes"]}}))
    graphs = {"inference": one_matmul()}  # x 8 KiB + w 4 KiB + output 8 KiB in DRAM
    fits, tight = (evaluate_point(space, i, graphs)[0] for i in (0, 1))
    assert fits.feasible and fits.reason == ""
    assert not tight.feasible and "dram" in tight.reason and tight.latency_cycles is not None


def test_area_proxy_by_hand(tmp_path):
    space = load_space(write_space(tmp_path, {"k": {"values": [16], "set": ["cores[pe].pe_array.unroll.K"]}},
                                   area={"mm2_per_mac": 0.01, "mm2_per_vector_lane": 0.02, "mm2_per_mib_sram": 1.5,
                                         "mm2_per_kib_registers": 0.0}))
    hw = point_accelerator(space, 0)
    # 16 x 32 MACs, 16 lanes, 1 GiB + 1 MiB of SRAM
    assert area_proxy(hw, space.area) == pytest.approx(512 * 0.01 + 16 * 0.02 + (1024 + 1) * 1.5)


@pytest.mark.parametrize("parameters, constraints, message", [
    ({"k": {"values": [1], "set": ["cores[pe].pe_array.unroll.X"]}}, (), "parameters.k.set\\[0\\]: .*no key 'X'"),
    ({"k": {"values": [1], "set": ["cores[tpu*].pe_array.unroll.K"]}}, (), "no entry of cores is named like 'tpu\\*'"),
    ({"k": {"values": [1], "set": ["cores[pe]"]}}, (), "must end at a key"),
    ({"k": {"values": [1, 1], "set": ["clock_hz"]}}, (), "parameters.k.values: repeated value"),
    ({"k": {"values": [1], "range": {"from": 1, "to": 2, "step": 1}, "set": ["clock_hz"]}}, (),
     "parameters.k: give exactly one of values, range or choices"),
    ({"k": {"range": {"from": 4, "to": 2, "step": 1}, "set": ["clock_hz"]}}, (), "to \\(2\\) is below from \\(4\\)"),
    ({"k": {"values": [1], "set": ["clock_hz"], "colour": 1}}, (), "parameters.k.colour: unknown key"),
    ({"k": {"values": [1], "set": ["clock_hz"]}}, ("k * j < 3",), "constraints\\[0\\]: 'j' is not a parameter"),
    ({"k": {"values": [1], "set": ["clock_hz"]}}, ("__import__('os')",), "constraints\\[0\\]: .*only arithmetic"),
    ({"k": {"values": [1], "set": ["clock_hz"]}}, ("k <",), "constraints\\[0\\]: 'k <' is not an expression"),
])
def test_bad_spaces_name_the_key(tmp_path, parameters, constraints, message):
    with pytest.raises(InputError, match=message):
        load_space(write_space(tmp_path, parameters, constraints))


def test_unknown_base_is_refused(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(json.dumps({"base": "no-such-chip", "parameters": {"k": {"values": [1], "set": ["clock_hz"]}}}))
    with pytest.raises(InputError, match="base: unknown hardware 'no-such-chip'"):
        load_space(path)


def test_the_shipped_spaces_load_and_their_points_validate():
    edge = load_space("instances/spaces/edge.yaml")
    assert edge.size == 4 * 4 * 4 * 4 * 2 * 4 * 5 * 2 * 2 * 4 * 4 * 4
    for index in sample_points(edge, 3, seed=0):
        hw = point_accelerator(edge, index)
        v = point_values(edge, index)
        tpus = [c for c in hw.cores if c.name.startswith("tpu")]
        assert len(tpus) == v["core_rows"] * v["core_cols"]
        grid = {"OY": v["grid_rows"]}
        lanes = ({"K": v["k_lanes"], "C": v["c_lanes"], "OX": v["grid_cols"]} if v["dataflow"] == "weight_stationary"
                 else {"K": v["k_lanes"], "OX": v["c_lanes"], "C": v["grid_cols"]})
        assert all(c.unroll == {**lanes, **grid} for c in tpus)
        assert v["k_lanes"] * v["c_lanes"] * v["grid_rows"] * v["grid_cols"] <= 8192
        assert tpus[-1].registers["weight"].size_bits == v["weight_register_bits"]
    datacenter = load_space("instances/spaces/datacenter.yaml")
    hw = point_accelerator(datacenter, datacenter.size - 1)  # every parameter at its largest value
    assert hw.core("array").unroll == {"K": 512, "C": 512} and hw.dram.bandwidth_bits_per_cycle == 8192
    assert hw.memories["buffer"].capacity_bytes == 32 << 20


def quad_space(tmp_path, parameters, replicate, constraints=()):
    data = {"name": "quad", "base": "edge-tpu-quad", "parameters": parameters, "replicate": replicate}
    if constraints:
        data["constraints"] = list(constraints)
    path = tmp_path / "quad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_space(path)


def test_replication_resizes_the_core_family_with_its_memories_mesh_and_links(tmp_path):
    """edge-tpu-quad (tpu0..3 in a 2x2 mesh, pool and simd linked to each, one DRAM bus) resized to
    1 x 3: tpu0..2 with memories tpu0..2.sram, mesh links tpu0-tpu1 and tpu1-tpu2 at the point's
    mesh bandwidth, pool and simd linked to each copy, and the bus listing the three in place of
    the four. At 1 x 1 no mesh link is left, and the mesh parameter's path sets nothing."""
    space = quad_space(tmp_path, {"cols": {"values": [1, 3]},
                                  "mesh": {"values": [48], "set": ["links[mesh.*].bandwidth_bits_per_cycle"]},
                                  "sram": {"values": [65536], "set": ["memories[tpu*.sram].capacity_bytes"]}},
                       [{"cores": "tpu*", "rows": 1, "cols": "cols"}])
    hw = point_accelerator(space, 1)
    assert [c.name for c in hw.cores] == ["tpu0", "tpu1", "tpu2", "pool", "simd"]
    assert [c.memory for c in hw.cores[:3]] == ["tpu0.sram", "tpu1.sram", "tpu2.sram"]
    assert sorted(hw.memories) == ["pool.sram", "simd.sram", "tpu0.sram", "tpu1.sram", "tpu2.sram"]
    assert all(hw.memories[f"tpu{k}.sram"].capacity_bytes == 65536 for k in range(3))
    links = {link.name: (link.endpoints, link.bandwidth_bits_per_cycle) for link in hw.links}
    assert links == {
        "mesh.tpu0-tpu1": (("tpu0", "tpu1"), 48), "mesh.tpu1-tpu2": (("tpu1", "tpu2"), 48),
        **{f"{side}.tpu{k}": ((side, f"tpu{k}"), 32) for side in ("pool", "simd") for k in range(3)},
        "dram_bus": (("dram", "tpu0", "tpu1", "tpu2", "pool", "simd"), 128)}
    single = point_accelerator(space, 0)
    assert [c.name for c in single.cores] == ["tpu0", "pool", "simd"]
    assert not [link for link in single.links if link.name.startswith("mesh")]
    # area: 1 vs 3 copies of a 32x32 array with 1024 + 16 register bits per PE and 64 KiB of SRAM
    per_core = 1024 + 64 / 1024 * 64 + 1024 * (1024 + 16) / 8 / 1024 * 0.5
    rest = 72 + 64 + 2 * 128 / 1024 * 64
    assert area_proxy(single, space.area) == pytest.approx(rest + per_core)
    assert area_proxy(hw, space.area) == pytest.approx(rest + 3 * per_core)


def test_a_choice_sets_a_mapping_of_other_parameters_and_constraints_compare_it(tmp_path):
    space = quad_space(tmp_path, {
        "k": {"values": [16, 64]},
        "dataflow": {"choices": {"ws": {"K": "k", "C": 8}, "os": {"K": "k", "OX": 8}},
                     "set": ["cores[tpu*].pe_array.unroll"]}},
        [{"cores": "tpu*", "rows": 2, "cols": 1}], constraints=['dataflow == "ws" or k <= 16'])
    assert space.parameters[1].values == ("ws", "os")
    assert grid_points(space) == [0, 1, 2]  # (64, os) is excluded
    assert point_values(space, 1) == {"k": 16, "dataflow": "os"}
    hw = point_accelerator(space, 1)
    assert [c.unroll for c in hw.cores if c.is_pe_array] == [{"K": 16, "OX": 8}] * 2
    assert point_accelerator(space, 2).core("tpu1").unroll == {"K": 64, "C": 8}


@pytest.mark.parametrize("parameters, replicate, message", [
    ({"n": {"values": [1, 2]}}, [], "parameters.n: changes nothing"),
    ({"n": {"values": [1, 2.5]}}, [{"cores": "tpu*", "rows": 1, "cols": "n"}],
     "replicate\\[0\\].cols: parameter 'n' takes 2.5"),
    ({"n": {"values": [1]}}, [{"cores": "gpu*", "rows": 1, "cols": "n"}], "replicate\\[0\\].cores: no core"),
    ({"n": {"values": [1]}}, [{"cores": "tpu*", "rows": 1, "cols": "m"}], "replicate\\[0\\].cols: 'm' is not a parameter"),
    ({"d": {"choices": {"a": {"K": 8}}, "values": [1], "set": ["clock_hz"]}}, [],
     "parameters.d: give exactly one of values, range or choices"),
    ({"d": {"choices": {"a": {"K": 8, "Q": 2}}, "set": ["cores[tpu*].pe_array.unroll"]}}, [],
     "quad.yaml: point 0: cores\\[\\d\\].pe_array.unroll.Q: unknown key"),
])
def test_bad_replications_and_choices_name_the_key(tmp_path, parameters, replicate, message):
    with pytest.raises(InputError, match=message):
        quad_space(tmp_path, parameters, replicate)


def test_the_readme_design_space_example_runs(monkeypatch, capsys):
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    block = re.search(r"<!-- example: design space -->\s*```python\n(.*?)```", (root / "README.md").read_text(), re.S)
    assert block, "the README lost its design-space example"
    monkeypatch.chdir(root)
    exec(compile(block.group(1), "README.md", "exec"), {})
    front, _, total = capsys.readouterr().out.split()[:3]
    assert 1 <= int(front) <= int(total) <= 20


def test_the_rule_plan_fuses_each_matmul_with_the_relu_after_it(tmp_path):
    """mm -> relu -> mm2 on the toy: the rule stacks {mm, relu} and leaves mm2 alone; the point's
    latency is the two stacks' prices run one after the other."""
    from monet_opt.model.cost import CostTable
    from monet_opt.families.fusion.space import priced
    from monet_opt.studies.design_sweep import point_plan

    g = GraphBuilder("mlp")
    y = g.matmul("mm2", g.relu("relu", g.matmul("mm", g.input("x", (64, 32)), g.weight("w", (32, 32)))),
                 g.weight("w2", (32, 32)))
    graph = g.build([y])
    space = load_space(write_space(tmp_path, {"k": {"values": [32], "set": ["cores[pe].pe_array.unroll.K"]}}))
    hw = point_accelerator(space, 0)
    table = CostTable(graph, hw)
    plan = point_plan(graph, table, "rule").plan
    assert sorted(plan.stacks.values()) == [("mm", "relu"), ("mm2",)]
    [rule] = evaluate_point(space, 0, {"inference": graph}, "rule")
    assert rule.feasible
    assert rule.latency_cycles == priced(table, ("mm", "relu")).latency_cycles + priced(table, ("mm2",)).latency_cycles
    [default] = evaluate_point(space, 0, {"inference": graph})
    assert default.feasible and default.latency_cycles != rule.latency_cycles


def test_the_optimised_plan_is_the_least_edp_partition_by_brute_force(tmp_path):
    """mm -> relu -> mm2 on the toy (one PE core) has four partitions into consecutive stacks; the
    optimised plan (fusion by CP-SAT for the least EDP, or a fixed plan where that is as good) is
    proven optimal and matches the best of the four, each priced stack by stack and run one after
    the other (as the rule plan's test checks)."""
    from monet_opt.model.cost import CostTable
    from monet_opt.schedule import simulate
    from monet_opt.families.fusion.space import plan_of, priced

    g = GraphBuilder("mlp")
    y = g.matmul("mm2", g.relu("relu", g.matmul("mm", g.input("x", (64, 32)), g.weight("w", (32, 32)))),
                 g.weight("w2", (32, 32)))
    graph = g.build([y])
    space = load_space(write_space(tmp_path, {"k": {"values": [32], "set": ["cores[pe].pe_array.unroll.K"]}}))
    table = CostTable(graph, point_accelerator(space, 0))
    partitions = [[("mm",), ("relu",), ("mm2",)], [("mm", "relu"), ("mm2",)], [("mm",), ("relu", "mm2")],
                  [("mm", "relu", "mm2")]]
    measured = []
    for partition in partitions:
        stacks = [priced(table, ops) for ops in partition]
        if all(stacks):
            result = simulate(graph, table.hw, plan_of(graph, stacks), table)
            assert result.latency_cycles == sum(s.latency_cycles for s in stacks)
            measured.append(result.latency_cycles * result.energy_pj)
    assert len(measured) >= 2
    [row] = evaluate_point(space, 0, {"inference": graph}, "optimised", 10.0)
    assert row.plan_status == "optimal" and row.plan_gap == 0.0 and row.plan_used in ("default", "rule", "optimised")
    assert row.latency_cycles * row.energy_pj == pytest.approx(min(measured), rel=1e-9)
    [fixed] = evaluate_point(space, 0, {"inference": graph}, "rule")
    assert fixed.plan_status == "not searched" and fixed.plan_gap is None and fixed.plan_used == "rule"


def test_a_batch_stops_before_a_point_that_would_start_after_the_deadline(tmp_path):
    import time

    from monet_opt.studies.design_sweep import evaluate_points

    space = load_space(write_space(tmp_path, {"k": {"values": [16, 32], "set": ["cores[pe].pe_array.unroll.K"]}}))
    graphs = {"inference": one_matmul()}
    assert evaluate_points(space, [0, 1], graphs, stop_at_epoch_s=time.time() - 1) is None
    rows = evaluate_points(space, [0, 1], graphs, stop_at_epoch_s=time.time() + 60)
    assert [r.index for r in rows] == [0, 1] and rows == evaluate_points(space, [0, 1], graphs)
