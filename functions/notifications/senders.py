"""Handing messages to the providers: email through SES (v2, raw MIME), SMS through SNS,
marketers' alerts to an SNS topic. And in-memory fakes of each, for tests.

Every sender raises one of two errors, decided from the provider's error code (never its
message text):

- `TransientSendError`: throttling, quotas, the provider's own faults, timeouts and
  connection errors, and configuration or account states an operator can mend (a paused
  account, a missing identity, a denied permission). The message may be sent later: the
  consumer reports the queue message failed, SQS redelivers it after its visibility
  timeout, and after the queue's receive count it waits in the DLQ for a redrive.
- `PermanentSendError`: the provider refused this message for what it is (a rejected or
  malformed address, an opted-out or invalid phone number, an invalid parameter). No
  retry mends that: the consumer records it failed and publishes NotificationFailed.

The SDK does not retry sends itself (``max_attempts`` 1): a send that timed out may have
been accepted, and a silent SDK retry would be a duplicate the ledger never sees. The
queue retries, through the ledger. Clients are made on first use, never at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.core import aws

__all__ = [
    "EmailSender",
    "InMemoryEmailSender",
    "InMemorySmsSender",
    "InMemoryTopicSender",
    "PermanentSendError",
    "SendError",
    "SentEmail",
    "SentSms",
    "SentTopicMessage",
    "SesEmailSender",
    "SmsSender",
    "SnsSmsSender",
    "SnsTopicSender",
    "TopicSender",
    "TransientSendError",
    "classify",
]

# Connect fast, and wait for an answer well inside the invocation (and so the claim's lease).
_CLIENT_CONFIG: Final = Config(
    connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 1}
)

# Provider error codes that say: this message, as it is, will never be accepted.
# SES v2 SendEmail: MessageRejected (content or recipient refused), BadRequestException
# (an invalid address or parameter). SNS Publish: InvalidParameter (an invalid or
# opted-out number), InvalidParameterValue, ValidationException, EndpointDisabled.
PERMANENT_CODES: Final = frozenset(
    {
        "MessageRejected",
        "BadRequestException",
        "InvalidParameter",
        "InvalidParameterException",
        "InvalidParameterValue",
        "InvalidParameterValueException",
        "ValidationException",
        "EndpointDisabled",
        "EndpointDisabledException",
    }
)


class SendError(Exception):
    """A provider did not take the message; `cause` is its code and message, for people."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.cause = f"{code}: {message}" if message else code
        super().__init__(self.cause)


class TransientSendError(SendError):
    """The message may be accepted later: retry through the queue."""


class PermanentSendError(SendError):
    """The provider refused this message for good."""


def classify(error: Exception) -> SendError:
    """The send error `error` (from botocore) amounts to; anything unknown is transient,
    so it is retried and, at worst, parked in the DLQ rather than dropped."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code") or "Unknown")
        message = str(details.get("Message") or "")
        kind = PermanentSendError if code in PERMANENT_CODES else TransientSendError
        return kind(code, message)
    return TransientSendError(type(error).__name__, str(error))


# -- interfaces ---------------------------------------------------------------------------


class EmailSender(Protocol):
    def send_email(self, *, sender: str, to: str, raw: bytes) -> str:
        """Send a whole MIME message; the provider's message id."""
        ...


class SmsSender(Protocol):
    def send_sms(self, *, phone: str, text: str) -> str:
        """Send a transactional SMS to an E.164 number; the provider's message id."""
        ...


class TopicSender(Protocol):
    def publish(self, *, topic_arn: str, subject: str, text: str) -> str:
        """Publish to an SNS topic; the provider's message id."""
        ...


# -- AWS --------------------------------------------------------------------------------


class _LazyClient:
    _service: str

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client(self._service, config=_CLIENT_CONFIG)
        return self._client

    def _call(self, operation: Callable[..., dict[str, Any]], **parameters: Any) -> str:
        try:
            answer = operation(**parameters)
        except (ClientError, BotoCoreError) as error:
            raise classify(error) from error
        return str(answer["MessageId"])


class SesEmailSender(_LazyClient):
    """SES v2 ``SendEmail`` with ``Content.Raw``: our MIME, inline images and headers
    (List-Unsubscribe) as built, which the simple and template forms cannot carry."""

    _service = "sesv2"

    def send_email(self, *, sender: str, to: str, raw: bytes) -> str:
        return self._call(
            self.client.send_email,
            FromEmailAddress=sender,
            Destination={"ToAddresses": [to]},
            Content={"Raw": {"Data": raw}},
        )


class SnsSmsSender(_LazyClient):
    """SNS ``Publish`` to a phone number, as a transactional SMS (delivered ahead of
    promotional traffic, and sent to numbers on do-not-disturb lists where that is allowed)."""

    _service = "sns"

    def send_sms(self, *, phone: str, text: str) -> str:
        return self._call(
            self.client.publish,
            PhoneNumber=phone,
            Message=text,
            MessageAttributes={
                "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}
            },
        )


class SnsTopicSender(_LazyClient):
    """SNS ``Publish`` to a topic (the marketers' alerts)."""

    _service = "sns"

    def publish(self, *, topic_arn: str, subject: str, text: str) -> str:
        # SNS takes a subject of at most 100 printable ASCII characters, on one line.
        printable = "".join(c if " " <= c <= "~" else " " for c in subject)
        return self._call(
            self.client.publish,
            TopicArn=topic_arn,
            Subject=" ".join(printable.split())[:100] or "Rebates",
            Message=text,
        )


# -- in-memory fakes --------------------------------------------------------------------


@dataclass(frozen=True)
class SentEmail:
    message_id: str
    sender: str
    to: str
    raw: bytes


@dataclass(frozen=True)
class SentSms:
    message_id: str
    phone: str
    text: str


@dataclass(frozen=True)
class SentTopicMessage:
    message_id: str
    topic_arn: str
    subject: str
    text: str


@dataclass
class _Fake:
    """Records what was sent; raises each of `failures` in turn first (one per call).

    A failure is an exception instance, raised before the message counts as sent, or a
    callable run after it is recorded (a process dying between the provider's answer and
    the ledger's write).
    """

    failures: list[BaseException | Callable[[], None]] = field(default_factory=list)
    calls: int = 0

    def fail_next(self, *failures: BaseException | Callable[[], None]) -> None:
        self.failures.extend(failures)

    def _attempt(self) -> Callable[[], None] | None:
        self.calls += 1
        if not self.failures:
            return None
        failure = self.failures.pop(0)
        if isinstance(failure, BaseException):
            raise failure
        return failure

    def _id(self, count: int) -> str:
        return f"fake-{type(self).__name__.lower()}-{count}"


@dataclass
class InMemoryEmailSender(_Fake):
    sent: list[SentEmail] = field(default_factory=list)

    def send_email(self, *, sender: str, to: str, raw: bytes) -> str:
        after = self._attempt()
        message = SentEmail(self._id(len(self.sent) + 1), sender, to, raw)
        self.sent.append(message)
        if after is not None:
            after()
        return message.message_id


@dataclass
class InMemorySmsSender(_Fake):
    sent: list[SentSms] = field(default_factory=list)

    def send_sms(self, *, phone: str, text: str) -> str:
        after = self._attempt()
        message = SentSms(self._id(len(self.sent) + 1), phone, text)
        self.sent.append(message)
        if after is not None:
            after()
        return message.message_id


@dataclass
class InMemoryTopicSender(_Fake):
    sent: list[SentTopicMessage] = field(default_factory=list)

    def publish(self, *, topic_arn: str, subject: str, text: str) -> str:
        after = self._attempt()
        message = SentTopicMessage(self._id(len(self.sent) + 1), topic_arn, subject, text)
        self.sent.append(message)
        if after is not None:
            after()
        return message.message_id
