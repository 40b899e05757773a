"""Deploying a whole template, as CloudFormation deploys a stack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.local.deploy import apigateway, events, lambda_
from infra.local.deploy.core import (
    DeployContext,
    DeployError,
    UnsupportedResourceError,
    of_type,
)
from infra.local.deploy.records import Deployment
from infra.local.deploy.resource_types import (
    DEPLOYERS,
    NO_OP_TYPES,
    deploy_no_op,
    unsupported_resources,
)
from infra.local.template import (
    Resolver,
    TemplateError,
    check_intrinsics,
    deployment_order,
    inactive_resources,
    resources_of,
)


def deploy(template: dict[str, Any], context: DeployContext) -> Deployment:
    """Deploy every active resource of `template` into moto, in dependency order.

    Everything that can be checked is checked before the first resource is created
    (types, references, cycles, intrinsics), so such a template changes nothing.
    A resource that fails stops the deployment with a `DeployError` naming it.
    """
    if "Transform" in template:
        raise TemplateError("template transforms (e.g. SAM) are not supported locally")
    resolver = Resolver(
        template,
        region=context.region,
        account_id=context.account_id,
        stack_name=context.stack_name,
    )
    deployment = Deployment(skipped=inactive_resources(template, resolver))
    unsupported = unsupported_resources(template, deployment.skipped)
    if unsupported:
        raise UnsupportedResourceError(unsupported)
    order = deployment_order(template, resolver)
    check_intrinsics(template)
    resources = resources_of(template)
    for logical_id in order:
        _deploy_one(context, resolver, deployment, logical_id, resources[logical_id])
    deployment.outputs = _outputs(template, resolver)
    _summarise(context, deployment)
    return deployment


def _deploy_one(
    context: DeployContext,
    resolver: Resolver,
    deployment: Deployment,
    logical_id: str,
    definition: Mapping[str, Any],
) -> None:
    resource_type = str(definition["Type"])
    try:
        properties = resolver.resolve(definition.get("Properties") or {}, resource=logical_id)
        if resource_type in NO_OP_TYPES:
            deployed = deploy_no_op(context, logical_id, resource_type, properties)
            deployment.no_ops.append(logical_id)
        else:
            deployed = DEPLOYERS[resource_type](context, logical_id, properties)
    except Exception as error:
        # boto3's ClientError and ParamValidationError, TemplateError, a missing
        # required property (KeyError): each is reported against its resource.
        raise DeployError(logical_id, resource_type, _describe(error)) from error
    resolver.record(logical_id, deployed.physical_id, deployed.attributes)
    deployment.resources[logical_id] = deployed
    deployment.types[logical_id] = resource_type
    deployment.properties[logical_id] = properties


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing required property {error}"
    return f"{type(error).__name__}: {error}"


def _outputs(template: Mapping[str, Any], resolver: Resolver) -> dict[str, str]:
    outputs: dict[str, str] = {}
    for key, output in template.get("Outputs", {}).items():
        if "Condition" in output and not resolver.condition(output["Condition"]):
            continue
        value = resolver.resolve(output["Value"], resource=f"output {key}")
        outputs[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return outputs


def _summarise(context: DeployContext, deployment: Deployment) -> None:
    """What the local runtime needs, read from what was deployed."""
    deployment.functions = {f.name: f for f in lambda_.function_records(deployment)}
    deployment.queue_mappings = lambda_.queue_mappings(deployment)
    deployment.table_stream_mappings = lambda_.table_stream_mappings(deployment)
    deployment.kinesis_stream_mappings = lambda_.kinesis_stream_mappings(deployment)
    deployment.async_invocations = lambda_.async_invocations(deployment)
    deployment.routes = apigateway.routes(deployment)
    deployment.gateway_responses = apigateway.gateway_responses(deployment)
    deployment.schedules = events.schedules(deployment)
    deployment.state_machines = {
        i: d.physical_id for i, d in of_type(deployment, "AWS::StepFunctions::StateMachine")
    }
    deployment.api_key_value = apigateway.api_key_value(context, deployment)
