"""Problem instances: one YAML file says what to train, on which accelerator, under which budgets,
which decisions to optimise and how (`monet solve`).

    kind: training                     (optional) as opposed to the suite's abstract instances (bench.py)
    name: str                          (optional; default: the file's stem)
    suite: quick | full                (optional; default quick) which benchmark suite it belongs to
    workload: MODEL | FILE.onnx        built-in name, or an ONNX file relative to the instance
    batch, seq_len, image_size, classes: int > 0   (optional) workload options
    optimizer: sgd | momentum | adam | adamw   (optional; default adam)
    updates: end | backward            (optional; default end) each optimizer update after the backward
                                       pass, or right after its weight's gradient is complete
    precision: NAME                    (optional; default fp32) fp32, bf16-mixed, fp16-mixed, fp8-mixed;
                                       inference also bf16, fp16, fp8-e4m3, fp8-e5m2, int16, int8
    partial_sum: TYPE                  (optional) MAC partial sums: int16 | int32 | fp16 | bf16 | fp32
    mode: training | inference         (optional; default training)
    hardware: NAME | FILE.yaml         built-in accelerator, or a file relative to the instance
    budgets:                           (optional)
      activations: BYTES | P%          dynamic DRAM (activations, transient gradients); P% of the
                                       unfused store-all peak; needs checkpointing
      local: {MEMORY: BYTES | P%}      local memories below their capacities (P% of the capacity)
    optimise:                          at least one decision
      fusion: {method: cpsat|ga|rule|none, objective: latency|energy|dram|edp, max_stack: int,
               time_limit: s}
      checkpointing: {method: cpsat|ga|greedy|store-all|recompute-all|sqrt, objective: latency|energy|edp,
                      order: fixed|free, time_limit: s}
                                       objective edp: the plan family's only (with allocation,
                                       combine joint)
                                       order: as `monet checkpoint training --order` (default fixed;
                                       free only without optimise.fusion)
      allocation: {method: cpsat|ga|greedy, time_limit: s, spread: bool}
                                       spread (default false): a MAC op alone may also run split
                                       across cores, a fused stack's MAC ops each on its own core;
                                       allocation is then the plan family's (without
                                       checkpointing, all of DRAM its budget)
    combine: sequential | joint        (optional; default sequential)
    time_limit: s                      (optional; default 60) wall clock of the whole solve
    seed: int                          (optional; default 0)

Every key is checked: unknown keys, wrong types, unknown models, hardware or memories and
contradictory options are refused with one line naming the file and the key (exit 2). The methods
a decision accepts are those of the family that decides it in the registry (`Registry.decisions`).

An instance of one family's own (`kind: <family>`, e.g. remat or allocation; `load_any_instance`):

    kind: FAMILY                       a family with an instance format in the registry
    name, suite, time_limit, seed      as above
    ...                                the family's own keys (`InstanceFormat`; remat: graph, budget;
                                       allocation: problem, objective)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monet_opt.errors import InputError
from monet_opt.families import default_registry
from monet_opt.io import check_schema, file_beside, load_data
from monet_opt.model.training.derive import ACCUMULATORS, PRECISIONS, Optimizer, precision_named
from monet_opt.solving.budget import Budget
from monet_opt.solving.contract import Family
from monet_opt.solving.registry import Registry

SUITES = ("quick", "full")
_POSITIVE_INT = {"type": "integer", "exclusiveMinimum": 0}
_POSITIVE_NUMBER = {"type": "number", "exclusiveMinimum": 0}
_AMOUNT = {"type": ["integer", "string"]}
DECISION_KEYS: dict[str, dict[str, Any]] = {"fusion": {"max_stack": _POSITIVE_INT},
                                            "checkpointing": {"order": {"enum": ["fixed", "free"]}},
                                            "allocation": {"spread": {"type": "boolean"}}}
"""The decisions a training instance combines (`pipeline.py`), with the keys of each beyond method,
objective and time_limit; each decision's methods are its family's in the registry."""
OBJECTIVES = {"fusion": ("latency", "energy", "dram", "edp"), "checkpointing": ("latency", "energy", "edp"),
              "allocation": ("latency",)}


def _decision(name: str, registry: Registry) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False,
            "properties": {"method": {"enum": list(registry.for_decision(name).methods)},
                           "objective": {"enum": list(OBJECTIVES[name])}, "time_limit": _POSITIVE_NUMBER,
                           **DECISION_KEYS[name]}}


def instance_schema(registry: Registry) -> dict[str, Any]:
    """The JSON schema of a training instance, its methods read from `registry`."""
    optimise = {name: _decision(name, registry) for name in DECISION_KEYS}
    return {**_SCHEMA, "properties": {**_SCHEMA["properties"], "optimise": {
        "type": "object", "additionalProperties": False, "minProperties": 1, "properties": optimise}}}


_SCHEMA = {
    "type": "object", "additionalProperties": False, "required": ["workload", "hardware", "optimise"],
    "properties": {
        "kind": {"enum": ["training"]},
        "name": {"type": "string", "minLength": 1},
        "suite": {"enum": list(SUITES)},
        "workload": {"type": "string", "minLength": 1},
        "batch": _POSITIVE_INT, "seq_len": _POSITIVE_INT, "image_size": _POSITIVE_INT, "classes": _POSITIVE_INT,
        "optimizer": {"enum": [o.value for o in Optimizer]},
        "updates": {"enum": ["end", "backward"]},
        "precision": {"enum": list(PRECISIONS)},
        "partial_sum": {"enum": [a.value for a in ACCUMULATORS]},
        "mode": {"enum": ["training", "inference"]},
        "hardware": {"type": "string", "minLength": 1},
        "budgets": {"type": "object", "additionalProperties": False,
                    "properties": {"activations": _AMOUNT,
                                   "local": {"type": "object", "additionalProperties": _AMOUNT}}},
        "optimise": {},  # instance_schema
        "combine": {"enum": ["sequential", "joint"]},
        "time_limit": _POSITIVE_NUMBER,
        "seed": {"type": "integer", "minimum": 0},
    },
}


@dataclass(frozen=True)
class Decision:
    """One decision to optimise: its method, objective and time limit (None: a share of the whole)."""

    method: str
    objective: str
    time_limit_s: float | None = None
    max_stack: int = 6  # fusion only
    order: str = "fixed"  # checkpointing only: the ops in the reference order, or the order a decision too
    spread: bool = False  # allocation only: MAC ops split across cores, fused stacks' MAC ops over their class


@dataclass(frozen=True)
class Instance:
    name: str
    source: str  # the file it came from
    suite: str
    workload: str
    batch: int | None
    seq_len: int | None
    image_size: int | None
    classes: int | None
    optimizer: str
    precision: str
    partial_sum: str | None
    mode: str
    hardware: str
    activation_budget: Budget | None  # bytes, or a percentage of the unfused store-all peak
    local_budgets: Mapping[str, Budget] = field(default_factory=dict)  # bytes, or a percentage of the capacity
    decisions: Mapping[str, Decision] = field(default_factory=dict)
    combine: str = "sequential"
    time_limit_s: float = 60.0
    seed: int = 0
    updates: str = "end"  # optimizer update placement (monet_opt.model.training.UpdatePlacement)


def _schema_message(error: Any) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {}))) or "memory names"
        return f"{path + '.' if path else ''}{extra[0]}: unknown key (allowed: {allowed})"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return f"{path + '.' if path else ''}{missing[0]}: missing key"
    if error.validator == "enum":
        return f"{path}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "minProperties":
        return f"{path}: name at least one of {', '.join(DECISION_KEYS)}"
    return f"{path or 'top level'}: {error.message}"


def _amount(value: Any, where: str) -> Budget:
    """A budget, parsed once: an integer of bytes, or a percentage (InputError naming `where`)."""
    return Budget.parse(str(value), where)


@dataclass(frozen=True)
class FamilyInstance:
    """An instance of one family's own format (`kind: <family>`): its problem and target, read once."""

    name: str
    source: str
    suite: str
    family: Family
    problem: Any
    target: Any
    time_limit_s: float = 60.0
    seed: int = 0


_COMMON_KEYS = frozenset({"kind", "name", "suite", "time_limit", "seed"})


def load_any_instance(path: str | Path, registry: Registry | None = None) -> Instance | FamilyInstance:
    """A training instance, or an instance of a family's own (module docstring), by its `kind`."""
    path = Path(path)
    source = str(path)
    data = load_data(path)
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: expected a mapping at the top level")
    registry = registry or default_registry()
    kind = data.get("kind", "training")
    kinds = registry.instance_kinds()
    if kind == "training":
        return _training_instance(path, data, registry)
    if kind not in kinds:
        raise InputError(f"{source}: kind: expected one of {', '.join(['training', *kinds])}, got {kind!r}")
    family = kinds[kind]
    assert family.instance_format is not None
    own = family.instance_format
    allowed = _COMMON_KEYS | own.keys
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputError(f"{source}: {unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(own.required - set(data))
    if missing:
        raise InputError(f"{source}: {missing[0]}: missing key")
    suite = data.get("suite", "quick")
    if suite not in SUITES:
        raise InputError(f"{source}: suite: expected quick or full, got {suite!r}")
    time_limit = data.get("time_limit", 60)
    if isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or not 0 < time_limit < math.inf:
        raise InputError(f"{source}: time_limit: expected a number > 0, got {time_limit!r}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"{source}: seed: expected an integer >= 0, got {seed!r}")
    problem, target = own.load(data, path.parent, source)
    return FamilyInstance(str(data.get("name", path.stem)), source, suite, family, problem, target, float(time_limit),
                          seed)


def load_instance(path: str | Path, registry: Registry | None = None) -> Instance:
    """The training instance in `path`, checked (module docstring); InputError naming the file and key."""
    path = Path(path)
    source = str(path)
    data = load_data(path)
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: expected a mapping at the top level")
    if data.get("kind", "training") != "training":
        raise InputError(f"{source}: kind: {data['kind']!r} is an instance of a family's own: `monet solve` solves it "
                         "with --method; this reader takes kind: training")
    return _training_instance(path, data, registry or default_registry())


def _training_instance(path: Path, data: Mapping[str, Any], registry: Registry) -> Instance:
    source = str(path)
    check_schema(data, instance_schema(registry), source, _schema_message)
    budgets = data.get("budgets", {})
    optimise = data["optimise"]
    mode = data.get("mode", "training")
    if "activations" in budgets and "checkpointing" not in optimise:
        raise InputError(f"{source}: budgets.activations: needs optimise.checkpointing (what keeps activations "
                         "within it)")
    if "checkpointing" in optimise and mode == "inference":
        raise InputError(f"{source}: optimise.checkpointing: mode inference has no backward pass to checkpoint")
    if "checkpointing" in optimise and "activations" not in budgets:
        raise InputError(f"{source}: budgets.activations: missing key (optimise.checkpointing needs a budget)")
    decisions = {}
    for name, settings in optimise.items():
        settings = settings or {}
        decisions[name] = Decision(settings.get("method", "cpsat"), settings.get("objective", "latency"),
                                   settings.get("time_limit"), settings.get("max_stack", 6),
                                   settings.get("order", "fixed"), settings.get("spread", False))
    if "checkpointing" in decisions and decisions["checkpointing"].order == "free" and "fusion" in decisions:
        raise InputError(f"{source}: optimise.checkpointing.order: free is built for unfused plans only "
                         "(drop optimise.fusion or use order: fixed)")
    if "checkpointing" in decisions and decisions["checkpointing"].objective == "edp" and (
            "allocation" not in decisions or data.get("combine", "sequential") != "joint"):
        raise InputError(f"{source}: optimise.checkpointing.objective: edp is the parallel plan's (optimise.allocation "
                         "with combine: joint); the serial checkpoint plan minimises latency or energy")
    if "checkpointing" in decisions and "fusion" in decisions \
            and decisions["checkpointing"].objective != decisions["fusion"].objective:
        raise InputError(f"{source}: optimise.checkpointing.objective: {decisions['checkpointing'].objective!r} "
                         f"contradicts optimise.fusion.objective {decisions['fusion'].objective!r}")
    try:
        precision_named(data.get("precision", "fp32"), mode == "training", data.get("partial_sum"))
    except InputError as e:
        raise InputError(f"{source}: precision: {e}") from None
    base = path.parent

    def relative(key: str, builtin: tuple[str, ...]) -> str:
        """A file reference (a name with a suffix) relative to the instance's directory, never the
        current one; a built-in name as it is. InputError naming the key for a missing file or an
        unknown name."""
        value = data[key]
        if not Path(value).suffix:
            if value not in builtin:
                raise InputError(f"{source}: {key}: unknown built-in {value!r} (one of {', '.join(builtin)}; or a "
                                 "file relative to the instance)")
            return value
        return str(file_beside(base, value, source, key))

    from monet_opt.model.hardware import builtin_hardware
    from monet_opt.model.workload import BUILTIN_MODELS

    return Instance(
        name=data.get("name", path.stem), source=source, suite=data.get("suite", "quick"),
        workload=relative("workload", tuple(BUILTIN_MODELS)), batch=data.get("batch"), seq_len=data.get("seq_len"),
        image_size=data.get("image_size"), classes=data.get("classes"), optimizer=data.get("optimizer", "adam"),
        precision=data.get("precision", "fp32"), partial_sum=data.get("partial_sum"), mode=mode,
        hardware=relative("hardware", tuple(builtin_hardware())),
        activation_budget=(None if "activations" not in budgets
                           else _amount(budgets["activations"], f"{source}: budgets.activations")),
        local_budgets={m: _amount(v, f"{source}: budgets.local.{m}") for m, v in budgets.get("local", {}).items()},
        decisions=decisions, combine=data.get("combine", "sequential"), time_limit_s=float(data.get("time_limit", 60)),
        seed=int(data.get("seed", 0)), updates=data.get("updates", "end"),
    )
