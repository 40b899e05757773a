"""Reading a campaign file (YAML or JSON, within caps on size and expansion) and
validating its document with every error at once (`parse_campaign`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any, Final

from pydantic import ValidationError

from functions.campaigns.config.campaign import DEFER_RULES, CampaignConfig, rule_problems
from functions.campaigns.config.document import read_field
from functions.campaigns.config.errors import (
    CampaignFileError,
    described,
    shape_problems,
    too_many_digits,
)

# Campaign files are a few kilobytes; the caps keep a hostile or broken upload (a YAML
# alias bomb expands exponentially while staying small) from exhausting the loader.
MAX_FILE_BYTES: Final = 1024 * 1024
_MAX_VALUES: Final = 100_000


def _file_error(message: str) -> CampaignFileError:
    return CampaignFileError([{"path": "$", "message": message}])


def parse_campaign(document: Any) -> CampaignConfig:
    """Validate a loaded campaign document (a mapping); raise with every error found."""
    if not isinstance(document, Mapping):
        what = "empty" if document is None else f"a {type(document).__name__}"
        raise _file_error(f"a campaign file is a mapping of keys (id, name, kind, ...), not {what}")
    problems = rule_problems(document)
    try:
        config = CampaignConfig.model_validate(document, context={DEFER_RULES: True})
    except ValidationError as error:
        problems = [*shape_problems(error), *problems]
    else:
        if not problems:
            return config
    campaign_id = read_field(document, CampaignConfig, "id")
    raise CampaignFileError(described(problems), campaign_id)


def _load_yaml(text: str) -> Any:
    # Imported here: PyYAML is the loader's alone, and the API reads files as JSON.
    from functions.campaigns.config.yaml_documents import load_yaml

    return load_yaml(text)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"found the key '{key}' twice in one object")
        document[key] = value
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _bounded_int(digits: str) -> int:
    try:
        return int(digits)
    except ValueError:
        # JSON's grammar leaves one way for int() to fail: more digits than Python reads.
        raise ValueError(too_many_digits(sys.get_int_max_str_digits())) from None


def _load_json(text: str) -> Any:
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_pairs,
            parse_constant=_no_constant,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as error:
        raise _file_error(
            f"not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except ValueError as error:
        raise _file_error(f"not valid JSON: {error}") from None


_LOADERS: Final[Mapping[str, Callable[[str], Any]]] = {
    ".yaml": _load_yaml,
    ".yml": _load_yaml,
    ".json": _load_json,
}
_SUFFIXES_HINT: Final = "use .yaml, .yml or .json"


def read_campaign_document(name: str, content: bytes) -> Any:
    """The document in a campaign file, by its name's suffix (.yaml, .yml or .json, in
    any case).

    Not validated yet (that is `parse_campaign`): a loader may read the ``id`` of a file
    it rejects. Unreadable files raise `CampaignFileError` with a ``$`` error.
    """
    path = PurePosixPath(name)
    suffix = path.suffix.lower()  # DESIGN: the suffix in any case
    loader = _LOADERS.get(suffix)
    if loader is None:
        if not suffix:
            raise _file_error(f"the file name '{path.name}' has no type: {_SUFFIXES_HINT}")
        raise _file_error(f"unsupported file type '{path.suffix}': {_SUFFIXES_HINT}")
    if len(content) > MAX_FILE_BYTES:
        raise _file_error(f"the file is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _file_error(f"the file is not UTF-8 text (byte {error.start})") from None
    try:
        document = loader(text)
    except RecursionError:
        raise _file_error("the file is nested too deeply") from None
    if _expands_beyond(document, _MAX_VALUES):
        raise _file_error(f"the file holds more than {_MAX_VALUES} values once expanded")
    return document


def _expands_beyond(document: Any, limit: int) -> bool:
    # YAML aliases share one object between many places (or point back at themselves),
    # so the size that matters is the number of values reached, counted with repeats.
    pending, seen = [document], 0
    while pending:
        value = pending.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False


def load_campaign_file(name: str, content: bytes) -> CampaignConfig:
    """Read and validate a campaign file; raise `CampaignFileError` with every error."""
    return parse_campaign(read_campaign_document(name, content))
