"""`CampaignFileError`, and the problems of the shape and of the rules turned into its
``{path, message}`` errors, in the order of the file's sections."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from functions.campaigns.config.campaign import CampaignConfig
from functions.campaigns.config.document import Location, Problem


class CampaignFileError(Exception):
    """A campaign file that cannot be published, with every error found.

    ``errors`` is ``[{"path": "reward.tiered[1].amount", "message": "..."}]`` (path ``$``
    for the file as a whole), in the order of the file's sections. ``campaign_id`` is
    the file's ``id`` when it is a valid one, for reports and events about the file.
    """

    def __init__(self, errors: list[dict[str, str]], campaign_id: str | None = None) -> None:
        super().__init__(errors, campaign_id)
        self.errors = errors
        self.campaign_id = campaign_id

    def __str__(self) -> str:
        return "\n".join(f"{error['path']}: {error['message']}" for error in self.errors)


def too_many_digits(limit: int) -> str:
    """The message for a number longer than Python reads (`sys.get_int_max_str_digits`),
    in a YAML file as in a JSON one."""
    return f"a number of more than {limit} digits"


def shape_problems(error: ValidationError) -> list[Problem]:
    problems = []
    for detail in error.errors(include_url=False):
        location = tuple(detail["loc"])
        if detail["type"] == "extra_forbidden":
            message = _unknown_key_message(location)
        elif detail["type"] == "missing":
            message = "required"
        else:
            message = detail["msg"]
        problems.append(Problem(location, message))
    return problems


def _unknown_key_message(location: Location) -> str:
    known = sorted(_model_fields_at(location[:-1]))
    guesses = difflib.get_close_matches(str(location[-1]), known, n=1)
    if guesses:
        return f"unknown key, did you mean '{guesses[0]}'?"
    return f"unknown key, expected one of: {', '.join(known)}" if known else "unknown key"


def _model_fields_at(location: Location) -> Iterable[str]:
    model: type[BaseModel] | None = CampaignConfig
    for part in location:
        if model is None:
            break
        if isinstance(part, str):  # list indexes keep the list's item model
            field = model.model_fields.get(part)
            model = _model_in(field.annotation) if field else None
    return model.model_fields if model else ()


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def described(problems: list[Problem]) -> list[dict[str, str]]:
    # In the order of the file's sections (field errors and rules interleaved), each once.
    order = {name: index for index, name in enumerate(CampaignConfig.model_fields)}

    def rank(problem: Problem) -> int:
        # `$` first; a key the model does not know after every known one.
        return order.get(str(problem.location[0]), len(order)) if problem.location else -1

    ranked = sorted(dict.fromkeys(problems), key=rank)
    return [{"path": problem.path, "message": problem.message} for problem in ranked]
