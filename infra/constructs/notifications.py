"""Notifications: customer profiles and consent, the mails and SMS customers get for
their events, the unsubscribe pages, and the marketers' alerts.

Resources: the customers table, the SES sender identity, a generated Secrets Manager
secret (the unsubscribe links' HMAC key), an encrypted SNS topic for the marketers, and
three queues fed by rules on the bus.

Each function may do what its code calls and nothing else:

- The API function (profile GET/PUT behind the API key; the unsubscribe page and its
  RFC 8058 one-click POST, keyless: the signed token is the authorisation) reads and
  writes the customers table and reads the unsubscribe key. No events, no mail.
- The messages function consumes two queues: the customer events (claims, cashback,
  codes, reminders) with the campaign directory's `CampaignPublished`, and the
  purchases, each held back `DeploySettings.thank_you_delay_seconds` so the code issued
  after a purchase is usually known when its thank-you is written. It reads and writes
  the customers table and its send records in the idempotency table, reads the
  unsubscribe key, sends mail from the sender identity (SESv2 SendEmail, raw MIME:
  `ses:SendEmail` on the identity, no configuration set), sends SMS (`sns:Publish`:
  a phone number has no ARN, so on every resource; acknowledged on its policy only)
  and publishes `NotificationSent` / `NotificationFailed`.
- The marketers function consumes `CampaignRejected` and publishes each once to the
  marketers' topic (its send records in the idempotency table). An email address in
  the `marketersEmail` context subscribes to the topic at deploy time.

Alarms: both consumers page on their errors and each of the three DLQs on a message
(made with them). A send the provider refuses for good (a malformed or suppressed
address, an unreachable number) is recorded `failed`, is expected now and then, and is
not retried, so neither Lambda's errors nor a DLQ show it; paging on every one would
page on customers' typos. What must page is a refusal of many (the account's sending
paused, the identity unverified, the SMS spend limit reached): `FailureRatioAlarm`
fires when over FAILED_PERCENT % of the sends of an hour failed, once the hour had at
least MIN_SENDS of them (fewer say nothing about a rate). It reads the
`NotificationsSent` and `NotificationsFailed` series with the service dimension only.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from functions.core.api import PUBLIC_ROUTES, routes_of
from functions.core.observability import METRICS_NAMESPACE, SERVICE_DIMENSION, Metric
from functions.core.tables import CUSTOMERS, IDEMPOTENCY
from functions.notifications.handlers import api as notifications_api
from infra.constructs.api import Api
from infra.constructs.platform import DomainFunction, Platform
from infra.constructs.resources import acknowledge

API_HANDLER: Final = "functions.notifications.handlers.api.handler"
MESSAGES_HANDLER: Final = "functions.notifications.handlers.messages.handler"
MARKETERS_HANDLER: Final = "functions.notifications.handlers.marketers.handler"
# The functions' POWERTOOLS_SERVICE_NAME: the `service` dimension of their metrics.
DOMAIN: Final = "notifications"
UNSUBSCRIBE_PATH: Final = "/v1/unsubscribe"

# DESIGN "Notifications": what customers are told about, plus the campaign directory
# (names and time zones the messages are written with).
NOTIFIED_DETAIL_TYPES: Final = (
    "ClaimSubmitted",
    "ClaimNeedsReview",
    "ClaimApproved",
    "ClaimRejected",
    "CashbackCredited",
    "CashbackAvailable",
    "CashbackExpiring",
    "CashbackExpired",
    "OfferCodeIssued",
    "OfferExpiring",
    "CampaignPublished",
)
# The thank-you of a purchase, delayed (DeploySettings.thank_you_delay_seconds).
THANKED_DETAIL_TYPES: Final = ("PurchaseRecorded",)
MARKETERS_DETAIL_TYPES: Final = ("CampaignRejected",)

# The routes the notifications API function serves, as its router declares them (the
# one source the OpenAPI document is generated from too).
ROUTES: Final = tuple((method, path) for method, path, _ in routes_of(notifications_api.router))
_UNSUBSCRIBE_REASON: Final = (
    "Opened from the unsubscribe link of a marketing email, and posted by mail clients "
    "for RFC 8058 one-click opt-out: neither holds an API key. The signed token in the "
    "query is the authorisation, and GET changes nothing."
)

# An HMAC-SHA256 key: 64 letters and digits are ~380 bits, more than the hash's 256.
UNSUBSCRIBE_KEY_LENGTH: Final = 64
# Rendering (Jinja2, Babel) and QR PNGs are CPU-bound: more memory is more CPU.
MESSAGES_MEMORY_MB: Final = 1024
# A batch of ten, each a few table calls and a send or two; within the queue's
# visibility timeout six times over (AWS's advice for SQS consumers).
MESSAGES_TIMEOUT: Final = Duration.seconds(30)

# The failure-ratio alarm (see the module's docstring).
FAILURE_RATIO_PERIOD: Final = Duration.hours(1)
FAILED_PERCENT: Final = 5
MIN_SENDS: Final = 20


class Notifications(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform, api: Api) -> None:
        super().__init__(scope, id)
        self.platform = platform
        settings = platform.settings
        self.table = platform.add_table(self, CUSTOMERS)
        self.sender_email = settings.sender_email
        # SES sends only from a verified identity: AWS mails a confirmation link once.
        self.sender_identity = ses.EmailIdentity(
            self, "SenderIdentity", identity=ses.Identity.email(self.sender_email)
        )
        self.unsubscribe_key = secretsmanager.Secret(
            self,
            "UnsubscribeKey",
            description="Rebates notifications: HMAC key of the unsubscribe links",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=UNSUBSCRIBE_KEY_LENGTH, exclude_punctuation=True
            ),
            # A new key would void the links of every mail already sent: kept with the
            # stack's data unless the deployment is a throwaway one.
            removal_policy=RemovalPolicy.RETAIN
            if settings.deletion_protection
            else RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.unsubscribe_key,
            "AwsSolutions-SMG4",
            "Rotating the unsubscribe key would invalidate the unsubscribe links in every "
            "mail already sent; the token format is versioned, so a planned rotation "
            "keeps verifying the old version while signing with the new one.",
        )
        self.marketers_topic = sns.Topic(
            self,
            "MarketersTopic",
            display_name="Rebates marketers",
            master_key=platform.key,
            enforce_ssl=True,
        )
        if settings.marketers_email:
            # SNS mails a confirmation link first; nothing arrives until it is followed.
            self.marketers_topic.add_subscription(
                subscriptions.EmailSubscription(settings.marketers_email)
            )

        self.events = platform.event_queue(
            self,
            "Events",
            description="Events a customer is told about, to the notification queue",
            detail_types=NOTIFIED_DETAIL_TYPES,
        )
        self.delayed_purchases = platform.event_queue(
            self,
            "DeliveryDelay",
            description="Purchases, to the thank-you queue, which holds each back a while",
            detail_types=THANKED_DETAIL_TYPES,
            delivery_delay=Duration.seconds(settings.thank_you_delay_seconds),
        )
        self.rejections = platform.event_queue(
            self,
            "CampaignRejections",
            description="Rejected campaign files, to the marketers' alert queue",
            detail_types=MARKETERS_DETAIL_TYPES,
        )

        self.api_function = self._api_function(api)
        self.messages = self._messages_function(api)
        self.marketers = self._marketers_function()
        self.failure_ratio_alarm = self._failure_ratio_alarm()

    # -- functions ----------------------------------------------------------------------

    def _api_function(self, api: Api) -> DomainFunction:
        fn = DomainFunction(
            self,
            "Api",
            platform=self.platform,
            domain=DOMAIN,
            handler=API_HANDLER,
            description="customer profiles and consent, unsubscribe pages",
        )
        self.platform.grant_table(fn, CUSTOMERS)
        self._grant_unsubscribe_key(fn)
        for method, path in ROUTES:
            if (method, path) in PUBLIC_ROUTES:
                api.add_route(
                    method, path, fn, api_key_required=False, public_reason=_UNSUBSCRIBE_REASON
                )
            else:
                api.add_route(method, path, fn)
        return fn

    def _messages_function(self, api: Api) -> DomainFunction:
        fn = DomainFunction(
            self,
            "Messages",
            platform=self.platform,
            domain=DOMAIN,
            handler=MESSAGES_HANDLER,
            description="mails and SMS customers get for their events",
            memory_size=MESSAGES_MEMORY_MB,
            timeout=MESSAGES_TIMEOUT,
        )
        fn.consume_queue(self.events)
        fn.consume_queue(self.delayed_purchases)
        self.platform.grant_table(fn, CUSTOMERS)
        self.platform.grant_table(fn, IDEMPOTENCY)
        self.platform.grant_put_events(fn)
        self._grant_unsubscribe_key(fn)
        fn.function.add_environment("UNSUBSCRIBE_URL", f"{api.url}{UNSUBSCRIBE_PATH}")
        fn.function.add_environment("SENDER_EMAIL", self.sender_email)
        # SESv2 SendEmail authorises `ses:SendEmail` on the sending identity, raw content
        # or not; no configuration set is used, so the identity is the only resource.
        fn.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ses:SendEmail"],
                resources=[self.sender_identity.email_identity_arn],
            )
        )
        fn.function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=["*"])
        )
        acknowledge(
            fn.role.node.find_child("DefaultPolicy"),
            "AwsSolutions-IAM5[Resource::*]",
            "sns:Publish of an SMS names a phone number, which has no ARN: SNS supports no "
            "resource-level permission for it (the function publishes to no topic). X-Ray's "
            "write actions (active tracing) have none either.",
        )
        return fn

    def _marketers_function(self) -> DomainFunction:
        fn = DomainFunction(
            self,
            "Marketers",
            platform=self.platform,
            domain=DOMAIN,
            handler=MARKETERS_HANDLER,
            description="alerts marketers to a rejected campaign file",
        )
        fn.consume_queue(self.rejections)
        self.platform.grant_table(fn, IDEMPOTENCY)
        # Not `grant_publish`, whose key grant is kms:GenerateDataKey*: SNS encrypts what
        # a publisher sends under a data key made for it, and reads that key back.
        fn.function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.marketers_topic.topic_arn])
        )
        fn.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[self.platform.key.key_arn],
            )
        )
        fn.function.add_environment("MARKETERS_TOPIC_ARN", self.marketers_topic.topic_arn)
        return fn

    def _grant_unsubscribe_key(self, fn: DomainFunction) -> None:
        """Let `fn` read the key's value (and nothing else of the secret) and tell it
        where it is (UNSUBSCRIBE_KEY_SECRET_ARN). The AWS-managed key encrypts it, so
        no KMS grant is needed."""
        fn.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.unsubscribe_key.secret_arn],
            )
        )
        fn.function.add_environment("UNSUBSCRIBE_KEY_SECRET_ARN", self.unsubscribe_key.secret_arn)

    # -- alarms -------------------------------------------------------------------------

    def _failure_ratio_alarm(self) -> cloudwatch.Alarm:
        def series(metric: Metric) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=metric.value,
                dimensions_map={SERVICE_DIMENSION: DOMAIN},
                statistic=cloudwatch.Stats.SUM,
                period=FAILURE_RATIO_PERIOD,
            )

        # 1 when the hour had enough sends and too many of them failed, else 0, so the
        # operators' one way of alarming (above zero) applies. No division: an hour
        # without sends is no datapoint, never a division by zero.
        total = "(FILL(sent, 0) + FILL(failed, 0))"
        ratio = cloudwatch.MathExpression(
            expression=f"IF({total} >= {MIN_SENDS} AND "
            f"FILL(failed, 0) * 100 > {FAILED_PERCENT} * {total}, 1, 0)",
            using_metrics={
                "sent": series(Metric.NOTIFICATIONS_SENT),
                "failed": series(Metric.NOTIFICATIONS_FAILED),
            },
            period=FAILURE_RATIO_PERIOD,
            label="notification sends failing above the ratio",
        )
        return self.platform.operators.alarm_above_zero(
            self,
            "FailureRatioAlarm",
            metric=ratio,
            description=f"Over {FAILED_PERCENT} % of an hour's notification sends were "
            f"refused for good (at least {MIN_SENDS} sends): the provider refuses many, "
            "not one address. NotificationFailed events and the messages function's log "
            "name each refusal's reason: SES sending paused, the sender identity "
            "unverified, an account still in the SES sandbox, the SMS spend limit.",
        )
