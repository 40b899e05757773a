"""What each kind of campaign needs, the goals it can reach and what each code mode
takes, as tables.

The rules (`campaign`, `rules`) and the JSON Schema's conditionals are both generated
from these tables, so what an editor suggests and what publishing accepts cannot differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, get_args

from functions.core.vocabulary import CampaignKind


@dataclass(frozen=True)
class _SectionKinds:
    required_for: frozenset[str]
    allowed_for: frozenset[str]
    purpose: str


_ALL_KINDS: Final = frozenset(get_args(CampaignKind))
# Which kinds of campaign need or take each optional section. The rule (in `campaign`)
# and the JSON Schema's conditionals below are both generated from this table.
SECTION_KINDS: Final[Mapping[str, _SectionKinds]] = {
    "reward": _SectionKinds(frozenset({"rebate", "cashback"}), _ALL_KINDS, "what a customer earns"),
    "claims": _SectionKinds(
        frozenset({"rebate"}), frozenset({"rebate"}), "how claims are verified"
    ),
    "cashback": _SectionKinds(frozenset({"cashback"}), _ALL_KINDS, "when cashback is spendable"),
    "offers": _SectionKinds(frozenset({"offer"}), _ALL_KINDS, "at least one offer"),
}


# The goals only some kinds can reach, with what they count (the others suit every kind).
# The rule (in `campaign`) and the JSON Schema's conditionals below both read it.
GOAL_KINDS: Final[Mapping[str, tuple[frozenset[str], str]]] = {
    "claims_approved": (frozenset({"rebate"}), "only rebates take claims"),
}


def add_kind_schema(schema: dict[str, Any]) -> None:
    """The sections each kind needs or refuses, and the goals it refuses, as draft-07
    conditionals (for editors)."""
    conditions = []
    for kind in sorted(_ALL_KINDS):
        required = sorted(s for s, k in SECTION_KINDS.items() if kind in k.required_for)
        refused = sorted(s for s, k in SECTION_KINDS.items() if kind not in k.allowed_for)
        refused_goals = sorted(g for g, (kinds, _) in GOAL_KINDS.items() if kind not in kinds)
        then: dict[str, Any] = {"required": required} if required else {}
        if refused:
            then["not"] = {"anyOf": [{"required": [section]} for section in refused]}
        if refused_goals:
            then["properties"] = {
                "goals": {"not": {"anyOf": [{"required": [goal]} for goal in refused_goals]}}
            }
        when = {"required": ["kind"], "properties": {"kind": {"const": kind}}}
        conditions.append({"if": when, "then": then})
    schema["allOf"] = conditions


# Which keys each code mode takes (besides `mode`): required, then optional. The rules
# and the JSON Schema are both generated from this table.
CODE_MODE_KEYS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "unique": (("count",), ("prefix",)),
    "shared": (("code",), ()),
}


def code_modes_schema() -> dict[str, Any]:
    every_key = {
        key for required, optional in CODE_MODE_KEYS.values() for key in (*required, *optional)
    }
    return {
        "oneOf": [
            {
                "properties": {"mode": {"const": mode}},
                "required": ["mode", *required],
                "not": {
                    "anyOf": [
                        {"required": [key]} for key in sorted(every_key - {*required, *optional})
                    ]
                },
            }
            for mode, (required, optional) in CODE_MODE_KEYS.items()
        ]
    }
