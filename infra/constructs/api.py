"""The storefront HTTP API: one API Gateway REST API, every route under `/v1`.

Path and stage: the stage is `prod` and the resources carry the `/v1` prefix
themselves, so a route is served at `{ApiUrl}/v1/...` where `ApiUrl` is the stage URL
without a trailing slash (`https://{id}.execute-api.{region}.amazonaws.com/prod`).
The local cloud serves the same paths at `http://127.0.0.1:3000/v1/...` with the same
proxy events (resource `/v1/...`, stage `prod`), so handlers and clients see one shape.
A later `/v2` is a sibling resource, not a new stage.

Storefronts authenticate with an API key tied to a usage plan (throttling); every
method requires the key except `GET /v1/health`. Operator routes use IAM (SigV4).

Bad input is never a 5xx (DESIGN "HTTP API"), so any 5xx of the stage pages the
operators: a handler crashed, timed out, or a function could not be invoked.

What API Gateway answers itself (a missing key, throttling, a body over 10 MB, a path no
route serves, a failed integration) is in the contract's error shape too, through one
gateway response per type (`GATEWAY_RESPONSES`), each carrying API Gateway's request id:
the id the function logs carry as their correlation id. The local cloud answers from
the same resources of the synthesized template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.alarms import ERROR_PERIOD
from infra.constructs.platform import LOG_RETENTION, DomainFunction, Platform
from infra.constructs.resources import acknowledge

STAGE_NAME = "prod"
BASE_PATH = "/v1"
# Per-key limits for a storefront (usage plan) and a stage-wide ceiling that also
# covers the keyless health route.
KEY_RATE_LIMIT, KEY_BURST_LIMIT = 100, 200
STAGE_RATE_LIMIT, STAGE_BURST_LIMIT = 500, 1000


@dataclass(frozen=True)
class GatewayAnswer:
    """What API Gateway answers for one gateway response type, in the contract's shape."""

    response_type: str  # API Gateway's name, e.g. INVALID_API_KEY
    # API Gateway's own status for the type; None for DEFAULT_4XX/DEFAULT_5XX, which keep
    # the status of the error they stand in for.
    status: str | None
    code: str
    # Fixed text, or None for API Gateway's own message (`$context.error.messageString`).
    message: str | None
    headers: tuple[tuple[str, str], ...] = ()


# `$context.error.messageString` is API Gateway's message already quoted as a JSON string;
# the rest are plain text substituted into quoted strings.
_QUOTED_MESSAGE: Final = "$context.error.messageString"

GATEWAY_RESPONSES: Final[tuple[GatewayAnswer, ...]] = (
    # A missing key and a wrong one are the same type: API Gateway cannot tell them apart.
    GatewayAnswer(
        "INVALID_API_KEY",
        "403",
        "invalid_api_key",
        "The x-api-key header is missing or is not a valid key.",
    ),
    # An unknown path or method, and an IAM-authorised route called without a signature.
    GatewayAnswer(
        "MISSING_AUTHENTICATION_TOKEN",
        "403",
        "route_not_found",
        "No route serves this method and path (an operator route also needs a "
        "SigV4-signed request).",
    ),
    GatewayAnswer("ACCESS_DENIED", "403", "forbidden", "This caller may not call this route."),
    GatewayAnswer(
        "INVALID_SIGNATURE",
        "403",
        "invalid_signature",
        "The request's SigV4 signature does not match the request.",
    ),
    GatewayAnswer(
        "EXPIRED_TOKEN", "403", "expired_token", "The request's AWS credentials have expired."
    ),
    GatewayAnswer(
        "THROTTLED",
        "429",
        "throttled",
        "Too many requests: retry after a short wait.",
        headers=(("Retry-After", "1"),),
    ),
    GatewayAnswer(
        "REQUEST_TOO_LARGE",
        "413",
        "payload_too_large",
        "The request is over API Gateway's 10 MB limit.",
    ),
    GatewayAnswer(
        "BAD_REQUEST_BODY",
        "400",
        "invalid_request",
        "The request body does not match what the route takes.",
    ),
    GatewayAnswer(
        "BAD_REQUEST_PARAMETERS",
        "400",
        "invalid_request",
        "A request parameter the route needs is missing or invalid.",
    ),
    GatewayAnswer(
        "INTEGRATION_TIMEOUT",
        "504",
        "integration_timeout",
        "The route's function did not answer in time.",
    ),
    GatewayAnswer(
        "INTEGRATION_FAILURE",
        "504",
        "integration_failure",
        "API Gateway could not reach the route's function.",
    ),
    GatewayAnswer("DEFAULT_4XX", None, "request_refused", None),
    # A function that failed or answered something that is not a proxy response (502).
    GatewayAnswer("DEFAULT_5XX", None, "internal_error", "Something went wrong on our side."),
)


def error_template(answer: GatewayAnswer) -> str:
    """The `application/json` template of a gateway response: the contract's error shape.

    The details name the request (its id, as in the functions' logs and API Gateway's
    access log) and, for the defaults, the type API Gateway answered with.
    """
    details = {"requestId": "$context.requestId"}
    if answer.status is None:
        details["responseType"] = "$context.error.responseType"
    message = answer.message if answer.message is not None else _QUOTED_MESSAGE
    body = {"error": {"code": answer.code, "message": message, "details": details}}
    text = json.dumps(body)
    if answer.message is None:
        text = text.replace(json.dumps(_QUOTED_MESSAGE), _QUOTED_MESSAGE)
    return text


_API_KEY_REASON = (
    "Storefronts call server to server with an API key bound to a usage plan "
    "(DESIGN 'Who uses it'); there is no end user to hold a Cognito token."
)


class Api(Construct):
    """The REST API, its stage, usage plan and key, and the route helper."""

    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        self._platform = platform
        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION)
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="Rebates storefront API",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            # Execution logging (below) needs API Gateway's account-level CloudWatch
            # role; the stack creates it instead of relying on a manual console step.
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
                # Errors only, and never request/response bodies: they carry customer data.
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                throttling_rate_limit=STAGE_RATE_LIMIT,
                throttling_burst_limit=STAGE_BURST_LIMIT,
            ),
        )
        # RestApi adds its own URL output; the stack's outputs are the contract's keys only.
        self.rest_api.node.try_remove_child("Endpoint")
        cloud_watch_role = self.rest_api.node.find_child("CloudWatchRole")
        acknowledge(
            cloud_watch_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role: AWS's managed policy is the documented "
            "one and API Gateway names the execution log groups itself.",
        )
        acknowledge(
            self.rest_api.deployment_stage,
            "AwsSolutions-APIG3",
            "Server-to-server API behind per-key usage-plan throttling and a stage-wide "
            "ceiling; a WAF web ACL is an account-level edge decision outside this stack.",
        )
        self.server_error_alarm = platform.operators.alarm_above_zero(
            self,
            "ServerErrorAlarm",
            metric=self.rest_api.deployment_stage.metric_server_error(
                period=ERROR_PERIOD, statistic=cloudwatch.Stats.SUM
            ),
            description="The storefront API answered 5xx. Find the failed requests in the API "
            "functions' logs (level ERROR), then each request's lines by its correlation id.",
        )
        self.validator = self.rest_api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        plan = self.rest_api.add_usage_plan(
            "StorefrontPlan",
            description="Storefronts: per-key throttling",
            throttle=apigw.ThrottleSettings(rate_limit=KEY_RATE_LIMIT, burst_limit=KEY_BURST_LIMIT),
            api_stages=[
                apigw.UsagePlanPerApiStage(api=self.rest_api, stage=self.rest_api.deployment_stage)
            ],
        )
        # API Gateway generates the value; it is read from API Gateway, never an output.
        self.api_key = self.rest_api.add_api_key(
            "StorefrontKey", description="Rebates storefront key"
        )
        plan.add_api_key(self.api_key)
        for answer in GATEWAY_RESPONSES:
            self.rest_api.add_gateway_response(
                _pascal(answer.response_type),
                type=apigw.ResponseType.of(answer.response_type),
                status_code=answer.status,
                # Header values are static mapping expressions: quoted.
                response_headers={name: f"'{value}'" for name, value in answer.headers} or None,
                templates={"application/json": error_template(answer)},
            )

        self.health = DomainFunction(
            self,
            "Health",
            platform=platform,
            domain="core",
            handler="functions.core.health.handler",
            description="GET /v1/health",
            memory_size=256,
        )
        self.add_route(
            "GET",
            "/v1/health",
            self.health,
            api_key_required=False,
            public_reason="Liveness probe, public by contract ('no key needed'); it returns "
            "only status and version.",
        )

    @property
    def url(self) -> str:
        """The stage URL without a trailing slash: routes are `{url}/v1/...`."""
        stack = Stack.of(self)
        return (
            f"https://{self.rest_api.rest_api_id}.execute-api.{stack.region}."
            f"{stack.url_suffix}/{STAGE_NAME}"
        )

    def add_route(
        self,
        method: str,
        path: str,
        fn: DomainFunction,
        *,
        api_key_required: bool = True,
        iam: bool = False,
        public_reason: str | None = None,
    ) -> apigw.Method:
        """Serve `method path` (e.g. `POST /v1/claims/{claimId}/review`) with `fn`.

        Lambda proxy integration; requests are validated; the API key is required
        unless `api_key_required=False`; `iam=True` makes it an IAM-authorised route.
        A route with neither key nor IAM is public and must say why (`public_reason`):
        the reason becomes its cdk-nag acknowledgment.
        """
        if not path.startswith(f"{BASE_PATH}/"):
            raise ValueError(f"{path}: every route lives under {BASE_PATH}/")
        public = not api_key_required and not iam
        if public != (public_reason is not None):
            raise ValueError(
                f"{method} {path}: public_reason is required exactly for public routes"
            )
        resource = self.rest_api.root.resource_for_path(path)
        route = resource.add_method(
            method.upper(),
            apigw.LambdaIntegration(fn.function, allow_test_invoke=False),
            api_key_required=api_key_required,
            authorization_type=apigw.AuthorizationType.IAM if iam else apigw.AuthorizationType.NONE,
            request_validator=self.validator,
        )
        if iam:
            acknowledge(
                route,
                "AwsSolutions-COG4",
                "Operator route authorised with IAM (SigV4); operators are not Cognito users.",
            )
        else:
            reason = public_reason or _API_KEY_REASON
            acknowledge(route, "AwsSolutions-APIG4", reason)
            acknowledge(route, "AwsSolutions-COG4", reason)
        return route


def _pascal(response_type: str) -> str:
    """`INVALID_API_KEY` -> `InvalidApiKeyResponse` (a construct id)."""
    return "".join(part.capitalize() for part in response_type.split("_")) + "Response"
