"""Deploy a synthesized CloudFormation template into moto, resource by resource.

moto's own CloudFormation cannot deploy a CDK template whole (FIELD-NOTES "moto"), so
this package plays CloudFormation's part (`stack.deploy`): it checks every resource type
first (one explicit table of types with no local effect, `NO_OP_TYPES`; anything else it
cannot deploy is an `UnsupportedResourceError` before anything is created), orders the
resources by their references (`infra.local.template.deployment_order`), then creates
each one with the service's own API through boto3, resolving its properties as the
values they reference become known. Each type has one small deployer in `DEPLOYERS`
(`resource_types`) returning what CloudFormation's `Ref` and `Fn::GetAtt` would give;
the deployers live in one module per service, on the shared `core`.

The result, `Deployment` (`records`), also carries what the local runtime needs and
moto does not do itself: the functions with their handlers, environment and
asynchronous invocation settings (retries, destinations, DLQ), the SQS and table stream
mappings it polls, the API routes it serves and the gateway responses it answers with,
the scheduled rules it fires on demand.

moto behaviours this relies on or works around are noted where they matter; the
summary is in the package's tests and `../shared/FIELD-NOTES.md`.
"""

from __future__ import annotations

from infra.local.deploy.apigateway import (
    deploy_api_deployment,
    deploy_api_key,
    deploy_api_method,
    deploy_api_resource,
    deploy_api_stage,
    deploy_gateway_response,
    deploy_request_validator,
    deploy_rest_api,
    deploy_usage_plan,
    deploy_usage_plan_key,
)
from infra.local.deploy.cloudwatch import deploy_alarm
from infra.local.deploy.core import (
    DeployContext,
    Deployer,
    DeployError,
    UnsupportedResourceError,
)
from infra.local.deploy.dynamodb import deploy_table
from infra.local.deploy.events import deploy_event_bus, deploy_rule
from infra.local.deploy.firehose import deploy_delivery_stream
from infra.local.deploy.glue import deploy_glue_database, deploy_glue_table
from infra.local.deploy.iam import deploy_role
from infra.local.deploy.kinesis import deploy_stream
from infra.local.deploy.kms import deploy_kms_key
from infra.local.deploy.lambda_ import (
    deploy_event_invoke_config,
    deploy_event_source_mapping,
    deploy_function,
    deploy_layer,
)
from infra.local.deploy.records import (
    AsyncInvocationRecord,
    Deployed,
    Deployment,
    GatewayResponseRecord,
    KinesisStreamMappingRecord,
    LocalFunctionRecord,
    QueueMappingRecord,
    Route,
    ScheduledRule,
    TableStreamMappingRecord,
)
from infra.local.deploy.resource_types import DEPLOYERS, NO_OP_TYPES, unsupported_resources
from infra.local.deploy.s3 import deploy_bucket, deploy_bucket_notifications
from infra.local.deploy.secretsmanager import deploy_secret
from infra.local.deploy.ses import deploy_email_identity
from infra.local.deploy.sns import deploy_subscription, deploy_topic
from infra.local.deploy.sqs import deploy_queue
from infra.local.deploy.stack import deploy
from infra.local.deploy.stepfunctions import deploy_state_machine, state_machine_definition

__all__ = [
    "DEPLOYERS",
    "NO_OP_TYPES",
    "AsyncInvocationRecord",
    "DeployContext",
    "DeployError",
    "Deployed",
    "Deployer",
    "Deployment",
    "GatewayResponseRecord",
    "KinesisStreamMappingRecord",
    "LocalFunctionRecord",
    "QueueMappingRecord",
    "Route",
    "ScheduledRule",
    "TableStreamMappingRecord",
    "UnsupportedResourceError",
    "deploy",
    "deploy_alarm",
    "deploy_api_deployment",
    "deploy_api_key",
    "deploy_api_method",
    "deploy_api_resource",
    "deploy_api_stage",
    "deploy_bucket",
    "deploy_bucket_notifications",
    "deploy_delivery_stream",
    "deploy_email_identity",
    "deploy_event_bus",
    "deploy_event_invoke_config",
    "deploy_event_source_mapping",
    "deploy_function",
    "deploy_gateway_response",
    "deploy_glue_database",
    "deploy_glue_table",
    "deploy_kms_key",
    "deploy_layer",
    "deploy_queue",
    "deploy_request_validator",
    "deploy_rest_api",
    "deploy_role",
    "deploy_rule",
    "deploy_secret",
    "deploy_state_machine",
    "deploy_stream",
    "deploy_subscription",
    "deploy_table",
    "deploy_topic",
    "deploy_usage_plan",
    "deploy_usage_plan_key",
    "state_machine_definition",
    "unsupported_resources",
]
