"""Plans and the validation scheduler that simulates them."""

from monet_opt.schedule.plan import Plan, Residency, check_plan_input, default_plan
from monet_opt.schedule.simulate import (
    CheckReport, Claim, SimulationResult, TaskRecord, TransferRecord, Violation, check, insert_recomputation, simulate,
)

__all__ = [
    "CheckReport", "Claim", "Plan", "Residency", "SimulationResult", "TaskRecord", "TransferRecord", "Violation",
    "check", "check_plan_input", "default_plan", "insert_recomputation", "simulate",
]
