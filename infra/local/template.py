"""Read a synthesized CloudFormation template and resolve its intrinsics locally.

The local cloud deploys the template resource by resource (moto's CloudFormation
cannot deploy a CDK template whole), so it needs what CloudFormation itself does:
the order in which resources can be created (`deployment_order`) and the values of
`Ref`, `Fn::GetAtt`, `Fn::Sub`, ... once the resources they name exist (`Resolver`).

Everything a template could need but the local cloud cannot give (cross-stack
imports, an intrinsic it does not know) is a `TemplateError` naming the resource,
and `check_intrinsics` finds such problems before anything is deployed.
"""

from __future__ import annotations

import base64
import heapq
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

DEFAULT_REGION: Final = "ap-northeast-1"
# moto's default account: ARNs built here must match the ones moto returns.
DEFAULT_ACCOUNT_ID: Final = "123456789012"
DEFAULT_STACK_NAME: Final = "Rebates"

NO_VALUE_REF: Final = "AWS::NoValue"
_PSEUDO_PARAMETERS: Final = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        NO_VALUE_REF,
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)
# `${Name}` or `${Logical.Attr}`; `${!Literal}` is written out as `${Literal}`.
_SUB_VARIABLE: Final = re.compile(r"\$\{([^}]*)\}")
# Zones that exist, where a region's letters are not simply a, b, c.
_AVAILABILITY_ZONE_LETTERS: Final = {"ap-northeast-1": "acd"}


class TemplateError(Exception):
    """The template asks for something the local cloud cannot resolve or order."""


class _NoValue:
    """`Ref: AWS::NoValue`: the property (or list element) holding it is removed."""

    def __repr__(self) -> str:
        return NO_VALUE_REF


NO_VALUE: Final = _NoValue()


def load_template(path: Path) -> dict[str, Any]:
    """The template at `path` (a synthesized `cdk.out/<Stack>.template.json`)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise TemplateError(f"{path}: cannot read the template: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources)")
    return data


def resources_of(template: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template.get("Resources", {})
    return resources


def _intrinsic(value: Any) -> tuple[str, Any] | None:
    """`(name, argument)` when `value` is an intrinsic call (`{"Fn::X": ...}` or `Ref`)."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Ref" or key.startswith("Fn::"):
            return key, argument
    return None


def _split_get_att(argument: Any, resource: str | None) -> tuple[str, Any]:
    """`["A", "B"]` or `"A.B"` (the attribute may itself contain dots) -> (A, B)."""
    if isinstance(argument, str) and "." in argument:
        logical_id, attribute = argument.split(".", 1)
        return logical_id, attribute
    if isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str):
        return argument[0], argument[1]
    raise TemplateError(f"{resource or 'template'}: malformed Fn::GetAtt {argument!r}")


def _sub_parts(argument: Any, resource: str | None) -> tuple[str, Mapping[str, Any]]:
    """`Fn::Sub` as (text, variables): both the string and the [string, vars] forms."""
    if isinstance(argument, str):
        return argument, {}
    if (
        isinstance(argument, list)
        and len(argument) == 2
        and isinstance(argument[0], str)
        and isinstance(argument[1], dict)
    ):
        return argument[0], argument[1]
    raise TemplateError(f"{resource or 'template'}: malformed Fn::Sub {argument!r}")


def _sub_names(text: str) -> Iterator[str]:
    """The variable names `${...}` in an `Fn::Sub` text, literals (`${!...}`) excluded."""
    for match in _SUB_VARIABLE.finditer(text):
        name = match.group(1)
        if not name.startswith("!"):
            yield name


# Dependencies --------------------------------------------------------------------------


def _referenced_names(value: Any, resource: str | None) -> Iterator[str]:
    """Every logical id or parameter name `value` refers to (Ref, GetAtt, Sub)."""
    call = _intrinsic(value)
    if call is not None:
        name, argument = call
        if name == "Ref" and isinstance(argument, str):
            yield argument
            return
        if name == "Fn::GetAtt":
            yield _split_get_att(argument, resource)[0]
            return
        if name == "Fn::Sub":
            text, variables = _sub_parts(argument, resource)
            yield from (
                n.split(".", 1)[0] for n in _sub_names(text) if n.split(".", 1)[0] not in variables
            )
            yield from _referenced_names(dict(variables), resource)
            return
        yield from _referenced_names(argument, resource)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _referenced_names(item, resource)
    elif isinstance(value, list):
        for item in value:
            yield from _referenced_names(item, resource)


def _depends_on(definition: Mapping[str, Any]) -> list[str]:
    depends = definition.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


def resource_dependencies(template: Mapping[str, Any], logical_id: str) -> set[str]:
    """The resources `logical_id` needs first: its references and its DependsOn.

    A name that is neither a resource, a parameter nor a pseudo parameter is an error:
    CloudFormation would refuse the template, and deploying half of it helps nobody.
    """
    resources = resources_of(template)
    definition = resources[logical_id]
    parameters = template.get("Parameters", {})
    referenced = _referenced_names(definition.get("Properties"), logical_id)
    needed: set[str] = set()
    for name in [*referenced, *_depends_on(definition)]:
        if name in resources:
            needed.add(name)
        elif name not in parameters and name not in _PSEUDO_PARAMETERS:
            raise TemplateError(f"{logical_id}: refers to {name!r}, which the template lacks")
    return needed


def inactive_resources(
    template: Mapping[str, Any], resolver: Resolver | None = None
) -> dict[str, str]:
    """Resources whose `Condition` is false -> that condition's name (not deployed)."""
    resolver = resolver or Resolver(template)
    return {
        logical_id: definition["Condition"]
        for logical_id, definition in resources_of(template).items()
        if "Condition" in definition and not resolver.condition(definition["Condition"])
    }


def deployment_order(template: Mapping[str, Any], resolver: Resolver | None = None) -> list[str]:
    """Active resources ordered so each comes after everything it references.

    Ties keep the template's order, so a deployment is reproducible. Resources whose
    Condition is false are left out (`inactive_resources` names them), and so are
    edges to them: a value that really needs one fails when it is resolved.
    """
    inactive = inactive_resources(template, resolver)
    ids = [i for i in resources_of(template) if i not in inactive]
    position = {logical_id: index for index, logical_id in enumerate(ids)}
    needs = {i: resource_dependencies(template, i) - inactive.keys() for i in ids}
    dependants: dict[str, list[str]] = {i: [] for i in ids}
    for logical_id, required in needs.items():
        for other in required:
            dependants[other].append(logical_id)
    waiting = {i: len(needs[i]) for i in ids}
    ready = [(position[i], i) for i in ids if waiting[i] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, logical_id = heapq.heappop(ready)
        order.append(logical_id)
        for dependant in dependants[logical_id]:
            waiting[dependant] -= 1
            if waiting[dependant] == 0:
                heapq.heappush(ready, (position[dependant], dependant))
    if len(order) < len(ids):
        cycle = _find_cycle({i: needs[i] for i in ids if i not in set(order)})
        raise TemplateError(f"dependency cycle between resources: {' -> '.join(cycle)}")
    return order


def _find_cycle(needs: Mapping[str, set[str]]) -> list[str]:
    """One cycle among `needs` (every node left there lies on or leads to a cycle)."""
    path: list[str] = []
    on_path: set[str] = set()
    node = min(needs)
    while node not in on_path:
        path.append(node)
        on_path.add(node)
        node = min(n for n in needs[node] if n in needs)
    return [*path[path.index(node) :], node]


def check_intrinsics(template: Mapping[str, Any]) -> None:
    """Raise for any intrinsic the `Resolver` cannot evaluate, naming its resource.

    Run before deploying, so a template the local cloud cannot resolve changes nothing.
    """
    sections = [
        *((i, d.get("Properties")) for i, d in resources_of(template).items()),
        *((f"output {i}", d.get("Value")) for i, d in template.get("Outputs", {}).items()),
    ]
    for owner, value in sections:
        for name in _intrinsic_names(value):
            if name not in _INTRINSICS:
                raise TemplateError(f"{owner}: intrinsic {name} is not supported locally")
            if name == "Fn::ImportValue":
                raise TemplateError(_import_value_message(owner))


def _intrinsic_names(value: Any) -> Iterator[str]:
    call = _intrinsic(value)
    if call is not None:
        yield call[0]
    if isinstance(value, dict):
        for item in value.values():
            yield from _intrinsic_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from _intrinsic_names(item)


def _import_value_message(owner: str | None) -> str:
    return (
        f"{owner or 'template'}: Fn::ImportValue needs another stack's export; the local "
        "cloud deploys one stack, so pass the value in as a parameter instead"
    )


# Resolution ----------------------------------------------------------------------------


class Resolver:
    """Evaluates intrinsics against the resources deployed so far.

    `record` each resource as it is created; `resolve` then turns properties into
    plain JSON values, dropping whatever resolves to `AWS::NoValue`.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        stack_name: str = DEFAULT_STACK_NAME,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self._parameters = dict(parameters or {})
        self._physical: dict[str, str] = {}
        self._attributes: dict[str, dict[str, str]] = {}
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()
        self._pseudo = {
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::Region": region,
            "AWS::StackName": stack_name,
            "AWS::StackId": (
                f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/"
                f"{uuid.uuid5(uuid.NAMESPACE_URL, stack_name)}"
            ),
            "AWS::URLSuffix": "amazonaws.com",
        }

    def record(self, logical_id: str, physical_id: str, attributes: Mapping[str, str]) -> None:
        """`logical_id` now exists: Ref gives `physical_id`, GetAtt reads `attributes`."""
        self._physical[logical_id] = physical_id
        self._attributes[logical_id] = dict(attributes)

    def resolve(self, value: Any, *, resource: str | None = None) -> Any:
        """`value` with every intrinsic evaluated; `resource` names errors' owner."""
        resolved = self._resolve(value, resource)
        return None if resolved is NO_VALUE else resolved

    # References -------------------------------------------------------------------

    def ref(self, name: str, resource: str | None = None) -> Any:
        if name == NO_VALUE_REF:
            return NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._physical:
            return self._physical[name]
        if name in resources_of(self.template):
            raise TemplateError(f"{resource or 'template'}: {name} is not deployed (yet)")
        return self._parameter(name, resource)

    def get_att(self, logical_id: str, attribute: str, resource: str | None = None) -> str:
        if logical_id not in self._attributes:
            raise TemplateError(
                f"{resource or 'template'}: Fn::GetAtt {logical_id}.{attribute}: "
                f"{logical_id} is not deployed (yet)"
            )
        attributes = self._attributes[logical_id]
        if attribute not in attributes:
            known = ", ".join(sorted(attributes)) or "none"
            raise TemplateError(
                f"{resource or 'template'}: Fn::GetAtt {logical_id}.{attribute}: the local "
                f"cloud knows no such attribute (known: {known})"
            )
        return attributes[attribute]

    def _parameter(self, name: str, resource: str | None) -> Any:
        parameters = self.template.get("Parameters", {})
        if name in self._parameters:
            return self._parameters[name]
        if name in parameters and "Default" in parameters[name]:
            # CDK's BootstrapVersion is an SSM parameter type: its default (the SSM
            # path) stands for the value; only the CDK Rules read it, never resources.
            return parameters[name]["Default"]
        if name in parameters:
            raise TemplateError(f"{resource or 'template'}: parameter {name} has no value")
        raise TemplateError(f"{resource or 'template'}: Ref to unknown name {name!r}")

    # Conditions -------------------------------------------------------------------

    def condition(self, name: str) -> bool:
        """The named entry of `Conditions`, evaluated once."""
        if name not in self._conditions:
            conditions = self.template.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(f"unknown condition {name!r}")
            if name in self._evaluating:
                raise TemplateError(f"condition {name!r} refers to itself")
            self._evaluating.add(name)
            try:
                self._conditions[name] = self._evaluate(conditions[name], f"condition {name}")
            finally:
                self._evaluating.discard(name)
        return self._conditions[name]

    def _evaluate(self, expression: Any, owner: str) -> bool:
        call = _intrinsic(expression)
        if isinstance(expression, dict) and set(expression) == {"Condition"}:
            return self.condition(expression["Condition"])
        if call is None:
            raise TemplateError(f"{owner}: not a condition: {expression!r}")
        name, argument = call
        if name == "Fn::Equals":
            left, right = (self._resolve(item, owner) for item in argument)
            return _comparable(left) == _comparable(right)
        if name == "Fn::Not":
            return not self._evaluate(argument[0], owner)
        if name == "Fn::And":
            return all(self._evaluate(item, owner) for item in argument)
        if name == "Fn::Or":
            return any(self._evaluate(item, owner) for item in argument)
        raise TemplateError(f"{owner}: {name} is not a condition function")

    # Evaluation -------------------------------------------------------------------

    def _resolve(self, value: Any, resource: str | None) -> Any:
        call = _intrinsic(value)
        if call is not None:
            name, argument = call
            handler = _INTRINSICS.get(name)
            if handler is None:
                raise TemplateError(
                    f"{resource or 'template'}: intrinsic {name} is not supported locally"
                )
            try:
                return handler(self, argument, resource)
            except (ValueError, TypeError, IndexError, AttributeError) as error:
                # An argument of the wrong shape (`Fn::Join: ["x"]`, ...).
                raise TemplateError(
                    f"{resource or 'template'}: malformed {name} {argument!r}: {error}"
                ) from error
        if isinstance(value, dict):
            items = ((k, self._resolve(v, resource)) for k, v in value.items())
            return {k: v for k, v in items if v is not NO_VALUE}
        if isinstance(value, list):
            resolved = (self._resolve(item, resource) for item in value)
            return [item for item in resolved if item is not NO_VALUE]
        return value

    def _string(self, value: Any, resource: str | None, where: str) -> str:
        resolved = self._resolve(value, resource)
        if isinstance(resolved, bool):
            return str(resolved).lower()
        if isinstance(resolved, str | int | float):
            return str(resolved)
        raise TemplateError(f"{resource or 'template'}: {where} needs a string, got {resolved!r}")

    def _list(self, value: Any, resource: str | None, where: str) -> list[Any]:
        resolved = self._resolve(value, resource)
        if not isinstance(resolved, list):
            raise TemplateError(f"{resource or 'template'}: {where} needs a list, got {resolved!r}")
        return resolved

    def _fn_ref(self, argument: Any, resource: str | None) -> Any:
        return self.ref(self._string(argument, resource, "Ref"), resource)

    def _fn_get_att(self, argument: Any, resource: str | None) -> str:
        logical_id, attribute = _split_get_att(argument, resource)
        return self.get_att(logical_id, self._string(attribute, resource, "Fn::GetAtt"), resource)

    def _fn_join(self, argument: Any, resource: str | None) -> str:
        delimiter, items = argument
        parts = self._list(items, resource, "Fn::Join")
        return self._string(delimiter, resource, "Fn::Join").join(
            self._string(part, resource, "Fn::Join") for part in parts
        )

    def _fn_sub(self, argument: Any, resource: str | None) -> str:
        text, variables = _sub_parts(argument, resource)
        values = {
            k: self._string(v, resource, f"Fn::Sub variable {k}") for k, v in variables.items()
        }

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in values:
                return values[name]
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute, resource)
            return self._string(self.ref(name, resource), resource, f"Fn::Sub ${{{name}}}")

        return _SUB_VARIABLE.sub(substitute, text)

    def _fn_select(self, argument: Any, resource: str | None) -> Any:
        index, items = argument
        values = self._list(items, resource, "Fn::Select")
        position = int(self._string(index, resource, "Fn::Select"))
        if not 0 <= position < len(values):
            raise TemplateError(
                f"{resource or 'template'}: Fn::Select index {position} outside {values!r}"
            )
        return values[position]

    def _fn_split(self, argument: Any, resource: str | None) -> list[str]:
        delimiter, text = argument
        return self._string(text, resource, "Fn::Split").split(
            self._string(delimiter, resource, "Fn::Split")
        )

    def _fn_if(self, argument: Any, resource: str | None) -> Any:
        name, when_true, when_false = argument
        return self._resolve(when_true if self.condition(name) else when_false, resource)

    def _fn_base64(self, argument: Any, resource: str | None) -> str:
        text = self._string(argument, resource, "Fn::Base64")
        return base64.b64encode(text.encode()).decode()

    def _fn_get_azs(self, argument: Any, resource: str | None) -> list[str]:
        region = self._string(argument, resource, "Fn::GetAZs") or self.region
        return [f"{region}{letter}" for letter in _AVAILABILITY_ZONE_LETTERS.get(region, "abc")]

    def _fn_find_in_map(self, argument: Any, resource: str | None) -> Any:
        names = [self._string(item, resource, "Fn::FindInMap") for item in argument[:3]]
        try:
            return self.template["Mappings"][names[0]][names[1]][names[2]]
        except KeyError:
            raise TemplateError(
                f"{resource or 'template'}: Fn::FindInMap {names!r} is not in Mappings"
            ) from None

    def _fn_condition_function(self, argument: Any, resource: str | None) -> Any:
        raise TemplateError(
            f"{resource or 'template'}: condition functions belong in Conditions or Fn::If"
        )

    def _fn_import_value(self, argument: Any, resource: str | None) -> Any:
        raise TemplateError(_import_value_message(resource))


def _comparable(value: Any) -> str:
    """Fn::Equals compares strings: 1, "1" and true/"true" are alike."""
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else str(value)


_Intrinsic = Callable[[Resolver, Any, str | None], Any]
_INTRINSICS: Final[dict[str, _Intrinsic]] = {
    "Ref": Resolver._fn_ref,
    "Fn::GetAtt": Resolver._fn_get_att,
    "Fn::Join": Resolver._fn_join,
    "Fn::Sub": Resolver._fn_sub,
    "Fn::Select": Resolver._fn_select,
    "Fn::Split": Resolver._fn_split,
    "Fn::If": Resolver._fn_if,
    "Fn::Base64": Resolver._fn_base64,
    "Fn::GetAZs": Resolver._fn_get_azs,
    "Fn::FindInMap": Resolver._fn_find_in_map,
    "Fn::ImportValue": Resolver._fn_import_value,
    # Only meaningful inside Conditions (evaluated by Resolver.condition).
    "Fn::Equals": Resolver._fn_condition_function,
    "Fn::Not": Resolver._fn_condition_function,
    "Fn::And": Resolver._fn_condition_function,
    "Fn::Or": Resolver._fn_condition_function,
}
