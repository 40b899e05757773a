"""API Gateway REST APIs, and the routes and gateway responses the local API serves."""

from __future__ import annotations

import re
from typing import Any, Final

from infra.local.deploy.core import (
    DeployContext,
    camel,
    camel_fields,
    function_name_of,
    json_text,
    of_type,
    pick,
    resource_name,
    tag_map,
)
from infra.local.deploy.records import Deployed, Deployment, GatewayResponseRecord, Route
from infra.local.template import TemplateError


def deploy_rest_api(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    if any(key in properties for key in ("Body", "BodyS3Location", "CloneFrom")):
        raise TemplateError("OpenAPI-defined REST APIs are not supported locally")
    apigateway = context.client("apigateway")
    request: dict[str, Any] = {
        "name": resource_name(context, logical_id, properties.get("Name"), limit=128),
        **camel_fields(
            properties,
            "Description",
            "ApiKeySourceType",
            "BinaryMediaTypes",
            "MinimumCompressionSize",
            "DisableExecuteApiEndpoint",
        ),
    }
    if "ApiKeySourceType" in properties:  # the API names it apiKeySource
        request["apiKeySource"] = request.pop("apiKeySourceType")
    if "EndpointConfiguration" in properties:
        request["endpointConfiguration"] = camel(properties["EndpointConfiguration"])
    if "Policy" in properties:
        request["policy"] = json_text(properties["Policy"])
    if "Tags" in properties:
        request["tags"] = tag_map(properties)
    api = apigateway.create_rest_api(**request)
    return Deployed(api["id"], {"RestApiId": api["id"], "RootResourceId": api["rootResourceId"]})


def deploy_api_resource(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    resource = context.client("apigateway").create_resource(
        restApiId=properties["RestApiId"],
        parentId=properties["ParentId"],
        pathPart=properties["PathPart"],
    )
    return Deployed(resource["id"], {"ResourceId": resource["id"]})


_INTEGRATION_FIELDS: Final = (
    "Type",
    "IntegrationHttpMethod",
    "Uri",
    "Credentials",
    "RequestParameters",
    "RequestTemplates",
    "PassthroughBehavior",
    "ContentHandling",
    "TimeoutInMillis",
    "CacheNamespace",
    "CacheKeyParameters",
    "ConnectionType",
    "ConnectionId",
)


def deploy_api_method(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # moto implements no proxy integrations (FIELD-NOTES "moto"): the method and its
    # integration are created so `aws apigateway` shows them, and the local API serves
    # the route from Deployment.routes.
    apigateway = context.client("apigateway")
    where = {
        "restApiId": properties["RestApiId"],
        "resourceId": properties["ResourceId"],
        "httpMethod": properties["HttpMethod"],
    }
    apigateway.put_method(
        **where,
        authorizationType=properties.get("AuthorizationType", "NONE"),
        **camel_fields(
            properties,
            "ApiKeyRequired",
            "AuthorizerId",
            "AuthorizationScopes",
            "OperationName",
            "RequestParameters",
            "RequestModels",
            "RequestValidatorId",
        ),
    )
    integration = properties.get("Integration")
    if integration:
        integration_request = camel_fields(integration, *_INTEGRATION_FIELDS)
        apigateway.put_integration(**where, **integration_request)
    physical_id = "|".join(where.values())
    return Deployed(physical_id)


def deploy_request_validator(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    validator = context.client("apigateway").create_request_validator(
        restApiId=properties["RestApiId"],
        name=resource_name(context, logical_id, properties.get("Name"), limit=128),
        **camel_fields(properties, "ValidateRequestBody", "ValidateRequestParameters"),
    )
    return Deployed(validator["id"], {"RequestValidatorId": validator["id"]})


def deploy_api_deployment(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # moto refuses a deployment of an API with no method or integration, like AWS;
    # CDK makes the Deployment depend on every Method, so they exist by now.
    deployment = context.client("apigateway").create_deployment(
        restApiId=properties["RestApiId"],
        **camel_fields(properties, "Description", "StageName"),
    )
    return Deployed(deployment["id"], {"DeploymentId": deployment["id"]})


def deploy_api_stage(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # MethodSettings (throttling, logging) and AccessLogSetting have no local effect.
    request: dict[str, Any] = {
        "restApiId": properties["RestApiId"],
        "stageName": properties.get("StageName") or context.physical_name(logical_id, limit=128),
        "deploymentId": properties["DeploymentId"],
        **camel_fields(
            properties,
            "Description",
            "Variables",
            "TracingEnabled",
            "CacheClusterEnabled",
            "CacheClusterSize",
        ),
    }
    if "Tags" in properties:
        request["tags"] = tag_map(properties)
    context.client("apigateway").create_stage(**request)
    return Deployed(request["stageName"])


def deploy_api_key(context: DeployContext, logical_id: str, properties: dict[str, Any]) -> Deployed:
    # moto generates the key's value (as API Gateway does) unless the template gives one;
    # Deployment.api_key_value reads it back with includeValue=True.
    request: dict[str, Any] = {
        "name": resource_name(context, logical_id, properties.get("Name"), limit=128),
        **camel_fields(
            properties, "Description", "Enabled", "GenerateDistinctId", "Value", "CustomerId"
        ),
    }
    if "StageKeys" in properties:
        request["stageKeys"] = camel(properties["StageKeys"])
    if "Tags" in properties:
        request["tags"] = tag_map(properties)
    key = context.client("apigateway").create_api_key(**request)
    return Deployed(key["id"], {"APIKeyId": key["id"]})


def deploy_usage_plan(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # Throttling and quotas are stored, not enforced, by moto and the local API.
    request: dict[str, Any] = {
        "name": resource_name(context, logical_id, properties.get("UsagePlanName"), limit=128),
        **camel(pick(properties, "Description", "ApiStages", "Throttle", "Quota")),
    }
    if "Tags" in properties:
        request["tags"] = tag_map(properties)
    plan = context.client("apigateway").create_usage_plan(**request)
    return Deployed(plan["id"], {"Id": plan["id"]})


def deploy_usage_plan_key(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    key = context.client("apigateway").create_usage_plan_key(
        usagePlanId=properties["UsagePlanId"],
        keyId=properties["KeyId"],
        keyType=properties["KeyType"],
    )
    return Deployed(key["id"], {"Id": key["id"]})


def deploy_gateway_response(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # Stored in moto (`aws apigateway get-gateway-responses` lists them); the local API
    # answers with them from Deployment.gateway_responses.
    request: dict[str, Any] = {
        "restApiId": properties["RestApiId"],
        "responseType": properties["ResponseType"],
        **camel_fields(properties, "StatusCode", "ResponseParameters", "ResponseTemplates"),
    }
    context.client("apigateway").put_gateway_response(**request)
    return Deployed(f"{properties['RestApiId']}|{properties['ResponseType']}")


_LAMBDA_INTEGRATION_URI: Final = re.compile(
    r":lambda:path/[^/]+/functions/(?P<arn>.+)/invocations$"
)


def routes(deployment: Deployment) -> list[Route]:
    paths = _resource_paths(deployment)
    routes = []
    for logical_id, _ in of_type(deployment, "AWS::ApiGateway::Method"):
        properties = deployment.properties[logical_id]
        integration = properties.get("Integration") or {}
        match = _LAMBDA_INTEGRATION_URI.search(str(integration.get("Uri", "")))
        if integration.get("Type") != "AWS_PROXY" or match is None:
            continue
        routes.append(
            Route(
                method=str(properties["HttpMethod"]).upper(),
                path=paths[str(properties["ResourceId"])],
                function_name=function_name_of(deployment, match.group("arn")),
                api_key_required=bool(properties.get("ApiKeyRequired", False)),
                authorization_type=str(properties.get("AuthorizationType", "NONE")),
            )
        )
    return routes


def gateway_responses(deployment: Deployment) -> dict[str, GatewayResponseRecord]:
    """Response type -> what the template declares API Gateway answers for it."""
    responses = {}
    for logical_id, _ in of_type(deployment, "AWS::ApiGateway::GatewayResponse"):
        properties = deployment.properties[logical_id]
        status = properties.get("StatusCode")
        record = GatewayResponseRecord(
            response_type=str(properties["ResponseType"]),
            status_code=str(status) if status is not None else None,
            templates={
                str(k): str(v) for k, v in (properties.get("ResponseTemplates") or {}).items()
            },
            parameters={
                str(k): str(v) for k, v in (properties.get("ResponseParameters") or {}).items()
            },
        )
        responses[record.response_type] = record
    return responses


def _resource_paths(deployment: Deployment) -> dict[str, str]:
    """API Gateway resource id -> its path (`/v1/claims/{claimId}`), roots being `/`."""
    parents: dict[str, tuple[str, str]] = {}
    for logical_id, deployed in of_type(deployment, "AWS::ApiGateway::Resource"):
        properties = deployment.properties[logical_id]
        parents[deployed.physical_id] = (str(properties["ParentId"]), str(properties["PathPart"]))

    def path(resource_id: str) -> str:
        if resource_id not in parents:  # a RestApi's root resource
            return ""
        parent, part = parents[resource_id]
        return f"{path(parent)}/{part}"

    roots = {
        d.attributes["RootResourceId"] for _, d in of_type(deployment, "AWS::ApiGateway::RestApi")
    }
    return {resource_id: path(resource_id) or "/" for resource_id in [*parents, *roots]}


def api_key_value(context: DeployContext, deployment: Deployment) -> str | None:
    keys = of_type(deployment, "AWS::ApiGateway::ApiKey")
    if not keys:
        return None
    key = context.client("apigateway").get_api_key(apiKey=keys[0][1].physical_id, includeValue=True)
    return str(key["value"])
