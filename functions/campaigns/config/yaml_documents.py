"""YAML campaign files: PyYAML's safe loader, refusing a key given twice, reading
timestamps as text, and reporting any value it cannot read at its line.

A module of its own so that PyYAML is imported only where a YAML file is read (the
campaign loader), never by the functions that read published files, which are JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import Any, Final

import yaml

from functions.campaigns.config.errors import CampaignFileError, too_many_digits

__all__ = ["load_yaml"]

_STANDARD_TAGS: Final = "tag:yaml.org,2002:"
_TIMESTAMP: Final = f"{_STANDARD_TAGS}timestamp"
_INT: Final = f"{_STANDARD_TAGS}int"
# A value shown in a message is cut to this many characters.
_SHOWN: Final = 40


def _yaml_error(message: str) -> CampaignFileError:
    return CampaignFileError([{"path": "$", "message": message}])


def _unreadable(node: yaml.Node) -> yaml.constructor.ConstructorError:
    tag = node.tag.replace(_STANDARD_TAGS, "!!", 1)
    if isinstance(node, yaml.ScalarNode):
        value = node.value if len(node.value) <= _SHOWN else f"{node.value[:_SHOWN]}..."
        problem = f"cannot read {value!r} as {tag}"
    else:
        problem = f"cannot read this value as {tag}"
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (plain data only) that refuses a key given twice in one mapping.

    Plain YAML keeps the last value silently, so a second `reward:` would quietly replace
    the first. Keys merged in with `<<:` may still be overridden, as YAML intends.

    Timestamps stay text, tagged ``!!timestamp`` or not, so that the campaign's instant
    type reads them exactly as it reads JSON's and reports a bad one at its field's path.
    PyYAML's own timestamps take forms RFC 3339 refuses (``T9:00``, an offset of ``+09``)
    and fail on impossible dates (February 30) with a bare ValueError.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # Some of PyYAML's constructors fail with plain errors on a value they cannot read
        # (`!!int twelve`, `!!bool maybe`, `!!float ''`): each is the file's mistake, at
        # the line of its value, as a syntax error is.
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception:
            raise _unreadable(node) from None

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            # Python reads at most this many decimal digits (a guard against slow parsing).
            limit = sys.get_int_max_str_digits()
            if limit and sum(char.isdigit() for char in node.value) > limit:
                raise yaml.constructor.ConstructorError(
                    None, None, too_many_digits(limit), node.start_mark
                ) from None
            raise

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

    def construct_timestamp_as_text(self, node: yaml.ScalarNode) -> str:
        return self.construct_scalar(node)


# The loader's own tables (PyYAML's are shared by every loader class): no implicit
# timestamps, and explicit ones (`!!timestamp`) read as text too.
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_constructor(_TIMESTAMP, _UniqueKeyLoader.construct_timestamp_as_text)
_UniqueKeyLoader.add_constructor(_INT, _UniqueKeyLoader.construct_yaml_int)


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
    except RecursionError:
        raise  # the caller reports a file nested too deeply, for YAML as for JSON
    except Exception as error:
        # Whatever else PyYAML raises on a file is still the file's mistake: it gets a
        # report, never a failed invocation retried into the loader's DLQ.
        raise _yaml_error(f"not valid YAML: {error}") from None
