"""The `monet` command line: `main.py` (the parser, exit codes, signals) and one module per group of
commands, which read the registry of families (`solving/registry.py`) and nothing else to know the
families and their methods."""

from monet_opt.cli.main import main, run

__all__ = ["main", "run"]
