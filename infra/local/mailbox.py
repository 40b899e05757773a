"""What the local cloud's SES and SNS accepted: the mailbox and the phones of `make run`.

In AWS a sent email leaves for the recipient's mail server and an SMS for the carrier;
locally moto keeps them in its backends. `GET /_local/mailbox` answers them as JSON, so
the demo, the integration tests and a developer (`curl`) read what a customer would
receive, each email whole (its raw MIME, as a mail client gets it), without moto's
`/moto-api/data.json`, which serialises every backend and fails on some.
"""

from __future__ import annotations

from typing import Any

from moto.ses.models import RawMessage, ses_backends
from moto.sns.models import sns_backends


def mailbox(account_id: str, region: str) -> dict[str, list[dict[str, Any]]]:
    """Every email (oldest first; raw MIME, or the simple parts) and every SMS sent."""
    emails: list[dict[str, Any]] = []
    # SES v1 and v2 share one backend in moto: SESv2 SendEmail lands here too.
    for message in ses_backends[account_id][region].sent_messages:
        if isinstance(message, RawMessage):
            emails.append(
                {
                    "messageId": message.id,
                    "source": message.source,
                    "destinations": list(message.destinations),
                    "raw": message.raw_data,
                }
            )
        else:
            emails.append(
                {
                    "messageId": message.id,
                    "source": message.source,
                    "destinations": getattr(message, "destinations", {}),
                    "subject": getattr(message, "subject", None),
                    "body": getattr(message, "body", None),
                }
            )
    texts = [
        {"messageId": message_id, "phoneNumber": phone, "message": text}
        for message_id, (phone, text) in sns_backends[account_id][region].sms_messages.items()
    ]
    return {"emails": emails, "sms": texts}
