"""An import-linter contract type that takes an allow-list: what a layer MAY import from its package.

The architecture guide states each layer's boundary as the few modules it may use. A ``forbidden``
contract lists the complement instead, which silently goes stale: a new top-level module is allowed
everywhere until someone remembers to forbid it. This contract checks every direct import a source
module makes inside the root package against the allow-list, so a new module is forbidden by default.
Imports within the source modules themselves (a layer using its own modules) are always allowed.
Indirect imports need no check here: each allowed module is held to its own contract.

Registered in pyproject.toml (``contract_types``) as ``allowed``; lint-imports runs from the
repository root, which puts this package on its path.
"""

from __future__ import annotations

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck
from importlinter.domain.helpers import module_expressions_to_modules
from importlinter.domain.imports import Module


class AllowedContract(Contract):
    """Source modules import, from their root package, only their own modules and the allowed ones.

    Options: ``source_modules`` and ``allowed_modules`` (module expressions, each treated as a
    package with its descendants); ``allowed_modules`` may be empty (a layer that imports nothing).
    """

    type_name = "allowed"

    source_modules = fields.SetField(subfield=fields.ModuleExpressionField())
    allowed_modules = fields.SetField(subfield=fields.ModuleExpressionField(), required=False)

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        sources = module_expressions_to_modules(graph, self.source_modules, as_packages=True)  # type: ignore[arg-type]
        allowed = module_expressions_to_modules(graph, self.allowed_modules or (), as_packages=True)  # type: ignore[arg-type]
        missing = sorted(m.name for m in sources if m.name not in graph.modules)
        if missing:
            raise ValueError(f"Source modules not found: {', '.join(missing)}")
        permitted = {m.name for m in sources | allowed}
        roots = {m.root_package_name for m in sources}
        violations = []
        for source in sorted(m.name for m in sources):
            for imported in sorted(graph.find_modules_directly_imported_by(source)):
                if Module(imported).root_package_name not in roots or imported in permitted:
                    continue
                lines = sorted(
                    d["line_number"] for d in graph.get_import_details(importer=source, imported=imported)
                )
                violations.append({"importer": source, "imported": imported, "lines": lines})
        output.verbose_print(verbose, f"{len(violations)} import(s) outside the allow-list.")
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for violation in check.metadata["violations"]:
            lines = ", ".join(f"l.{n}" for n in violation["lines"])
            output.print_error(
                f"{violation['importer']} may not import {violation['imported']} ({lines})", bold=False
            )
        output.new_line()
