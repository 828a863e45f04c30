"""The analytical cost model (see monet_opt.model.cost.model for every formula)."""

from monet_opt.model.cost.model import Cost, CostTable, Unavailable, price

__all__ = ["Cost", "CostTable", "Unavailable", "price"]
