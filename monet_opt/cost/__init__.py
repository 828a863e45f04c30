"""The analytical cost model (see monet_opt.cost.model for every formula)."""

from monet_opt.cost.model import Cost, CostTable, Unavailable, price

__all__ = ["Cost", "CostTable", "Unavailable", "price"]
