"""Errors that reach the user as one line and a distinct exit code.

`InputError` (exit 2): the input is malformed, inconsistent or unknown; the message names the file,
key path or node and the problem. `InfeasibleError` (exit 3): the input is well-formed but the
problem has no solution; the message says why and by how much.
"""

from __future__ import annotations


class MonetError(Exception):
    """Base of every error monet_opt reports to a user; `exit_code` is the CLI's exit status."""

    exit_code: int = 1


class InputError(MonetError):
    """Bad input: malformed file, unknown name, inconsistent shapes, cyclic graph."""

    exit_code = 2


class InfeasibleError(MonetError):
    """A well-formed problem without a solution (e.g. a memory budget below the smallest feasible)."""

    exit_code = 3
