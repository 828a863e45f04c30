"""Memory budgets as a user gives them, and the one rule that turns them into model units."""

from __future__ import annotations

import math
from dataclasses import dataclass

from monet_opt.errors import InputError

LARGEST_BUDGET = 2**62
"""Above this an absolute budget cannot be represented in the exact models (64-bit integers)."""


@dataclass(frozen=True)
class Budget:
    """An amount of memory: absolute (`amount` in the problem's memory unit: bytes for training
    graphs, the graph's own unit for abstract graphs) or `amount` percent of a reference peak (the
    store-all peak for an activation budget, the capacity for a local memory)."""

    amount: float
    is_percent: bool

    @staticmethod
    def parse(text: str, source: str = "--budget") -> Budget:
        """"1200", "1.5e6" or "80%"; InputError (naming `source`) for anything else, a negative or
        non-finite amount, a percentage above 100 or an absolute amount above LARGEST_BUDGET."""
        text = str(text).strip()
        is_percent = text.endswith("%")
        try:
            amount = float(text[:-1] if is_percent else text)
        except ValueError:
            raise InputError(f"{source}: {text!r} is neither a number nor a percentage") from None
        if not math.isfinite(amount) or amount < 0:
            raise InputError(f"{source}: budget {text!r} must be a finite, non-negative amount")
        if is_percent and amount > 100:
            raise InputError(f"{source}: budget {text!r} is above 100 % (store-all, or the whole memory, is 100 %)")
        if not is_percent and amount > LARGEST_BUDGET:
            raise InputError(f"{source}: budget {text!r} is larger than {LARGEST_BUDGET}")
        return Budget(amount, is_percent)

    def resolve(self, reference: int, scale: int = 1) -> int:
        """The budget in model units, rounded down: amount / 100 x `reference` (already in model
        units) for a percentage, amount x `scale` (model units per given unit) otherwise. The 1e-9
        absorbs binary rounding of decimal inputs (80 % of 1000 is 800, not 799)."""
        value = self.amount / 100 * reference if self.is_percent else self.amount * scale
        return int(math.floor(value + 1e-9))

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.is_percent else f"{self.amount:g}"
