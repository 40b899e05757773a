"""SES email identities."""

from __future__ import annotations

from typing import Any

from infra.local.deploy.core import DeployContext
from infra.local.deploy.records import Deployed


def deploy_email_identity(
    context: DeployContext, logical_id: str, properties: dict[str, Any]
) -> Deployed:
    # moto sends only from a verified identity, and verifies at once. SES v1 and v2
    # share one backend in moto, so v1's verify call serves v1 and v2 sends alike.
    identity = str(properties["EmailIdentity"])
    ses = context.client("ses")
    if "@" in identity:
        ses.verify_email_identity(EmailAddress=identity)
    else:
        ses.verify_domain_identity(Domain=identity)
    return Deployed(identity)
