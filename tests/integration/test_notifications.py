"""Notifications on the local cloud: what customers are told, as they receive it.

A storefront stores profiles and plays purchases and code issues against the HTTP API; a
marketer publishes the module's one campaign through the campaigns bucket; the reminder
sweep is fired through the local cloud's control plane. Behind them run the real
handlers: the offers outbox on the table stream, the rules on the bus, the messages
consumer on its queues, SES and SNS (moto). What arrives is read as a customer's mail
client and phone would, from `GET /_local/mailbox` (each email as raw MIME); the
unsubscribe link is followed over HTTP as a browser and a mail client follow it; the
ledger is read with `rebates notifications sent --customer ... --json`.

Every wait is a drain (`POST /_local/drain`: until every queue, stream and asynchronous
invocation is settled), never a sleep. The campaign (a copy of the summer cashback
example with its post-purchase offer, plus an in-store offer with reminders) ends two
days from now in UTC, so today is the reminder day of its in-store code without moving
the clock; one test moves it a day on, to the next reminder.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from itertools import pairwise
from typing import Any, Final

import pytest
import yaml

from functions.core.clock import format_instant
from infra.constructs.offers import REMINDER_SCHEDULE_ID
from infra.local.campaign_files import upload_campaign_file, wait_for_report
from infra.local.cloud import LocalCloud
from infra.local.pollers import SqsPoller
from tests.integration.test_campaign_files import EXAMPLES, subscribe_queue
from tests.integration.test_wallet import rebates
from tests.integration.test_wiring import physical_id

__all__ = ["rebates"]  # fixture, found by name

THANK_YOU: Final = "purchase_thank_you"
NEXT_CODE: Final = "next_purchase_code"
REMINDER: Final = "offer_expiring"
CODE_ISSUED: Final = "code_issued"
# An eligible line of the summer campaign ($200.00 of tents).
TENT: Final = {"sku": "TENT-2", "category": "tents", "quantity": 1, "unitPrice": 20000}
NEXT_PURCHASE_CODE: Final = re.compile(r"\bTHX-[A-Z0-9]+\b")


def someone(role: str) -> str:
    return f"it-notify-{role}-{uuid.uuid4().hex[:8]}"


def japanese_mobile() -> str:
    """A Japanese mobile number of its own, as a customer types it."""
    return f"+81 90-{secrets.randbelow(9000) + 1000}-{secrets.randbelow(10000):04d}"


def e164(phone: str) -> str:
    return "+" + re.sub(r"\D", "", phone)


# -- the storefront, the customer's browser and mail client, the control plane -------------


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class Storefront:
    """HTTP to the local API: the storefront's keyed calls, a browser's keyless ones, and
    the local cloud's control plane (`/_local/...`)."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.base = cloud.outputs["ApiUrl"].rstrip("/")
        self.key = cloud.outputs["ApiKey"]

    def send(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        keyed: bool = True,
    ) -> Answer:
        sent = dict(headers or {})
        if keyed:
            sent["x-api-key"] = self.key
        target = url if url.startswith("http") else self.base + url
        request = urllib.request.Request(target, data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return Answer(
                    response.status,
                    response.headers.get("Content-Type", ""),
                    response.read().decode("utf-8"),
                )
        except urllib.error.HTTPError as error:
            return Answer(
                error.code, error.headers.get("Content-Type", ""), error.read().decode("utf-8")
            )

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        answer = self.send(method, path, data, {"Content-Type": "application/json"})
        return answer.status, answer.json()

    def put_profile(self, customer: str, data: bytes) -> tuple[int, Any]:
        answer = self.send(
            "PUT", f"/v1/customers/{customer}/profile", data, {"Content-Type": "application/json"}
        )
        return answer.status, answer.json()

    def profile(self, customer: str, **fields: Any) -> dict[str, Any]:
        """Store the customer's profile (`fields` as the JSON body); what the API answers."""
        status, stored = self.put_profile(customer, json.dumps(fields).encode())
        assert status == 200, stored
        return dict(stored)

    def stored_profile(self, customer: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/v1/customers/{customer}/profile")
        assert status == 200, body
        return dict(body)

    def issue_code(self, offer_id: str, customer: str) -> dict[str, Any]:
        status, issued = self.call("POST", f"/v1/offers/{offer_id}/codes", {"customerId": customer})
        assert status == 201, issued
        return dict(issued)

    def purchase(self, order_id: str, customer: str) -> dict[str, Any]:
        body = {
            "orderId": order_id,
            "customerId": customer,
            "channel": "online",
            "placedAt": format_instant(datetime.now(UTC)),
            "currency": "USD",
            "items": [TENT],
            "total": TENT["unitPrice"],
        }
        status, recorded = self.call("POST", "/v1/purchases", body)
        assert status == 202, recorded
        return dict(recorded)

    def form(self, url: str, data: bytes, content_type: str) -> Answer:
        """A form posted as a browser or a mail client posts it: no API key."""
        return self.send("POST", url, data, {"Content-Type": content_type}, keyed=False)

    # -- the control plane --

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        answer = self.send(
            method, f"/_local/{path}", data, {"Content-Type": "application/json"}, keyed=False
        )
        assert answer.status == 200, answer
        return answer.json()

    def drain(self) -> None:
        """Until every queue, stream and asynchronous invocation has settled."""
        assert self.control("POST", "drain", {"timeoutSeconds": 60}) == {"drained": True}

    def fire_reminders(self) -> None:
        """The daily reminder sweep, as its schedule fires it, and what follows from it."""
        fired = self.control("POST", f"fire/{REMINDER_SCHEDULE_ID}", {})
        assert [target["outcome"] for target in fired["targets"]] == ["invoked"], fired
        self.drain()

    def mailbox(self) -> Mailbox:
        return Mailbox(self.control("GET", "mailbox"))


@dataclass(frozen=True)
class Email:
    message_id: str
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message.get("To", "")).lower()

    @property
    def template(self) -> str:
        return str(self.message.get("X-Rebates-Template", ""))

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return str(part.get_content()) if part is not None else ""

    def images(self) -> list[EmailMessage]:
        return [p for p in self.message.walk() if p.get_content_maintype() == "image"]


class Mailbox:
    """What SES and SNS accepted, as the recipients get it."""

    def __init__(self, sent: dict[str, Any]) -> None:
        self.emails = [
            Email(str(item["messageId"]), _parsed(item["raw"]))
            for item in sent["emails"]
            if "raw" in item
        ]
        self.sms = [
            (str(m["phoneNumber"]), str(m["message"]), str(m["messageId"])) for m in sent["sms"]
        ]

    def to(self, address: str, *templates: str) -> list[Email]:
        """The emails to `address` (of `templates` only, when given), oldest first."""
        return [
            mail
            for mail in self.emails
            if mail.to == address.lower() and (not templates or mail.template in templates)
        ]

    def texts_to(self, phone: str) -> list[tuple[str, str]]:
        """(text, provider message id) of every SMS to `phone`."""
        return [(text, message_id) for number, text, message_id in self.sms if number == phone]


def _parsed(raw: str) -> EmailMessage:
    parsed = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def unsubscribe_header_url(mail: Email) -> str:
    found = re.fullmatch(r"<(https?://[^>]+)>", str(mail.message.get("List-Unsubscribe", "")))
    assert found is not None, mail.message.get("List-Unsubscribe")
    return found.group(1)


class _Page(HTMLParser):
    """The parts of an HTML page a test reads: `<html lang>`, links, each form's fields."""

    def __init__(self) -> None:
        super().__init__()
        self.lang: str | None = None
        self.links: list[str] = []
        self.forms: list[tuple[str, str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.lang = attributes.get("lang")
        elif tag == "a" and "href" in attributes:
            self.links.append(attributes["href"])
        elif tag == "form":
            self.forms.append((attributes.get("method", "get"), attributes.get("action", ""), {}))
        elif tag == "input" and self.forms and "name" in attributes:
            self.forms[-1][2][attributes["name"]] = attributes.get("value", "")


def page(html: str) -> _Page:
    parsed = _Page()
    parsed.feed(html)
    return parsed


# -- the module's campaign ------------------------------------------------------------------


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    thanks_offer: str
    store_offer: str


@pytest.fixture(scope="module")
def shop(cloud: LocalCloud) -> Storefront:
    return Storefront(cloud)


@pytest.fixture(scope="module")
def campaign(cloud: LocalCloud, shop: Storefront) -> Iterator[Campaign]:
    """The summer cashback example under ids of its own, running from yesterday to two days
    from now (UTC), with an in-store offer whose code is reminded 2 days and 1 day before
    it expires: today is its first reminder day."""
    suffix = uuid.uuid4().hex[:8]
    document = yaml.safe_load((EXAMPLES / "summer-cashback-2027.yaml").read_text())
    now = datetime.now(UTC).replace(microsecond=0)
    (thanks,) = document["offers"]
    campaign = Campaign(
        campaign_id=f"it-notify-{suffix}",
        name=f"Summer outdoor cashback {suffix}",
        thanks_offer=f"IT-THANKS-{suffix.upper()}",
        store_offer=f"IT-STORE-{suffix.upper()}",
    )
    document.update(
        id=campaign.campaign_id,
        name=campaign.name,
        timezone="UTC",
        starts_at=(now - timedelta(days=1)).isoformat(),
        ends_at=(now + timedelta(days=2)).isoformat(),
        limits={"per_customer": 10},
    )
    document["eligibility"]["channels"] = ["online", "in_store"]
    thanks["id"] = campaign.thanks_offer
    document["offers"].append(
        {
            "id": campaign.store_offer,
            "channel": "in_store",
            "discount": {"amount": 500},
            "codes": {"mode": "shared", "code": f"store-{suffix}"},
            "usage": {"max_total": 100, "per_customer": 1},
            "reminders_days_before_expiry": [2, 1],
        }
    )
    s3 = cloud.client("s3")
    bucket = cloud.outputs["CampaignBucketName"]
    key = f"campaigns/{campaign.campaign_id}.json"
    revision = upload_campaign_file(s3, bucket, key, json.dumps(document, default=str).encode())
    report = wait_for_report(s3, bucket, key, revision, timeout=60)
    assert report.document["status"] == "published", report.document
    # CampaignPublished reaches the campaign directory the messages are written with.
    shop.drain()
    yield campaign
    # Deleting the file archives the campaign: the purchases of later modules issue no
    # code of its post-purchase offer, and their sweeps remind nobody of its own.
    s3.delete_object(Bucket=bucket, Key=key)
    shop.drain()
    table = physical_id(cloud, "CampaignsTable", "AWS::DynamoDB::Table")
    item = cloud.client("dynamodb").get_item(
        TableName=table,
        Key={"pk": {"S": f"CAMPAIGN#{campaign.campaign_id}"}, "sk": {"S": "META"}},
        ConsistentRead=True,
    )["Item"]
    assert item["status"]["S"] == "archived", item["status"]


@contextmanager
def thank_yous_held(cloud: LocalCloud) -> Iterator[None]:
    """The messages consumer of the thank-you queue paused (its purchases wait in the
    queue; a drain does not wait for them), then resumed."""
    queue_url = physical_id(cloud, "NotificationsDeliveryDelayQueue", "AWS::SQS::Queue")
    assert cloud.pollers is not None
    (poller,) = [
        p for p in cloud.pollers if isinstance(p, SqsPoller) and p.mapping.queue_url == queue_url
    ]
    poller.mapping.enabled = False
    try:
        yield
    finally:
        poller.mapping.enabled = True


@pytest.fixture
def clock(shop: Storefront) -> Iterator[Storefront]:
    """The handlers' clock, put back where it was after the test."""
    before = shop.control("GET", "clock")["offsetSeconds"]
    try:
        yield shop
    finally:
        shop.control("POST", "clock", {"offsetSeconds": before})


@pytest.fixture
def ledger(rebates: Callable[..., int], capsys: pytest.CaptureFixture[str]) -> Callable[[str], Any]:
    """`rebates notifications sent --customer ID --json` against this cloud: its messages."""

    def read(customer: str) -> Any:
        capsys.readouterr()
        assert rebates("notifications", "sent", "--customer", customer, "--json") == 0
        return json.loads(capsys.readouterr().out)["messages"]

    return read


def customer_profile(
    shop: Storefront, role: str, *, locale: str = "ja", opted_in: bool = False, **fields: Any
) -> tuple[str, str]:
    """A customer with a profile of their own; (customer id, email address)."""
    customer = someone(role)
    address = f"{customer}@example.jp"
    shop.profile(customer, email=address, locale=locale, marketingOptIn=opted_in, **fields)
    return customer, address


def consent_log(cloud: LocalCloud, customer: str) -> list[dict[str, Any]]:
    """The customer's consent entries, oldest first. No API lists them: they are read from
    the Customers table, where they sit beside the profile (``CONSENT#<entryId>``, ids in
    the order they were written)."""
    table = physical_id(cloud, "CustomersTable", "AWS::DynamoDB::Table")
    pages = (
        cloud.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :consent)",
            ExpressionAttributeValues={
                ":pk": {"S": f"CUSTOMER#{customer}"},
                ":consent": {"S": "CONSENT#"},
            },
            ConsistentRead=True,
        )
    )
    return [item for answer in pages for item in answer["Items"]]


def consent_channels(cloud: LocalCloud, customer: str) -> list[str]:
    """How each of the customer's consent changes was made, oldest first."""
    return [item["channel"]["S"] for item in consent_log(cloud, customer)]


# -- profiles ----------------------------------------------------------------------------------


def test_a_profile_is_stored_normalised_and_read_back(shop: Storefront) -> None:
    customer = someone("profile")
    stored = shop.profile(
        customer,
        email=f"Aiko.{customer}@Example.JP",
        phone="+81 90-1234-5678",
        locale="ja",
        country="jp",
        marketingOptIn=True,
    )

    assert stored == shop.stored_profile(customer)
    assert {k: stored[k] for k in ("customerId", "email", "phone", "locale", "country")} == {
        "customerId": customer,
        "email": f"Aiko.{customer}@example.jp",
        "phone": "+819012345678",
        "locale": "ja",
        "country": "JP",
    }
    assert stored["marketingOptIn"] is True
    assert stored["consentEntryId"].startswith("cns_")
    # The same body again is the same profile: no new version, no new consent entry.
    again = shop.profile(
        customer,
        email=f"Aiko.{customer}@Example.JP",
        phone="+81 90-1234-5678",
        locale="ja",
        country="jp",
        marketingOptIn=True,
    )
    assert again == stored


def test_hostile_profile_bodies_are_4xx_in_the_error_shape(shop: Storefront) -> None:
    customer, address = customer_profile(shop, "hostile", opted_in=True)
    before = shop.stored_profile(customer)
    good = {"email": address, "locale": "en", "marketingOptIn": False}

    def body(**changes: Any) -> bytes:
        return json.dumps({**good, **changes}).encode()

    without_locale = {k: v for k, v in good.items() if k != "locale"}
    bodies: dict[str, tuple[bytes, str | None]] = {
        "not UTF-8": (b'{"email": "\xff\xfe", "locale": "en"}', "body"),
        "a float for marketingOptIn": (body(marketingOptIn=1.0), "body.marketingOptIn"),
        "a string for marketingOptIn": (body(marketingOptIn="false"), "body.marketingOptIn"),
        "no locale": (json.dumps(without_locale).encode(), "body.locale"),
        "a 1 MB body": (body(email="a" * (1024 * 1024) + "@example.jp"), "body.email"),
        "an unknown field": (body(admin=True), "body.admin"),
        "a JSON array": (json.dumps([good]).encode(), "body"),
    }

    answers = {what: shop.put_profile(customer, data) for what, (data, _) in bodies.items()}

    assert {what: status for what, (status, _) in answers.items()} == dict.fromkeys(bodies, 400)
    for what, (_, answer) in answers.items():
        error = answer["error"]
        assert error["code"] == "invalid_request", (what, error)
        assert error["message"], what
        paths = [issue["path"] for issue in error["details"]["errors"]]
        assert bodies[what][1] in paths, (what, paths)
    assert shop.stored_profile(customer) == before


def test_sixteen_concurrent_puts_leave_a_consent_log_ending_as_the_profile(
    cloud: LocalCloud, shop: Storefront
) -> None:
    customer, address = customer_profile(shop, "flipper", opted_in=False)

    def put(opted_in: bool) -> tuple[int, Any]:
        data = json.dumps({"email": address, "locale": "ja", "marketingOptIn": opted_in})
        return shop.put_profile(customer, data.encode())

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(put, [n % 2 == 0 for n in range(16)]))

    # Each writer either wins or is told to retry (429): never a 5xx, never a lost change.
    assert {status for status, _ in answers} <= {200, 429}, answers
    assert all(body["error"]["code"] == "contended" for status, body in answers if status == 429)
    profile = shop.stored_profile(customer)
    log = consent_log(cloud, customer)
    entries = [
        (
            item["entryId"]["S"],
            item.get("previousEntryId", {}).get("S"),
            item["marketingOptIn"]["BOOL"],
        )
        for item in log
    ]

    assert len(entries) >= 2  # the first profile's entry, and at least one change
    last_id, _, last_opt_in = entries[-1]
    assert (last_id, last_opt_in) == (profile["consentEntryId"], profile["marketingOptIn"])
    # One chain, no fork and no gap, each entry a change of the one before it.
    assert [previous for _, previous, _ in entries] == [None] + [e[0] for e in entries[:-1]]
    opt_ins = [opted_in for _, _, opted_in in entries]
    assert all(a != b for a, b in pairwise(opt_ins)), opt_ins
    assert opt_ins[0] is False


# -- a code issued: one email with its QR, one SMS --------------------------------------------


def test_an_in_store_code_is_one_email_with_its_qr_and_one_sms_in_japanese(
    shop: Storefront, campaign: Campaign, ledger: Callable[[str], Any]
) -> None:
    phone = japanese_mobile()
    customer, address = customer_profile(shop, "instore", phone=phone)
    issued = shop.issue_code(campaign.store_offer, customer)
    shop.drain()

    mailbox = shop.mailbox()
    (mail,) = mailbox.to(address)
    assert mail.template == CODE_ISSUED
    assert mail.message["Content-Language"] == "ja"
    assert page(mail.html).lang == "ja"
    assert "クーポンコード" in str(mail.message["Subject"])
    assert campaign.name in str(mail.message["Subject"])
    assert issued["code"] in mail.text
    (qr,) = mail.images()
    assert qr.get_content_type() == "image/png"
    assert qr.get_content_disposition() == "inline"
    content_id = str(qr["Content-ID"]).strip("<>")
    assert f"cid:{content_id}" in mail.html
    payload = qr.get_payload(decode=True)
    assert isinstance(payload, bytes) and payload.startswith(b"\x89PNG\r\n\x1a\n")
    assert mail.message["List-Unsubscribe"] is None  # transactional
    ((text, sms_id),) = mailbox.texts_to(e164(phone))
    assert issued["code"] in text and "クーポンコード" in text

    sent = ledger(customer)
    assert sorted((m["template"], m["channel"], m["status"], m["locale"]) for m in sent) == [
        (CODE_ISSUED, "email", "sent", "ja"),
        (CODE_ISSUED, "sms", "sent", "ja"),
    ]
    assert {m["channel"]: m["providerMessageId"] for m in sent} == {
        "email": mail.message_id,
        "sms": sms_id,
    }


def test_an_event_delivered_again_sends_nothing_again(
    cloud: LocalCloud, shop: Storefront, campaign: Campaign, ledger: Callable[[str], Any]
) -> None:
    events = cloud.client("events")
    bus = cloud.outputs["EventBusName"]
    rule = f"it-notify-{uuid.uuid4().hex[:12]}"

    def subscribe(queue_arn: str) -> None:
        pattern = {"source": [{"prefix": "rebates."}], "detail-type": ["OfferCodeIssued"]}
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])

    read = subscribe_queue(cloud, subscribe)
    phone = japanese_mobile()
    customer, address = customer_profile(shop, "replayed", phone=phone)
    shop.issue_code(campaign.store_offer, customer)
    shop.drain()
    (issued,) = [e for e in read() if e["detail"]["customerId"] == customer]

    # The same event twice more, as a redelivery or an operator's replay brings it.
    for _ in range(2):
        answer = events.put_events(
            Entries=[
                {
                    "EventBusName": bus,
                    "Source": issued["source"],
                    "DetailType": issued["detail-type"],
                    "Detail": json.dumps(issued["detail"]),
                }
            ]
        )
        assert answer["FailedEntryCount"] == 0, answer
    shop.drain()

    mailbox = shop.mailbox()
    assert [mail.template for mail in mailbox.to(address)] == [CODE_ISSUED]
    assert len(mailbox.texts_to(e164(phone))) == 1
    assert sorted((m["template"], m["channel"]) for m in ledger(customer)) == [
        (CODE_ISSUED, "email"),
        (CODE_ISSUED, "sms"),
    ]


# -- the thank-you and the next purchase's code -------------------------------------------------


def test_the_thank_you_carries_the_next_code_where_the_promotion_is_allowed(
    cloud: LocalCloud, shop: Storefront, campaign: Campaign
) -> None:
    us, us_address = customer_profile(shop, "us", locale="en", country="US")
    de, de_address = customer_profile(shop, "de", locale="en", country="DE")

    # AWS holds the thank-you back a minute so the code issued after the purchase is
    # known; locally the hold is 2 s, so its consumer is paused until the code is.
    with thank_yous_held(cloud):
        shop.purchase(f"{us}-order", us)
        shop.purchase(f"{de}-order", de)
        shop.drain()
        assert shop.mailbox().to(us_address, THANK_YOU, NEXT_CODE) == []
    shop.drain()

    mailbox = shop.mailbox()
    # Without marketing consent, outside the EU/EEA and the UK: the code rides along.
    (us_thanks,) = mailbox.to(us_address, THANK_YOU, NEXT_CODE)
    assert us_thanks.template == THANK_YOU
    assert us_thanks.message["Content-Language"] == "en"
    assert len(set(NEXT_PURCHASE_CODE.findall(us_thanks.text))) == 1
    # In Germany without consent: thanked, without it; nor does it follow on its own.
    (de_thanks,) = mailbox.to(de_address, THANK_YOU, NEXT_CODE)
    assert de_thanks.template == THANK_YOU
    assert not NEXT_PURCHASE_CODE.search(de_thanks.text + de_thanks.html)
    assert de_thanks.message["List-Unsubscribe"] is None
    assert f"{de}-order" in de_thanks.text


# -- reminders ---------------------------------------------------------------------------------


def test_the_sweep_fired_twice_on_the_reminder_day_reminds_the_opted_in_holder_once(
    shop: Storefront, campaign: Campaign
) -> None:
    keen, keen_address = customer_profile(shop, "keen", opted_in=True)
    quiet, quiet_address = customer_profile(shop, "quiet", opted_in=False)
    code = shop.issue_code(campaign.store_offer, keen)["code"]
    shop.issue_code(campaign.store_offer, quiet)
    shop.drain()

    shop.fire_reminders()
    shop.fire_reminders()

    mailbox = shop.mailbox()
    (reminder,) = mailbox.to(keen_address, REMINDER)
    assert reminder.message["Content-Language"] == "ja"
    assert code in reminder.text
    assert unsubscribe_header_url(reminder).startswith(shop.base + "/v1/unsubscribe?token=")
    assert reminder.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mailbox.to(quiet_address, REMINDER) == []
    assert [mail.template for mail in mailbox.to(quiet_address)] == [CODE_ISSUED]


# -- unsubscribe -------------------------------------------------------------------------------

FORM: Final = "application/x-www-form-urlencoded"


def test_the_unsubscribe_link_the_button_and_one_click_opt_out(
    cloud: LocalCloud, shop: Storefront, campaign: Campaign, clock: Storefront
) -> None:
    leaving, address = customer_profile(shop, "leaving", locale="en", opted_in=True)
    staying, staying_address = customer_profile(shop, "staying", opted_in=True)
    shop.issue_code(campaign.store_offer, leaving)
    shop.issue_code(campaign.store_offer, staying)
    shop.drain()
    shop.fire_reminders()
    (reminder,) = shop.mailbox().to(address, REMINDER)
    (link,) = [href for href in page(reminder.html).links if "/v1/unsubscribe?" in href]
    assert unsubscribe_header_url(reminder) == link

    # The link opens the page in the customer's language, and changes nothing.
    opened = shop.send("GET", link, keyed=False)
    assert (opened.status, opened.content_type) == (200, "text/html; charset=utf-8")
    confirm_page = page(opened.text)
    assert confirm_page.lang == "en"
    assert shop.stored_profile(leaving)["marketingOptIn"] is True

    # The page's button: its form, posted where it says.
    ((method, action, fields),) = confirm_page.forms
    assert (method, fields) == ("post", {"confirm": "yes"})
    done = shop.form(
        urllib.parse.urljoin(link, action), urllib.parse.urlencode(fields).encode(), FORM
    )
    assert (done.status, page(done.text).lang) == (200, "en"), done
    assert shop.stored_profile(leaving)["marketingOptIn"] is False
    assert consent_channels(cloud, leaving) == ["api", "unsubscribe_link"]

    # Opted in again at the storefront, then out with the mail client's one-click.
    shop.profile(leaving, email=address, locale="en", marketingOptIn=True)
    refused = {
        "a body that is not UTF-8": shop.form(link, b"List-Unsubscribe=\xff\xfe", FORM),
        "a body over the form limit": shop.form(link, b"confirm=yes&x=" + b"y" * 20_000, FORM),
    }
    assert {what: answer.status for what, answer in refused.items()} == {
        "a body that is not UTF-8": 400,
        "a body over the form limit": 413,
    }
    assert [answer.json()["error"]["code"] for answer in refused.values()] == [
        "invalid_request",
        "payload_too_large",
    ]
    assert shop.stored_profile(leaving)["marketingOptIn"] is True
    one_click = shop.form(link, b"List-Unsubscribe=One-Click", FORM)
    assert one_click.status == 200, one_click
    assert shop.stored_profile(leaving)["marketingOptIn"] is False
    assert consent_channels(cloud, leaving) == ["api", "unsubscribe_link", "api", "one_click"]
    # RFC 8058's preferred encoding of the same one-click: multipart/form-data.
    shop.profile(leaving, email=address, locale="en", marketingOptIn=True)
    boundary = f"rebates-{uuid.uuid4().hex}"
    multipart = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    ).encode()
    one_click = shop.form(link, multipart, f"multipart/form-data; boundary={boundary}")
    assert one_click.status == 200, one_click
    assert shop.stored_profile(leaving)["marketingOptIn"] is False
    through = ["api", "unsubscribe_link", "api", "one_click", "api", "one_click"]
    assert consent_channels(cloud, leaving) == through

    # Links that are not ours: a page saying so, never an error body, nothing changed.
    token = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)["token"][0]
    tampered = link.replace(token, token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"))
    bare = link.split("?", 1)[0]
    for bad in (tampered, bare):
        for answer in (
            shop.send("GET", bad, keyed=False),
            shop.form(bad, b"List-Unsubscribe=One-Click", FORM),
        ):
            assert (answer.status, answer.content_type) == (400, "text/html; charset=utf-8")
            assert page(answer.text).lang is not None
    assert consent_channels(cloud, leaving) == through

    # The next reminder day: the one who stayed is reminded, the one who left is not.
    clock.control("POST", "clock", {"advanceSeconds": 86_400})
    shop.fire_reminders()
    mailbox = shop.mailbox()
    assert len(mailbox.to(address, REMINDER)) == 1
    assert len(mailbox.to(staying_address, REMINDER)) == 2
