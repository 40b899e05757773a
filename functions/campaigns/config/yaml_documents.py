"""YAML campaign files: PyYAML's safe loader, refusing a key given twice.

A module of its own so that PyYAML is imported only where a YAML file is read (the
campaign loader), never by the functions that read published files, which are JSON.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml

from functions.campaigns.config.errors import CampaignFileError

__all__ = ["load_yaml"]


def _yaml_error(message: str) -> CampaignFileError:
    return CampaignFileError([{"path": "$", "message": message}])


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (plain data only) that refuses a key given twice in one mapping.

    Plain YAML keeps the last value silently, so a second `reward:` would quietly replace
    the first. Keys merged in with `<<:` may still be overridden, as YAML intends.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"found the key '{key_node.value}' twice",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """The document of a YAML campaign file; `CampaignFileError` at its line and column."""
    try:
        # A SafeLoader subclass: no Python objects are ever constructed from the file.
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = "; ".join(part for part in (error.context, error.problem) if part)
        raise _yaml_error(f"not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise _yaml_error(f"not valid YAML: {error}") from None
