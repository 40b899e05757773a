"""The notifications wiring: three functions, what each may do, the queues feeding them
(one delayed), the unsubscribe key, the marketers' topic, the routes and the alarms.

The generic checks (DLQs and their alarms, no wildcard actions, nag, one role per
function, every keyless route listed) are in test_stack.py, test_alarms.py and
test_nag.py; these are the notifications' own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk import App, Stack, Validations
from aws_cdk.assertions import Template

from functions.core.event_types import EVENT_TYPES
from functions.core.tables import CUSTOMERS, IDEMPOTENCY
from infra.build import build_all
from infra.constructs.api import Api
from infra.constructs.notifications import (
    API_HANDLER,
    MARKETERS_HANDLER,
    MESSAGES_HANDLER,
    NOTIFIED_DETAIL_TYPES,
    Notifications,
)
from infra.constructs.platform import DeploySettings, Platform
from tests.infra.conftest import Synth
from tests.infra.template_checks import (
    Resources,
    as_list,
    environment_of,
    function_of,
    granted_to,
    keyed_proxy_route,
    method_paths,
    of_type,
    ref_id,
    routes_served_by,
)

HANDLERS = (API_HANDLER, MESSAGES_HANDLER, MARKETERS_HANDLER)
PROFILE_ROUTES = (
    ("GET", "/v1/customers/{customerId}/profile"),
    ("PUT", "/v1/customers/{customerId}/profile"),
)
UNSUBSCRIBE_ROUTES = (("GET", "/v1/unsubscribe"), ("POST", "/v1/unsubscribe"))
# Every role starts with these (DomainFunction): its own log group, and X-Ray.
BASE_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
}
TABLE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}
QUEUE_CONSUMER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}


def _one(resources: Resources, type_: str, prefix: str) -> str:
    (found,) = [k for k in of_type(resources, type_) if k.startswith(prefix)]
    return found


def _arn(name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [name, "Arn"]}


def _secret(resources: Resources) -> str:
    return _one(resources, "AWS::SecretsManager::Secret", "NotificationsUnsubscribeKey")


def _granted(synth: Synth, handler: str) -> dict[str, list[Any]]:
    return granted_to(synth.data["Resources"], handler)


def _normal(granted: dict[str, list[Any]]) -> dict[str, list[str]]:
    """action -> its resources in a fixed order, for comparing."""
    return {action: sorted(map(json.dumps, resources)) for action, resources in granted.items()}


def _beyond_base(granted: dict[str, list[Any]]) -> dict[str, list[str]]:
    """What a role may do besides the base every role has."""
    assert set(granted) >= BASE_ACTIONS
    return _normal({a: r for a, r in granted.items() if a not in BASE_ACTIONS})


def _queue_of_rule(resources: Resources, detail_type: str) -> str:
    """The notifications queue a rule sends `detail_type` to (other domains may consume
    the same type through queues of their own)."""
    (queue,) = [
        ref_id(target["Arn"])
        for rule_id, rule in of_type(resources, "AWS::Events::Rule").items()
        if rule_id.startswith("Notifications")
        and detail_type in rule["Properties"].get("EventPattern", {}).get("detail-type", [])
        for target in rule["Properties"]["Targets"]
    ]
    assert queue is not None
    return queue


def _mapped_queues(resources: Resources, handler: str) -> dict[str, dict[str, Any]]:
    """Queue logical id -> mapping properties, for `handler`'s SQS event sources."""
    function, _ = function_of(resources, handler)
    return {
        str(ref_id(m["Properties"]["EventSourceArn"])): m["Properties"]
        for m in of_type(resources, "AWS::Lambda::EventSourceMapping").values()
        if ref_id(m["Properties"]["FunctionName"]) == function
    }


# -- functions and what each may do -----------------------------------------------------


@pytest.mark.parametrize("handler", HANDLERS)
def test_each_function_is_a_notifications_function(synth: Synth, handler: str) -> None:
    assert environment_of(synth.data["Resources"], handler)["POWERTOOLS_SERVICE_NAME"] == (
        "notifications"
    )


def test_the_api_function_uses_the_customers_table_and_reads_the_key(synth: Synth) -> None:
    resources = synth.data["Resources"]
    expected = {action: [_arn(CUSTOMERS.logical_id)] for action in TABLE_ACTIONS}
    expected["secretsmanager:GetSecretValue"] = [{"Ref": _secret(resources)}]
    assert _beyond_base(_granted(synth, API_HANDLER)) == _normal(expected)


def test_the_messages_function_sends_mail_sms_and_events_and_nothing_else(
    synth: Synth,
) -> None:
    resources = synth.data["Resources"]
    identity = _one(resources, "AWS::SES::EmailIdentity", "NotificationsSenderIdentity")
    (bus,) = of_type(resources, "AWS::Events::EventBus")
    queues = [
        _arn(_queue_of_rule(resources, "ClaimApproved")),
        _arn(_queue_of_rule(resources, "PurchaseRecorded")),
    ]
    expected: dict[str, list[Any]] = {
        action: [_arn(CUSTOMERS.logical_id), _arn(IDEMPOTENCY.logical_id)]
        for action in TABLE_ACTIONS
    }
    expected |= {action: queues for action in QUEUE_CONSUMER_ACTIONS}
    expected["secretsmanager:GetSecretValue"] = [{"Ref": _secret(resources)}]
    expected["events:PutEvents"] = [_arn(bus)]
    expected["sns:Publish"] = ["*"]
    granted = _beyond_base(_granted(synth, MESSAGES_HANDLER))
    (ses_identity,) = _granted(synth, MESSAGES_HANDLER)["ses:SendEmail"]
    assert {"Ref": identity} in ses_identity["Fn::Join"][1]
    assert ses_identity["Fn::Join"][1][-2] == ":identity/"
    del granted["ses:SendEmail"]
    assert granted == _normal(expected)


def test_the_marketers_function_publishes_to_its_topic_only(synth: Synth) -> None:
    resources = synth.data["Resources"]
    topic = _one(resources, "AWS::SNS::Topic", "NotificationsMarketersTopic")
    key = ref_id(resources[topic]["Properties"]["KmsMasterKeyId"])
    assert key is not None
    expected = {action: [_arn(IDEMPOTENCY.logical_id)] for action in TABLE_ACTIONS}
    expected |= {
        action: [_arn(_queue_of_rule(resources, "CampaignRejected"))]
        for action in QUEUE_CONSUMER_ACTIONS
    }
    expected["sns:Publish"] = [{"Ref": topic}]
    # Publishing to a topic encrypted with a customer key takes the key too.
    expected["kms:Decrypt"] = [_arn(key)]
    expected["kms:GenerateDataKey"] = [_arn(key)]
    assert _beyond_base(_granted(synth, MARKETERS_HANDLER)) == _normal(expected)


def test_the_unsubscribe_key_is_read_by_the_api_and_messages_functions_only(
    synth: Synth,
) -> None:
    resources = synth.data["Resources"]
    secret = _secret(resources)
    readers = set()
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"]):
            if secret in json.dumps(statement["Resource"]):
                assert as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
                readers |= {ref_id(role) for role in policy["Properties"]["Roles"]}
    roles = {
        handler: ref_id(function_of(resources, handler)[1]["Properties"]["Role"])
        for handler in HANDLERS
    }
    assert readers == {roles[API_HANDLER], roles[MESSAGES_HANDLER]}


def test_the_unsubscribe_key_is_generated_long_and_its_rotation_explained(
    synth: Synth,
) -> None:
    resources = synth.data["Resources"]
    props = resources[_secret(resources)]["Properties"]
    assert props["GenerateSecretString"] == {"PasswordLength": 64, "ExcludePunctuation": True}
    assert "SecretString" not in props
    secret = synth.stack.node.find_child("Notifications").node.find_child("UnsubscribeKey")
    acknowledged = {
        rule: reason
        for entry in secret.node.metadata
        if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        for rule, reason in entry.data.items()
    }
    # Rotation only (CDK keeps the rule id with a prefix of its own).
    ((rule, reason),) = acknowledged.items()
    assert rule.endswith("AwsSolutions-SMG4")
    assert "unsubscribe links" in reason


def test_each_function_is_told_exactly_what_it_uses(synth: Synth) -> None:
    resources = synth.data["Resources"]
    secret = {"Ref": _secret(resources)}
    topic = {"Ref": _one(resources, "AWS::SNS::Topic", "NotificationsMarketersTopic")}
    (bus,) = of_type(resources, "AWS::Events::EventBus")
    shared = {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "REBATES_VERSION",
        "REBATES_DETAILED_TRACING",
        "PYDANTIC_DISABLE_PLUGINS",
    }

    def own(handler: str) -> dict[str, Any]:
        env = environment_of(resources, handler)
        return {k: v for k, v in env.items() if k not in shared}

    assert own(API_HANDLER) == {
        CUSTOMERS.env_var: {"Ref": CUSTOMERS.logical_id},
        "UNSUBSCRIBE_KEY_SECRET_ARN": secret,
    }
    messages = own(MESSAGES_HANDLER)
    assert messages.pop("UNSUBSCRIBE_URL")
    assert messages == {
        CUSTOMERS.env_var: {"Ref": CUSTOMERS.logical_id},
        IDEMPOTENCY.env_var: {"Ref": IDEMPOTENCY.logical_id},
        "UNSUBSCRIBE_KEY_SECRET_ARN": secret,
        "SENDER_EMAIL": synth.data["Outputs"]["SenderEmail"]["Value"],
        "EVENT_BUS_NAME": {"Ref": bus},
    }
    assert own(MARKETERS_HANDLER) == {
        IDEMPOTENCY.env_var: {"Ref": IDEMPOTENCY.logical_id},
        "MARKETERS_TOPIC_ARN": topic,
    }


def test_the_unsubscribe_url_is_the_stage_url_and_the_route(synth: Synth) -> None:
    url = environment_of(synth.data["Resources"], MESSAGES_HANDLER)["UNSUBSCRIBE_URL"]
    stage = synth.data["Outputs"]["ApiUrl"]["Value"]["Fn::Join"][1]
    assert url["Fn::Join"][1] == [*stage[:-1], stage[-1] + "/v1/unsubscribe"]


# -- routes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROFILE_ROUTES, ids=[m for m, _ in PROFILE_ROUTES])
def test_the_profile_routes_run_the_api_function_behind_the_key(
    synth: Synth, method: str, path: str
) -> None:
    assert keyed_proxy_route(synth.data["Resources"], method, path, API_HANDLER)


@pytest.mark.parametrize(
    ("method", "path"), UNSUBSCRIBE_ROUTES, ids=[m for m, _ in UNSUBSCRIBE_ROUTES]
)
def test_the_unsubscribe_routes_are_public(synth: Synth, method: str, path: str) -> None:
    # Mail clients and people following a link hold no key: the token authorises.
    route = dict(method_paths(synth.data["Resources"]).values())[f"{method} {path}"]
    assert route.get("ApiKeyRequired", False) is False
    assert route["AuthorizationType"] == "NONE"
    assert route["Integration"]["Type"] == "AWS_PROXY"


def test_the_api_function_serves_the_profile_and_unsubscribe_routes_only(
    synth: Synth,
) -> None:
    served = routes_served_by(synth.data["Resources"], API_HANDLER)
    assert served == {f"{m} {p}" for m, p in (*PROFILE_ROUTES, *UNSUBSCRIBE_ROUTES)}


# -- queues -------------------------------------------------------------------------------


def test_every_rule_names_known_event_types(synth: Synth) -> None:
    resources = synth.data["Resources"]
    for rule_id in of_type(resources, "AWS::Events::Rule"):
        if rule_id.startswith("Notifications"):
            pattern = resources[rule_id]["Properties"]["EventPattern"]
            assert set(pattern["detail-type"]) <= set(EVENT_TYPES), rule_id
            assert pattern["source"] == [{"prefix": "rebates."}], rule_id


def test_the_messages_function_reads_customer_events_and_the_delayed_purchases(
    synth: Synth,
) -> None:
    resources = synth.data["Resources"]
    events = _queue_of_rule(resources, "ClaimApproved")
    purchases = _queue_of_rule(resources, "PurchaseRecorded")
    rules = {
        ref_id(target["Arn"]): rule["Properties"]["EventPattern"]["detail-type"]
        for rule_id, rule in of_type(resources, "AWS::Events::Rule").items()
        if rule_id.startswith("Notifications")
        for target in rule["Properties"]["Targets"]
    }
    assert rules[events] == list(NOTIFIED_DETAIL_TYPES)
    assert "CampaignPublished" in rules[events] and "CashbackExpiring" in rules[events]
    assert rules[purchases] == ["PurchaseRecorded"]
    mapped = _mapped_queues(resources, MESSAGES_HANDLER)
    assert set(mapped) == {events, purchases}
    for mapping in mapped.values():
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The thank-you waits a minute, so the purchase's new code is usually issued by then.
    assert resources[purchases]["Properties"]["DelaySeconds"] == 60
    assert "DelaySeconds" not in resources[events]["Properties"]


def test_the_marketers_function_reads_rejected_campaign_files(synth: Synth) -> None:
    resources = synth.data["Resources"]
    rejections = _queue_of_rule(resources, "CampaignRejected")
    mapped = _mapped_queues(resources, MARKETERS_HANDLER)
    assert set(mapped) == {rejections}
    assert mapped[rejections]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "DelaySeconds" not in resources[rejections]["Properties"]


def test_the_api_function_consumes_no_queue(synth: Synth) -> None:
    assert _mapped_queues(synth.data["Resources"], API_HANDLER) == {}


# -- the marketers' topic -----------------------------------------------------------------


def test_the_marketers_topic_uses_the_stack_key_and_has_no_subscriber_by_default(
    synth: Synth,
) -> None:
    resources = synth.data["Resources"]
    topic = _one(resources, "AWS::SNS::Topic", "NotificationsMarketersTopic")
    assert resources[topic]["Properties"]["KmsMasterKeyId"] == _arn(
        _one(resources, "AWS::KMS::Key", "PlatformKey")
    )
    assert not [
        s
        for s in of_type(resources, "AWS::SNS::Subscription").values()
        if s["Properties"]["TopicArn"] == {"Ref": topic}
    ]


# -- alarms -------------------------------------------------------------------------------


def test_a_high_failure_ratio_pages(synth: Synth) -> None:
    resources = synth.data["Resources"]
    alarm = resources[_one(resources, "AWS::CloudWatch::Alarm", "NotificationsFailureRatioAlarm")]
    props = alarm["Properties"]
    (expression,) = [m for m in props["Metrics"] if m.get("ReturnData", True)]
    assert expression["Expression"] == (
        "IF((FILL(sent, 0) + FILL(failed, 0)) >= 20 AND "
        "FILL(failed, 0) * 100 > 5 * (FILL(sent, 0) + FILL(failed, 0)), 1, 0)"
    )
    series = {m["Id"]: m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m}
    assert {name: stat["Metric"]["MetricName"] for name, stat in series.items()} == {
        "sent": "NotificationsSent",
        "failed": "NotificationsFailed",
    }
    for stat in series.values():
        assert stat["Metric"]["Namespace"] == "Rebates"
        assert stat["Metric"]["Dimensions"] == [{"Name": "service", "Value": "notifications"}]
        assert (stat["Stat"], stat["Period"]) == ("Sum", 3600)
    assert (props["Threshold"], props["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert props["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("handler", (MESSAGES_HANDLER, MARKETERS_HANDLER))
def test_each_consumer_pages_on_its_errors(synth: Synth, handler: str) -> None:
    resources = synth.data["Resources"]
    function, _ = function_of(resources, handler)
    assert [
        a
        for a in of_type(resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "Errors"
        and a["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function}}]
    ]


# -- deploy settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Scratch:
    resources: Resources


@pytest.fixture(scope="module")
def tuned() -> Scratch:
    """The construct with a marketers' address and a short thank-you delay."""
    code_dir, layer_dir = build_all()
    stack = Stack(App(builtin_cloud_formation_validation=False), "Tuned")
    settings = DeploySettings(
        version="test",
        sender_email="x@example.com",
        deletion_protection=True,
        thank_you_delay_seconds=5,
        marketers_email="marketing@example.com",
    )
    platform = Platform(
        stack, "Platform", settings=settings, code_dir=code_dir, layer_dir=layer_dir
    )
    Notifications(
        stack, "Notifications", platform=platform, api=Api(stack, "Api", platform=platform)
    )
    return Scratch(Template.from_stack(stack).to_json()["Resources"])


def test_the_settings_come_from_the_context() -> None:
    app = App(context={"thankYouDelaySeconds": "5", "marketersEmail": "m@example.com"})
    settings = DeploySettings.from_context(app.node, version="v")
    assert (settings.thank_you_delay_seconds, settings.marketers_email) == (5, "m@example.com")
    defaults = DeploySettings.from_context(App().node, version="v")
    assert (defaults.thank_you_delay_seconds, defaults.marketers_email) == (60, None)
    zero = DeploySettings.from_context(App(context={"thankYouDelaySeconds": 0}).node, version="v")
    assert zero.thank_you_delay_seconds == 0


def test_the_thank_you_delay_is_a_deploy_setting(tuned: Scratch) -> None:
    purchases = _queue_of_rule(tuned.resources, "PurchaseRecorded")
    assert tuned.resources[purchases]["Properties"]["DelaySeconds"] == 5


def test_a_marketers_address_subscribes_to_the_topic(tuned: Scratch) -> None:
    topic = _one(tuned.resources, "AWS::SNS::Topic", "NotificationsMarketersTopic")
    (subscription,) = of_type(tuned.resources, "AWS::SNS::Subscription").values()
    assert subscription["Properties"] == {
        "Endpoint": "marketing@example.com",
        "Protocol": "email",
        "TopicArn": {"Ref": topic},
    }


def test_a_protected_deployment_keeps_the_unsubscribe_key(tuned: Scratch) -> None:
    secret = tuned.resources[_secret(tuned.resources)]
    assert (secret["DeletionPolicy"], secret["UpdateReplacePolicy"]) == ("Retain", "Retain")
