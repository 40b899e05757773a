"""The notifications domain's refusals, in its own terms: no HTTP status.

The profile API maps them to statuses in one place (`functions.notifications.handlers.api`);
the unsubscribe pages answer a bad token with a page of their own, never an error body.
"""

from __future__ import annotations

from functions.core.errors import DomainError

__all__ = ["Contended", "NotificationsError", "ProfileNotFound"]


class NotificationsError(DomainError):
    """Base of every refusal of the notifications domain."""

    code = "notifications_error"


class ProfileNotFound(NotificationsError):
    """No profile was ever stored for this customer."""

    code = "profile_not_found"

    def __init__(self, customer_id: str) -> None:
        super().__init__("No profile is stored for this customer.", {"customerId": customer_id})


class Contended(NotificationsError):
    """Concurrent changes to one profile kept refusing this one; the client retries."""

    code = "contended"

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            "Too many concurrent changes to this profile, retry shortly.",
            {"customerId": customer_id},
        )
