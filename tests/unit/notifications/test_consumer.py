"""The messages consumer through its handler, on moto: SES v2 (a verified identity), SNS
SMS, the unsubscribe key in Secrets Manager, and the bus (a catch-all rule into a queue).

Each test sends the SQS batch Lambda would (EventBridge envelopes as bodies) and reads
what moto's SES and SNS hold and what was published on the bus.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from functions.core.clock import frozen_at
from functions.core.settings import load_settings
from functions.notifications import tokens
from functions.notifications.handlers import messages
from functions.notifications.models import NotificationRecord
from functions.notifications.senders import SesEmailSender
from tests.unit.core.log_capture import captured_logs, metric_values
from tests.unit.notifications.service_support import (
    CONTEXT,
    T0,
    UNSUBSCRIBE_KEY,
    UNSUBSCRIBE_URL,
    Cloud,
    campaign_published,
    claim_approved,
    cloud,
    code_issued_after,
    count_aws_calls,
    envelope,
    failed_ids,
    ids,
    offer_expiring,
    purchase_recorded,
    save_profile,
    sqs_batch,
)

__all__ = ["cloud", "ids"]

Ids = Callable[[str], str]


@pytest.fixture(autouse=True)
def frozen(cloud: Cloud) -> Iterator[None]:
    with frozen_at(T0):
        yield


_phones = itertools.count(1000)


def unique_phone() -> str:
    """A Japanese mobile number no other test of the module uses."""
    return f"+8190{next(_phones):08d}"


def consume(*bodies: Any) -> list[str]:
    """Run the handler on one batch; the message ids it reported failed."""
    batch = sqs_batch(*(b if isinstance(b, str) else envelope(b) for b in bodies))
    return failed_ids(messages.handler(batch, CONTEXT))


def service() -> Any:
    return messages._service(load_settings(messages.MessagesSettings))


class FlakySes:
    """The real (moto) SES client, with provider errors raised first."""

    def __init__(self, real: Any, *codes: str) -> None:
        self.real = real
        self.codes = list(codes)

    def send_email(self, **parameters: Any) -> Any:
        if self.codes:
            code = self.codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": f"{code}!"}}, "SendEmail")
        return self.real.send_email(**parameters)


@pytest.fixture
def ses_errors(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def inject(*codes: str) -> None:
        deliverer = service().deliverer
        real = SesEmailSender().client
        monkeypatch.setattr(deliverer, "email", SesEmailSender(client=FlakySes(real, *codes)))

    return inject


def test_a_transactional_message_goes_by_email_and_sms_once(cloud: Cloud, ids: Ids) -> None:
    customer, address, phone = ids("cust"), f"{ids('mail')}@example.com", unique_phone()
    save_profile(customer, email=address, phone=phone)
    event = claim_approved(customer, ids("camp"), ids("evt"))

    assert consume(event) == []
    assert consume(event, event) == []  # replayed, twice in one batch too

    [email] = cloud.emails(to=address)
    assert email["From"] == "rewards@rebates.example"
    assert email["List-Unsubscribe"] is None  # transactional: no unsubscribe
    [sms] = cloud.sms(phone)
    assert "1,500" in sms or "1500" in sms
    sent = [e for e in cloud.published() if e["detail"]["triggerEventId"] == event.eventId]
    assert {e["detail-type"] for e in sent} == {"NotificationSent"}
    # Replays announce again, under the same event id per channel.
    by_channel: dict[str, set[str]] = {}
    for published in sent:
        by_channel.setdefault(published["detail"]["channel"], set()).add(
            published["detail"]["eventId"]
        )
    assert {channel: len(ids) for channel, ids in by_channel.items()} == {"email": 1, "sms": 1}
    email_record = NotificationRecord.find(event.eventId, "email", "claim_approved")
    assert email_record is not None
    assert (email_record.status, email_record.attempts) == ("sent", 1)
    assert email_record.consent_entry_id is None


def test_sms_only_where_a_phone_is_known(cloud: Cloud, ids: Ids, capsys: Any) -> None:
    customer, address = ids("cust"), f"{ids('mail')}@example.com"
    save_profile(customer, email=address, phone=None)
    event = claim_approved(customer, ids("camp"), ids("evt"))
    assert consume(event) == []
    assert len(cloud.emails(to=address)) == 1
    assert NotificationRecord.find(event.eventId, "sms", "claim_approved") is None
    out = capsys.readouterr().out
    assert metric_values(out, "NotificationsSuppressed", channel="sms", reason="no_phone") == [1]
    assert metric_values(out, "NotificationsSent", channel="email", template="claim_approved") == [
        1
    ]


def test_no_profile_is_suppressed(cloud: Cloud, ids: Ids, capsys: Any) -> None:
    event = claim_approved(ids("ghost"), ids("camp"), ids("evt"))
    before = len(cloud.emails())
    assert consume(event) == []
    assert len(cloud.emails()) == before
    assert metric_values(capsys.readouterr().out, "NotificationsSuppressed", reason="no_profile")


def test_marketing_needs_consent(cloud: Cloud, ids: Ids, capsys: Any) -> None:
    customer, address = ids("cust"), f"{ids('mail')}@example.com"
    save_profile(customer, email=address, marketing_opt_in=False)
    assert consume(offer_expiring(customer, ids("camp"), ids("evt"))) == []
    assert cloud.emails(to=address) == []
    out = capsys.readouterr().out
    assert metric_values(
        out, "NotificationsSuppressed", template="offer_expiring", reason="no_marketing_consent"
    ) == [1]


def test_marketing_with_consent_carries_the_unsubscribe_link_and_headers(
    cloud: Cloud, ids: Ids
) -> None:
    customer, address = ids("cust"), f"{ids('mail')}@example.com"
    save_profile(customer, email=address, phone=unique_phone(), marketing_opt_in=True)
    event = offer_expiring(customer, ids("camp"), ids("evt"))
    assert consume(event) == []

    [email] = cloud.emails(to=address)
    link = email["List-Unsubscribe"].strip("<>")
    assert link.startswith(UNSUBSCRIBE_URL + "?token=")
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = parse_qs(urlsplit(link).query)["token"][0]
    assert tokens.verify(UNSUBSCRIBE_KEY.encode(), token) == (customer, "email")
    body = email.get_body(("html",))
    assert body is not None
    assert "token=" in body.get_content()
    # Marketing is email only, and records the consent that permitted it.
    assert NotificationRecord.find(event.eventId, "sms", "offer_expiring") is None
    record = NotificationRecord.find(event.eventId, "email", "offer_expiring")
    from functions.notifications.models import get_profile

    profile = get_profile(customer)
    assert record is not None and profile is not None
    assert record.consent_entry_id == profile.consent_entry_id is not None


def test_the_campaign_directory_names_the_campaign(cloud: Cloud, ids: Ids) -> None:
    customer, address, campaign = ids("cust"), f"{ids('mail')}@example.com", ids("camp")
    save_profile(customer, email=address, locale="en")
    assert consume(campaign_published(campaign, "Trail Running Spring", version=2)) == []
    assert consume(campaign_published(campaign, "Old name", version=1)) == []  # late, older
    assert consume(claim_approved(customer, campaign, ids("evt"))) == []
    [email] = cloud.emails(to=address)
    text = email.get_body(("plain",))
    assert text is not None
    assert "Trail Running Spring" in text.get_content()
    assert "Old name" not in text.get_content()


def test_ses_throttling_then_success_sends_once(
    cloud: Cloud, ids: Ids, ses_errors: Callable[..., None]
) -> None:
    customer, address = ids("cust"), f"{ids('mail')}@example.com"
    save_profile(customer, email=address)
    event = claim_approved(customer, ids("camp"), ids("evt"))
    ses_errors("TooManyRequestsException")

    batch = sqs_batch(envelope(event))
    answer = messages.handler(batch, CONTEXT)
    assert failed_ids(answer) == [batch["Records"][0]["messageId"]]
    assert cloud.emails(to=address) == []
    record = NotificationRecord.find(event.eventId, "email", "claim_approved")
    assert record is not None
    assert (record.status, record.cause) == (
        "retry",
        "TooManyRequestsException: TooManyRequestsException!",
    )

    assert consume(event) == []  # SQS delivers it again
    assert consume(event) == []  # and once more, as a duplicate
    assert len(cloud.emails(to=address)) == 1
    record = NotificationRecord.find(event.eventId, "email", "claim_approved")
    assert record is not None
    assert (record.status, record.attempts) == ("sent", 2)


def test_a_rejected_address_stops_with_notification_failed(
    cloud: Cloud, ids: Ids, ses_errors: Callable[..., None], capsys: Any
) -> None:
    customer, address = ids("cust"), f"{ids('mail')}@example.com"
    save_profile(customer, email=address)
    event = claim_approved(customer, ids("camp"), ids("evt"))
    ses_errors("MessageRejected")

    assert consume(event) == []  # nothing to retry
    assert consume(event) == []
    assert cloud.emails(to=address) == []
    failed = [
        e
        for e in cloud.published()
        if e["detail-type"] == "NotificationFailed"
        and e["detail"]["triggerEventId"] == event.eventId
    ]
    assert failed
    assert {e["detail"]["eventId"] for e in failed} == {failed[0]["detail"]["eventId"]}
    detail = failed[0]["detail"]
    assert (detail["channel"], detail["template"], detail["customerId"]) == (
        "email",
        "claim_approved",
        customer,
    )
    assert detail["cause"].startswith("MessageRejected")
    record = NotificationRecord.find(event.eventId, "email", "claim_approved")
    assert record is not None
    assert (record.status, record.attempts) == ("failed", 1)
    assert metric_values(
        capsys.readouterr().out, "NotificationsFailed", reason="MessageRejected"
    ) == [1]


def test_a_poison_message_is_reported_failed_and_the_rest_handled(cloud: Cloud, ids: Ids) -> None:
    customer, address = ids("cust"), f"{ids('mail')}@example.com"
    save_profile(customer, email=address)
    good = envelope(claim_approved(customer, ids("camp"), ids("evt")))
    unknown = {**good, "detail-type": "SomethingElse"}
    broken = {**good, "detail": {**good["detail"], "reward": "lots"}}
    batch = sqs_batch("not json {", good, unknown, broken, "[1, 2]")
    answer = messages.handler(batch, CONTEXT)
    records = batch["Records"]
    assert failed_ids(answer) == [records[i]["messageId"] for i in (0, 2, 3, 4)]
    assert len(cloud.emails(to=address)) == 1


def test_log_lines_carry_the_events_correlation_id(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    save_profile(customer, email=f"{ids('mail')}@example.com")
    event = claim_approved(customer, ids("camp"), ids("evt"))
    event = event.model_copy(update={"correlationId": "req-from-the-storefront"})
    with captured_logs() as logs:
        assert consume(event) == []
    [line] = logs.with_message("notification sent")
    assert line["correlation_id"] == "req-from-the-storefront"
    published = [e for e in cloud.published() if e["detail"].get("triggerEventId") == event.eventId]
    assert {e["detail"]["correlationId"] for e in published} == {"req-from-the-storefront"}


# -- the purchase thank-you and its next-purchase code ----------------------------------


def thank_you_code(cloud: Cloud, address: str) -> str | None:
    """The THX code the thank-you sent to `address` shows, if any."""
    emails = cloud.emails(to=address)
    assert len(emails) == 1
    text = emails[0].get_body(("plain",))
    assert text is not None
    content = text.get_content()
    return "THX-4F7Q9M" if "THX-4F7Q9M" in content else None


@pytest.mark.parametrize(
    ("country", "opt_in", "included"),
    [
        ("DE", False, False),  # the GDPR: no promotion without consent
        (None, False, False),  # unknown: could be the EU
        ("US", False, True),  # CAN-SPAM: secondary content of a transactional message
        ("DE", True, True),
        ("JP", True, True),
    ],
)
def test_the_thank_you_carries_the_code_where_the_promotion_rule_allows(
    cloud: Cloud, ids: Ids, country: str | None, opt_in: bool, included: bool
) -> None:
    customer, address, order = ids("cust"), f"{ids('mail')}@example.com", ids("order")
    save_profile(customer, email=address, country=country, marketing_opt_in=opt_in)
    campaign = ids("camp")
    assert consume(code_issued_after(customer, campaign, order, ids("code"))) == []
    assert cloud.emails(to=address) == []  # the code waits for the thank-you
    assert consume(purchase_recorded(customer, order, ids("purchase"))) == []
    assert (thank_you_code(cloud, address) is not None) == included
    # A replayed code event tells nothing more.
    assert consume(code_issued_after(customer, campaign, order, ids("code"))) == []
    assert len(cloud.emails(to=address)) == 1


@pytest.mark.parametrize(
    ("country", "opt_in", "late_email"),
    # The rule the thank-you would have applied to the code: a US customer without
    # marketing consent gets it, as he would have inside the thank-you.
    [("JP", True, True), ("DE", False, False), ("US", False, True), (None, False, False)],
)
def test_a_code_arriving_after_the_thank_you_is_sent_on_its_own_if_allowed(
    cloud: Cloud, ids: Ids, country: str | None, opt_in: bool, late_email: bool, capsys: Any
) -> None:
    customer, address, order = ids("cust"), f"{ids('mail')}@example.com", ids("order")
    save_profile(customer, email=address, country=country, marketing_opt_in=opt_in)
    assert consume(purchase_recorded(customer, order, ids("purchase"))) == []
    assert thank_you_code(cloud, address) is None
    code = code_issued_after(customer, ids("camp"), order, ids("code"))
    assert consume(code) == []
    assert consume(code) == []  # replayed
    emails = cloud.emails(to=address)
    assert len(emails) == (2 if late_email else 1)
    if late_email:
        late = emails[1]
        assert late["X-Rebates-Template"] == "next_purchase_code"
        assert late["List-Unsubscribe"] is None  # the rest of a transactional message
        text = late.get_body(("plain",))
        assert text is not None
        assert "THX-4F7Q9M" in text.get_content()
    else:
        assert metric_values(
            capsys.readouterr().out,
            "NotificationsSuppressed",
            template="next_purchase_code",
            reason="promotion_not_allowed",
        )


def test_one_message_costs_one_send_two_ledger_writes_and_one_announcement(
    cloud: Cloud, ids: Ids, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = ids("cust")
    save_profile(customer, email=f"{ids('mail')}@example.com")
    event = claim_approved(customer, ids("camp"), ids("evt"))
    calls = count_aws_calls(monkeypatch)
    assert consume(event) == []
    operations = [operation for _, operation in calls]
    assert operations[:3] == ["GetItem", "GetItem", "UpdateItem"]
    assert "/v2/email/outbound-emails" in operations[3]
    assert operations[4:] == ["UpdateItem", "PutEvents"]


def test_emails_say_their_language_and_template_and_sms_records_their_segments(
    cloud: Cloud, ids: Ids
) -> None:
    customer, address, phone = ids("cust"), f"{ids('mail')}@example.com", unique_phone()
    save_profile(customer, email=address, phone=phone, locale="en", country="US")
    event = claim_approved(customer, ids("camp"), ids("evt"))
    assert consume(event) == []
    [email] = cloud.emails(to=address)
    assert (email["Content-Language"], email["X-Rebates-Template"]) == ("en", "claim_approved")
    sms = NotificationRecord.find(event.eventId, "sms", "claim_approved")
    assert sms is not None
    assert (sms.status, sms.locale, sms.customer_id, sms.template, sms.channel) == (
        "sent",
        "en",
        customer,
        "claim_approved",
        "sms",
    )
    assert sms.segments == 1
    assert sms.encoding == "GSM-7"


def test_sent_and_failed_are_also_counted_per_service_alone(
    cloud: Cloud, ids: Ids, ses_errors: Callable[..., None], capsys: Any
) -> None:
    from tests.unit.core.log_capture import emf_blobs

    customer = ids("cust")
    save_profile(customer, email=f"{ids('mail')}@example.com")
    assert consume(claim_approved(customer, ids("camp"), ids("evt"))) == []
    ses_errors("MessageRejected")
    assert consume(claim_approved(customer, ids("camp"), ids("evt-2"))) == []
    blobs = emf_blobs(capsys.readouterr().out)
    for name in ("NotificationsSent", "NotificationsFailed"):
        alone = [b for b in blobs if name in b and "template" not in b]
        assert alone, name
        assert alone[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_each_code_of_an_order_is_told_once(cloud: Cloud, ids: Ids) -> None:
    """A purchase in two campaigns with post-purchase offers gets two codes: the
    thank-you carries the first issued, the other follows on its own, as does a third
    that comes after the thank-you."""
    customer, address, order = ids("cust"), f"{ids('mail')}@example.com", ids("order")
    save_profile(customer, email=address, country="JP", marketing_opt_in=True)
    first = code_issued_after(customer, ids("camp-a"), order, ids("code-a"), code="THX-AAAA")
    second = code_issued_after(customer, ids("camp-b"), order, ids("code-b"), code="THX-BBBB")
    second = second.model_copy(update={"occurredAt": second.occurredAt.replace(second=1)})
    assert consume(second, first) == []
    assert consume(purchase_recorded(customer, order, ids("purchase"))) == []
    third = code_issued_after(customer, ids("camp-c"), order, ids("code-c"), code="THX-CCCC")
    assert consume(third) == []
    assert consume(first, second, third) == []  # replays tell nothing more

    emails = cloud.emails(to=address)
    assert [e["X-Rebates-Template"] for e in emails] == [
        "purchase_thank_you",
        "next_purchase_code",
        "next_purchase_code",
    ]
    texts = [e.get_body(("plain",)).get_content() for e in emails]  # type: ignore[union-attr]
    assert "THX-AAAA" in texts[0] and "THX-BBBB" not in texts[0]
    assert "THX-BBBB" in texts[1]
    assert "THX-CCCC" in texts[2]
