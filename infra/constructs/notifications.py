"""Notifications: customer profiles, the SES sender identity, and the queue that
feeds the notification worker with the events customers are told about.
"""

from __future__ import annotations

from aws_cdk import aws_ses as ses
from constructs import Construct

from functions.core.tables import CUSTOMERS
from infra.constructs.platform import Platform

# DESIGN "Notifications": claim received, approved, rejected, under review, cashback
# credited, cashback available, offer code issued, offer expiring.
NOTIFIED_DETAIL_TYPES = (
    "ClaimSubmitted",
    "ClaimApproved",
    "ClaimRejected",
    "ClaimNeedsReview",
    "CashbackCredited",
    "CashbackAvailable",
    "OfferCodeIssued",
    "OfferExpiring",
)


class Notifications(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        self.table = platform.add_table(self, CUSTOMERS)
        self.sender_email = platform.settings.sender_email
        # SES sends only from a verified identity: AWS mails a confirmation link once.
        self.sender_identity = ses.EmailIdentity(
            self, "SenderIdentity", identity=ses.Identity.email(self.sender_email)
        )
        self.events = platform.event_queue(
            self,
            "Events",
            description="Events a customer is told about, to the notification queue",
            detail_types=NOTIFIED_DETAIL_TYPES,
        )
