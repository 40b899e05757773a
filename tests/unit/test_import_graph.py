"""Imports between the packages of `functions/` run one way, and rules stay pure.

The graph (docs/architecture.md, "Packages and owners"):

    core  <-  campaigns  <-  offers, claims, wallet
    core  <-  notifications, analytics

A domain may import only the packages listed for it in `ALLOWED`; two domains never
import each other, and core imports no domain. Every import counts: at module level,
inside a function (the lazy imports that keep cold starts short) and under
``TYPE_CHECKING``. Modules of pure rules (`PURE`) reach no AWS client or PynamoDB,
directly or through what they import.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"

# What each package may import besides itself. Changing this is an architecture
# decision: write it in docs/architecture.md with the reason.
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset(),
    "campaigns": frozenset({"core"}),
    "offers": frozenset({"core", "campaigns"}),
    "claims": frozenset({"core", "campaigns"}),
    "wallet": frozenset({"core", "campaigns"}),
    "notifications": frozenset({"core"}),
    "analytics": frozenset({"core", "campaigns"}),
}

# Modules of rules with no I/O, by dotted name or package prefix (ending in ".").
PURE: tuple[str, ...] = (
    "functions.campaigns.logic",
    "functions.campaigns.rewards",
    "functions.campaigns.codes",
    "functions.campaigns.states",
    "functions.campaigns.config",
    "functions.campaigns.config.",
    "functions.offers.logic",
    "functions.offers.errors",
    "functions.offers.qr",
    "functions.wallet.logic",
    "functions.wallet.errors",
    "functions.claims.logic",
    "functions.claims.errors",
    "functions.claims.receipts",
    "functions.notifications.consent",
    "functions.notifications.messages",
    "functions.notifications.rendering",
    "functions.notifications.sms",
    "functions.notifications.mime",
    "functions.notifications.qr",
    "functions.notifications.tokens",
    "functions.notifications.contacts",
    "functions.notifications.logic",
    "functions.notifications.errors",
    "functions.analytics.events",
    "functions.analytics.records",
    "functions.analytics.logic",
    "functions.analytics.goals",
    "functions.analytics.domain",
)
IMPURE_ROOTS = frozenset({"boto3", "botocore", "pynamodb"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(
    source: str, module: str, *, is_package: bool, with_names: bool = False
) -> Iterator[str]:
    """Every module `source` (the text of `module`) imports, relative ones resolved;
    `with_names` adds ``module.name`` for each name a ``from`` import takes (it may be a
    submodule: ``from functions.campaigns import budget``)."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            if with_names:
                yield from (f"{target}.{alias.name}" for alias in node.names)


def package_of(module: str) -> str | None:
    """The package of `functions` a module belongs to (``functions.offers.dal``:
    ``offers``), or None outside it."""
    parts = module.split(".")
    if parts[0] != "functions" or len(parts) < 2:
        return None
    return parts[1]


def violations(modules: Iterable[tuple[str, str, bool]]) -> list[str]:
    """``importer -> imported`` for every import `ALLOWED` does not permit."""
    found = []
    for module, source, is_package in modules:
        own = package_of(module)
        if own is None:
            continue
        for target in imported_modules(source, module, is_package=is_package):
            other = package_of(target)
            if other is None or other == own:
                continue
            if other not in ALLOWED.get(own, frozenset()):
                found.append(f"{module} -> {target}")
    return sorted(set(found))


def project_modules() -> list[tuple[str, str, bool]]:
    return [
        (module_name(path), path.read_text(encoding="utf-8"), path.name == "__init__.py")
        for path in sorted(FUNCTIONS.rglob("*.py"))
    ]


def test_every_package_of_functions_has_its_place_in_the_graph() -> None:
    packages = {path.name for path in FUNCTIONS.iterdir() if (path / "__init__.py").exists()}
    assert packages == set(ALLOWED)


def test_imports_between_packages_run_one_way() -> None:
    assert violations(project_modules()) == []


def test_the_graph_has_no_cycle_and_core_is_its_floor() -> None:
    # A permitted cycle would let two domains import each other through the table.
    visiting: set[str] = set()

    def depth(package: str) -> int:
        assert package not in visiting, f"cycle through {package}"
        visiting.add(package)
        deepest = max((depth(other) + 1 for other in ALLOWED[package]), default=0)
        visiting.discard(package)
        return deepest

    assert depth("core") == 0
    assert {package: depth(package) for package in ALLOWED} == {
        "core": 0,
        "campaigns": 1,
        "offers": 2,
        "claims": 2,
        "wallet": 2,
        "notifications": 1,
        "analytics": 2,
    }


def test_the_graph_in_use_is_the_documented_one() -> None:
    """The edges the code has today, so the doc and this test cannot drift apart."""
    edges = set()
    for module, source, is_package in project_modules():
        own = package_of(module)
        for target in imported_modules(source, module, is_package=is_package):
            other = package_of(target)
            if own is not None and other is not None and other != own:
                edges.add(f"{own} -> {other}")
    documented = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for edge in sorted(edges):
        assert f"`{edge}`" in documented, f"{edge} is not in docs/architecture.md"


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        (
            "functions.campaigns.dal",
            "from functions.offers.models import CodeIssue\n",
            ["functions.campaigns.dal -> functions.offers.models"],
        ),
        (
            "functions.offers.dal",
            "def lazy():\n    from functions.wallet import ledger\n",
            ["functions.offers.dal -> functions.wallet"],
        ),
        (
            "functions.core.api",
            "import typing\nif typing.TYPE_CHECKING:\n    import functions.offers.dal\n",
            ["functions.core.api -> functions.offers.dal"],
        ),
        ("functions.offers.dal", "from ..campaigns import budget\n", []),
        (
            "functions.campaigns.dal",
            "from ..offers import models\n",
            ["functions.campaigns.dal -> functions.offers"],
        ),
        ("functions.offers.dal", "from functions.campaigns.models import Code\n", []),
    ],
)
def test_the_check_catches_what_it_is_for(module: str, source: str, expected: list[str]) -> None:
    assert violations([(module, source, False)]) == expected


def _closure(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        current = pending.pop()
        for target in graph.get(current, ()):
            if target not in seen:
                seen.add(target)
                pending.append(target)
    return seen


def test_rules_reach_no_aws_client_nor_pynamodb() -> None:
    modules = {module: (source, is_package) for module, source, is_package in project_modules()}
    graph: dict[str, set[str]] = {}
    for module, (source, is_package) in modules.items():
        graph[module] = {
            target
            for target in imported_modules(source, module, is_package=is_package, with_names=True)
            if target in modules or target.split(".")[0] in IMPURE_ROOTS
        }
    pure = [
        m for m in modules if any(m == p or (p.endswith(".") and m.startswith(p)) for p in PURE)
    ]
    assert "functions.offers.logic" in pure and "functions.campaigns.codes" in pure
    reached = {
        module: sorted(t for t in _closure(module, graph) if t.split(".")[0] in IMPURE_ROOTS)
        for module in pure
    }
    assert {module: impure for module, impure in reached.items() if impure} == {}
