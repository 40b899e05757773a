"""Notifications: AWS calls and handler time per message, and render time.

On in-process moto (`mock_aws`): every table, a verified SES identity, the unsubscribe
key's secret and the event bus. Each message is one SQS record (the EventBridge envelope
a rule delivers) through `functions.notifications.handlers.messages.handler`, one record
per invocation, for a distinct customer and event:

- transactional email: ClaimApproved to a customer with an email and no phone;
- transactional email and SMS: ClaimApproved to a customer with both;
- marketing email: OfferExpiring to an opted-in customer (unsubscribe token, its link in
  the footer and the List-Unsubscribe headers; marketing goes by email only).

The container is warm: one message of each kind has gone before, so the unsubscribe key
is read and the campaign's directory entry is in its cache (read again once a minute).

- AWS calls per message, counted at botocore and sorted by what they are for. Target per
  channel sent: one send and two ledger writes (the claim and its completion); the
  profile read, the directory read and the PutEvents of NotificationSent are counted and
  shown beside it.
- Handler time per message against the floor of the same requests (captured from one
  message through the handler, replayed with fresh event and customer ids by plain boto3
  clients, one per service), the two alternating message by message.
- Render time: `rendering.render_email` of one transactional and one marketing template
  in both locales, against Jinja2 writing the same subject, text and HTML from a flat
  template with the message's values already formatted (`flat_floor`): what rendering
  adds over the floor is the layout, the building blocks and the locale's formatting.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from unittest import mock

import boto3
from botocore.client import BaseClient

from functions.core.clock import frozen_at, utc_now
from functions.core.event_types import (
    CampaignPublished,
    ClaimApproved,
    EventDetail,
    OfferExpiring,
)
from functions.core.money import Money
from functions.notifications import rendering
from functions.notifications.dal import ProfileInput, ProfileStore
from functions.notifications.handlers import messages
from functions.notifications.messages import CampaignFacts, Message, message_for
from infra.local.patches import patch_dynamodb_transactions
from infra.local.proxy_event import lambda_context
from tests.bench.claims import output_to_sink
from tests.bench.in_process import MotoClock, Split, in_process_aws, seconds_of, send
from tests.bench.report import record, table

REQUESTS: Final = 40
ROUNDS: Final = 5
RENDERS: Final = 100
SENDS_PER_CHANNEL: Final = 1
LEDGER_WRITES_PER_CHANNEL: Final = 2

NOW: Final = datetime(2027, 5, 10, 3, 0, tzinfo=UTC)
ACCOUNT: Final = "123456789012"
REGION: Final = "ap-northeast-1"
SENDER: Final = "rewards@rebates.example"
UNSUBSCRIBE_URL: Final = "https://api.rebates.example/prod/v1/unsubscribe"
BUS: Final = "rebates-bench"
CAMPAIGN: Final = CampaignFacts("bench-trail-2027", "Trail Running Spring", "Asia/Tokyo")
CONTEXT: Final = lambda_context("rebates-notifications-messages")

# What each call of a message is for, by service and operation (and, for DynamoDB, the
# item it names); anything else is shown by its operation.
SEND: Final = "send"
LEDGER: Final = "ledger write"
PURPOSES: Final = (SEND, LEDGER, "profile read", "directory read", "PutEvents", "key read")


def purpose(service: str, operation: str, params: Mapping[str, Any]) -> str:
    if (service, operation) in {("sesv2", "SendEmail"), ("sns", "Publish")}:
        return SEND
    if service == "events" and operation == "PutEvents":
        return "PutEvents"
    if service == "secretsmanager" and operation == "GetSecretValue":
        return "key read"
    key = params.get("Key", {})
    if operation == "UpdateItem" and str(key.get("id", {}).get("S", "")).startswith(
        "notification#"
    ):
        return LEDGER
    if operation == "GetItem":
        sort_key = key.get("sk", {}).get("S")
        if sort_key == "PROFILE":
            return "profile read"
        if sort_key == "DIRECTORY":
            return "directory read"
    return operation


Captured = tuple[str, str, dict[str, Any]]  # service, operation, parameters


@contextmanager
def captured_calls() -> Iterator[list[Captured]]:
    """Every AWS call meanwhile, with its service. Parameters are deep-copied rather than
    passed through JSON (as `in_process.recorded_calls` does): SendEmail carries bytes."""
    calls: list[Captured] = []
    original = BaseClient._make_api_call

    def noted(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        calls.append((service, operation_name, copy.deepcopy(api_params)))
        return original(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", noted):
        yield calls


def substituted(value: Any, ids: Mapping[str, str]) -> Any:
    """`value` with every id in `ids` replaced by its counterpart, in text and bytes."""
    if isinstance(value, str):
        for old, new in ids.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, bytes):
        for old, new in ids.items():
            value = value.replace(old.encode(), new.encode())
        return value
    if isinstance(value, dict):
        return {key: substituted(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [substituted(item, ids) for item in value]
    return value


# -- the cloud and the messages ----------------------------------------------------------


@contextmanager
def notifications_cloud() -> Iterator[None]:
    """moto with what the messages function needs, and its environment."""
    with in_process_aws(), frozen_at(NOW):
        boto3.client("ses").verify_email_identity(EmailAddress=SENDER)
        secret = boto3.client("secretsmanager").create_secret(
            Name="rebates-unsubscribe-key", SecretString="a-bench-key-of-32-characters-long"
        )["ARN"]
        boto3.client("events").create_event_bus(Name=BUS)
        variables = {
            "POWERTOOLS_SERVICE_NAME": "notifications",
            "REBATES_VERSION": "bench",
            "EVENT_BUS_NAME": BUS,
            "SENDER_EMAIL": SENDER,
            "UNSUBSCRIBE_URL": UNSUBSCRIBE_URL,
            "UNSUBSCRIBE_KEY_SECRET_ARN": secret,
        }
        with mock.patch.dict(os.environ, variables):
            # A fresh container: no clients or caches from an earlier cloud.
            messages._service.cache_clear()
            try:
                yield
            finally:
                messages._service.cache_clear()


def envelope(detail: EventDetail) -> dict[str, Any]:
    """The EventBridge event a rule delivers for `detail`."""
    return {
        "version": "0",
        "id": f"env-{detail.eventId}",
        "detail-type": detail.detail_type,
        "source": detail.source,
        "account": ACCOUNT,
        "time": detail.occurredAt.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "region": REGION,
        "resources": [],
        "detail": detail.model_dump(mode="json", by_alias=True),
    }


def sqs_event(detail: EventDetail) -> dict[str, Any]:
    """The SQS event of one message whose body is `detail`'s envelope."""
    return {
        "Records": [
            {
                "messageId": f"msg-{detail.eventId}",
                "receiptHandle": f"handle-{detail.eventId}",
                "body": json.dumps(envelope(detail)),
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1778382000000",
                    "SenderId": ACCOUNT,
                    "ApproximateFirstReceiveTimestamp": "1778382000000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:rebates-notifications",
                "awsRegion": REGION,
            }
        ]
    }


def consume(detail: EventDetail) -> None:
    answer = messages.handler(sqs_event(detail), CONTEXT)
    if answer["batchItemFailures"]:
        raise RuntimeError(f"{detail.detail_type} {detail.eventId} was not handled: {answer}")


def claim_approved(customer_id: str, event_id: str) -> EventDetail:
    return ClaimApproved(
        eventId=event_id,
        occurredAt=NOW,
        customerId=customer_id,
        campaignId=CAMPAIGN.campaign_id,
        claimId=f"clm-{event_id}",
        reward=Money.of(1500, "JPY"),
    )


def offer_expiring(customer_id: str, event_id: str) -> EventDetail:
    return OfferExpiring(
        eventId=event_id,
        occurredAt=NOW,
        customerId=customer_id,
        campaignId=CAMPAIGN.campaign_id,
        offerId="TRAIL10",
        code="TRAIL-7KQ2M9XD",
        expiresAt=NOW + timedelta(days=3),
        daysBefore=3,
    )


def campaign_published() -> EventDetail:
    return CampaignPublished(
        eventId="evt-bench-published",
        occurredAt=NOW,
        campaignId=CAMPAIGN.campaign_id,
        version=1,
        kind="offer",
        name=CAMPAIGN.name,
        currency="JPY",
        timezone=CAMPAIGN.timezone,
        startsAt=NOW - timedelta(days=9),
        endsAt=NOW + timedelta(days=50),
        fileKey=f"campaigns/{CAMPAIGN.campaign_id}.yaml",
    )


@dataclass(frozen=True)
class Kind:
    """One kind of message: its event, and the profile of the customer it goes to."""

    name: str
    channels: int
    event: Callable[[str, str], EventDetail]  # (customer id, event id)
    phone: bool
    marketing_opt_in: bool


KINDS: Final = (
    Kind("transactional email", 1, claim_approved, phone=False, marketing_opt_in=False),
    Kind("transactional email and SMS", 2, claim_approved, phone=True, marketing_opt_in=False),
    Kind("marketing email", 1, offer_expiring, phone=True, marketing_opt_in=True),
)

_profiles = ProfileStore()
_phones = iter(range(10_000_000, 99_999_999))


def prepare(kind: Kind, customer_id: str) -> None:
    """The customer's profile, stored outside any timing."""
    phone = f"+8190{next(_phones)}" if kind.phone else None
    given = ProfileInput(f"{customer_id}@example.com", phone, "ja", "JP", kind.marketing_opt_in)
    _profiles.put(customer_id, given, now=utc_now(), request_id="bench")


def _slug(kind: Kind) -> str:
    return re.sub(r"[^a-z]+", "-", kind.name)


# -- calls ---------------------------------------------------------------------------------


def count_calls(kind: Kind) -> Counter[tuple[str, str]]:
    """(purpose, operation) of the AWS calls of `REQUESTS` messages in a warm container."""
    customers = [f"{_slug(kind)}-count-{i}" for i in range(REQUESTS)]
    for customer in customers:
        prepare(kind, customer)
    with captured_calls() as calls:
        for i, customer in enumerate(customers):
            consume(kind.event(customer, f"evt-{_slug(kind)}-count-{i}"))
    return Counter((purpose(service, op, params), op) for service, op, params in calls)


# -- time ----------------------------------------------------------------------------------


class Bare:
    """The floor: one message's requests replayed by plain boto3 clients, one per service
    (as the handler has)."""

    def __init__(self, template: list[Captured]) -> None:
        self.template = template
        self.clients = {service: boto3.client(service) for service, _, _ in template}

    def requests(self, ids: Mapping[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
        return [(s, op, substituted(params, ids)) for s, op, params in self.template]

    def send_all(self, requests: list[tuple[str, str, dict[str, Any]]]) -> None:
        for service, operation, params in requests:
            send(self.clients[service], (operation, params))


@dataclass(frozen=True)
class Round:
    handler: Split
    floor: Split

    @property
    def ratio(self) -> float:
        return self.handler.total / self.floor.total

    @property
    def own_ratio(self) -> float:
        return self.handler.own / self.floor.own


def time_rounds(kind: Kind) -> tuple[list[Round], list[Captured]]:
    """Handler and the bare replay of its requests, alternating message by message; and
    the requests replayed."""
    slug = _slug(kind)
    template_customer, template_event = f"{slug}-template", f"evt-{slug}-template"
    prepare(kind, template_customer)
    with captured_calls() as template:
        consume(kind.event(template_customer, template_event))
    if sum(1 for s, op, p in template if purpose(s, op, p) == SEND) != kind.channels:
        raise RuntimeError(f"{kind.name}: the template message sent {template}")
    bare = Bare(list(template))
    clock = MotoClock()
    rounds: list[Round] = []
    with clock.running():
        for round_ in range(ROUNDS):
            handler, floor = Split(), Split()
            for i in range(REQUESTS):
                customer, event_id = f"{slug}-r{round_}-{i}", f"evt-{slug}-r{round_}-{i}"
                bare_customer = f"{slug}-b{round_}-{i}"
                prepare(kind, customer)
                prepare(kind, bare_customer)
                requests = bare.requests(
                    {
                        template_event: f"evt-{slug}-b{round_}-{i}",
                        template_customer: bare_customer,
                    }
                )
                detail = kind.event(customer, event_id)
                if i % 2:
                    floor.add(clock, bare.send_all, requests)
                    handler.add(clock, consume, detail)
                else:
                    handler.add(clock, consume, detail)
                    floor.add(clock, bare.send_all, requests)
            rounds.append(
                Round(
                    Split(handler.total / REQUESTS, handler.moto / REQUESTS),
                    Split(floor.total / REQUESTS, floor.moto / REQUESTS),
                )
            )
    return sorted(rounds, key=lambda r: r.ratio), list(template)


# -- render time ---------------------------------------------------------------------------


def _formatted(value: Any, locale: Any, timezone: str) -> list[str]:
    """The ways `value` can appear in a rendered message."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Money):
        return [rendering.format_money(value, locale)]
    if isinstance(value, datetime):
        return [
            rendering.format_deadline(value, locale, timezone),
            rendering.format_datetime(value, locale, timezone),
            rendering.format_date(value, locale, timezone),
        ]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _formatted(item, locale, timezone)]
    return []


@dataclass(frozen=True)
class FlatFloor:
    """Jinja2 writing a rendered email's subject, text and HTML again from flat templates:
    the rendered parts with each of the message's values that they show literally turned
    back into a placeholder, the values handed in already formatted (and, in the HTML,
    autoescaped as ours are). No layout, inheritance, macros, filters or formatting."""

    templates: tuple[Any, Any, Any]
    values: dict[str, str]

    def render(self) -> tuple[str, str, str]:
        subject, text, html = (template.render(self.values) for template in self.templates)
        return subject, text, html

    @property
    def placeholders(self) -> int:
        return len(self.values)


def flat_floor(message: Message, locale: Any, rendered: rendering.RenderedEmail) -> FlatFloor:
    import jinja2
    from markupsafe import escape

    timezone = str(message.context["timezone"])
    candidates = sorted(
        {text for text in _formatted(dict(message.context), locale, timezone) if len(text) >= 3},
        key=len,
        reverse=True,
    )
    values: dict[str, str] = {}

    def flat(source: str, escaped: bool) -> str:
        pieces = [source]
        for text in candidates:
            shown = str(escape(text)) if escaped else text
            name = next((k for k, v in values.items() if v == text), f"v{len(values)}")
            split: list[str] = []
            for index, piece in enumerate(pieces):
                # Odd pieces are placeholders already made.
                if index % 2 or shown not in piece:
                    split.append(piece)
                    continue
                parts = piece.split(shown)
                for number, part in enumerate(parts):
                    if number:
                        split.append(name)
                    split.append(part)
                values[name] = text
            pieces = split
        return "".join(
            "{{ " + piece + " }}" if index % 2 else "{% raw %}" + piece + "{% endraw %}"
            for index, piece in enumerate(pieces)
        )

    # Plain text, as ours: escaping there would show "&amp;" to the reader.
    text_env = jinja2.Environment(autoescape=False)
    html_env = jinja2.Environment(autoescape=True)
    templates = (
        text_env.from_string(flat(rendered.subject, escaped=False)),
        text_env.from_string(flat(rendered.text, escaped=False)),
        html_env.from_string(flat(rendered.html, escaped=True)),
    )
    floor = FlatFloor(templates, values)
    if floor.render() != (rendered.subject, rendered.text, rendered.html):
        raise RuntimeError(f"the flat floor of {message.template} ({locale}) differs from it")
    return floor


@dataclass(frozen=True)
class RenderFigure:
    template: str
    locale: str
    ours: float
    floor: float
    placeholders: int
    size: int

    @property
    def ratio(self) -> float:
        return self.ours / self.floor


def render_figures() -> list[RenderFigure]:
    """Median over `ROUNDS` rounds of `RENDERS` renders, ours and the floor alternating."""
    details = {
        "claim_approved": claim_approved("bench-reader", "evt-bench-render-1"),
        "offer_expiring": offer_expiring("bench-reader", "evt-bench-render-2"),
    }
    figures = []
    for detail in details.values():
        message = message_for(detail, campaign=CAMPAIGN)
        assert message is not None
        unsubscribe = (
            f"{UNSUBSCRIBE_URL}?token=v1.bench-token" if message.purpose == "marketing" else None
        )
        for locale in rendering.LOCALES:

            def ours(m: Message = message, loc: Any = locale, u: str | None = unsubscribe) -> Any:
                return rendering.render_email(m, loc, unsubscribe_url=u)

            rendered = ours()  # the environments built and the templates compiled
            floor = flat_floor(message, locale, rendered)
            rounds = []
            for _ in range(ROUNDS):
                mine = bare = 0.0
                for i in range(RENDERS):
                    if i % 2:
                        bare += seconds_of(floor.render)
                        mine += seconds_of(ours)
                    else:
                        mine += seconds_of(ours)
                        bare += seconds_of(floor.render)
                rounds.append((mine / RENDERS, bare / RENDERS))
            mine, bare = sorted(rounds, key=lambda r: r[0] / r[1])[ROUNDS // 2]
            size = len(rendered.subject) + len(rendered.text) + len(rendered.html)
            figures.append(
                RenderFigure(message.template, locale, mine, bare, floor.placeholders, size)
            )
    return figures


# -- the report ----------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _calls_row(kind: Kind, calls: Counter[tuple[str, str]]) -> list[str]:
    per = {key: count / REQUESTS for key, count in calls.items()}
    by_purpose: dict[str, float] = {}
    for (why, _), count in per.items():
        by_purpose[why] = by_purpose.get(why, 0.0) + count
    sends, writes = by_purpose.get(SEND, 0.0), by_purpose.get(LEDGER, 0.0)
    ok = (
        sends == kind.channels * SENDS_PER_CHANNEL
        and writes == kind.channels * LEDGER_WRITES_PER_CHANNEL
    )
    order = {why: index for index, why in enumerate(PURPOSES)}
    breakdown = ", ".join(
        f"{why} {count:g} ({operation})"
        for (why, operation), count in sorted(
            per.items(), key=lambda item: (order.get(item[0][0], len(order)), item[0])
        )
    )
    others = sum(per.values()) - sends - writes
    return [
        kind.name,
        str(kind.channels),
        f"**{sends:g} + {writes:g}**",
        f"{kind.channels * SENDS_PER_CHANNEL} + {kind.channels * LEDGER_WRITES_PER_CHANNEL}",
        f"{others:g}",
        f"{sum(per.values()):g}",
        breakdown,
        "ok" if ok else "over target",
    ]


def run() -> None:
    patch_dynamodb_transactions()
    calls_rows: list[list[str]] = []
    time_rows: list[list[str]] = []
    ratios: list[str] = []
    with notifications_cloud(), output_to_sink():
        consume(campaign_published())
        for kind in KINDS:
            warm = f"{_slug(kind)}-warm"
            prepare(kind, warm)
            consume(kind.event(warm, f"evt-{_slug(kind)}-warm"))
        for kind in KINDS:
            calls_rows.append(_calls_row(kind, count_calls(kind)))
        for kind in KINDS:
            rounds, template = time_rounds(kind)
            median = rounds[len(rounds) // 2]
            replayed = ", ".join(op for _, op, _ in template)
            ratios.append(
                f"{kind.name} **{median.ratio:.2f}** ({rounds[0].ratio:.2f} to "
                f"{rounds[-1].ratio:.2f})"
            )
            time_rows += [
                [
                    f"{kind.name} through the handler",
                    _ms(median.handler.total),
                    _ms(median.handler.moto),
                    _ms(median.handler.own),
                    "",
                ],
                [
                    f"{kind.name}, the same requests bare (floor: {replayed})",
                    _ms(median.floor.total),
                    _ms(median.floor.moto),
                    _ms(median.floor.own),
                    f"**{median.ratio:.2f}** (own time {median.own_ratio:.2f} x)",
                ],
            ]
        renders = render_figures()
    render_rows = [
        [
            f"`{figure.template}` ({figure.locale})",
            f"{figure.ours * 1000:.2f} ms",
            f"{figure.floor * 1000:.3f} ms",
            f"**{figure.ratio:.1f}**",
            str(figure.placeholders),
            f"{figure.size:,} characters",
        ]
        for figure in renders
    ]
    body = "\n".join(
        [
            "On in-process moto (`mock_aws`): every table, a verified SES identity, the "
            "unsubscribe key's secret and the event bus. Each message is one SQS record (a "
            "rule's EventBridge envelope) through "
            "`functions.notifications.handlers.messages.handler`, one record per invocation, "
            "to a distinct customer about a distinct event: ClaimApproved to a customer with "
            "an email and no phone (transactional email), to one with both (email and SMS), "
            "and OfferExpiring to an opted-in customer (marketing email: the unsubscribe "
            "token signed, its link and the List-Unsubscribe headers; email only). A warm "
            "container: one message of each kind went before, so the unsubscribe key has "
            "been read (one GetSecretValue per container) and the campaign's directory entry "
            "is in the container's cache (read again once a minute; a miss is one GetItem).",
            "",
            "### AWS calls per message",
            "",
            f"Counted at botocore over {REQUESTS} messages of each kind. Target per channel "
            f"sent: {SENDS_PER_CHANNEL} send and {LEDGER_WRITES_PER_CHANNEL} ledger writes "
            "(the claim and its completion, conditional UpdateItems). The other calls are "
            "outside the target and counted: the profile's GetItem, the directory's (none "
            "here: cached) and the PutEvents of NotificationSent, one per channel sent.",
            "",
            table(
                [
                    "message",
                    "channels",
                    "sends + ledger writes",
                    "target",
                    "other calls",
                    "calls",
                    "operations",
                    "verdict",
                ],
                calls_rows,
            ),
            "",
            "### Handler time per message",
            "",
            "Each message through the handler against the floor of the same requests "
            "(captured from one message through the handler, replayed with fresh event and "
            "customer ids by plain boto3 clients, one per service, to the same moto), the "
            f"two alternating message by message, {ROUNDS} rounds of {REQUESTS}; the median "
            "round shown, ratios lowest to highest in brackets. No target is set; ratios: "
            + "; ".join(ratios)
            + ".",
            "",
            table(
                ["per message", "time", "inside moto", "outside moto", "ratio to floor"],
                time_rows,
            ),
            "",
            "Outside moto the handler's own work is the parse of the envelope, Powertools' "
            "batch processing, log lines and metrics, the profile's and the ledger's "
            "PynamoDB models, rendering (Jinja2, Babel), the MIME message, the event's "
            "validation and botocore.",
            "",
            "### Render time",
            "",
            "`rendering.render_email` (subject, plain text and HTML) of a transactional and "
            "a marketing template in both locales, environments built and templates "
            "compiled, against a floor of Jinja2 writing the same subject, text and HTML "
            "from flat templates: the rendered parts with each of the message's values they "
            "show literally (names, ids, amounts and dates as formatted) turned back into a "
            "placeholder, the values handed in formatted (and autoescaped in the HTML, as "
            "ours). So the floor does the same output and substitution with the same "
            "engine; the ratio is what the layout, the building blocks, the filters and "
            f"Babel's formatting cost on top. Median of {ROUNDS} rounds of {RENDERS} "
            "renders each, the two alternating.",
            "",
            table(
                [
                    "template",
                    "render_email",
                    "flat Jinja2 (floor)",
                    "ratio",
                    "values substituted",
                    "output",
                ],
                render_rows,
            ),
        ]
    )
    record("notifications", "Notifications: calls and time per message, render time", body)
