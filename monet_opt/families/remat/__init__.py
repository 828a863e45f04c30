"""Rematerialisation of abstract graphs: problems, the family and its methods."""

from monet_opt.families.remat.family import REMAT, remat_family, solve_remat
from monet_opt.families.remat.problem import RematProblem, chain_problem, evaluate_schedule, load_problem

__all__ = ["REMAT", "RematProblem", "chain_problem", "evaluate_schedule", "load_problem", "remat_family",
           "solve_remat"]
