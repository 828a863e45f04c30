"""The registry of decision families: what `monet` can solve. The command line, the instance files
and the benchmark suite read it, and nothing else lists families or methods; a new family is one
`with_family` line in `families.default_registry`, a new method one `Method` in its family. A
registry is a value: a caller (a test, a script) extends it and passes it on, nothing global changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from monet_opt.errors import InputError
from monet_opt.solving.contract import Family, Method


@dataclass(frozen=True)
class Registry:
    """`families`: name -> family, in the order `--help` lists them; `decisions`: the key under a
    training instance's `optimise:` -> the name of the family that decides it."""

    families: Mapping[str, Family] = field(default_factory=dict)
    decisions: Mapping[str, str] = field(default_factory=dict)

    def with_family(self, family: Family, decision: str | None = None) -> Registry:
        """This registry with `family` added (or replaced), deciding `optimise.<decision>` when named."""
        decisions = dict(self.decisions) if decision is None else {**self.decisions, decision: family.name}
        return replace(self, families={**self.families, family.name: family}, decisions=decisions)

    def with_method(self, family_name: str, method: Method) -> Registry:
        """This registry with one more method (or one replaced) in the family named `family_name`."""
        return self.with_family(self.family(family_name).with_method(method))

    def family(self, name: str) -> Family:
        if name not in self.families:
            raise InputError(f"unknown family {name!r} (one of {', '.join(self.families)})")
        return self.families[name]

    def for_decision(self, decision: str) -> Family:
        """The family that decides `optimise.<decision>` of a training instance."""
        return self.family(self.decisions[decision])

    def instance_kinds(self) -> dict[str, Family]:
        """The families with instance files of their own, by name (an instance's `kind`)."""
        return {name: f for name, f in self.families.items() if f.instance_format is not None}
