"""The Rebates stack: the shared platform, the API, and one construct per domain."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.build import project_version
from infra.constructs.analytics import Analytics
from infra.constructs.api import Api
from infra.constructs.campaigns import Campaigns
from infra.constructs.claims import Claims
from infra.constructs.notifications import Notifications
from infra.constructs.offers import Offers
from infra.constructs.platform import DeploySettings, Platform
from infra.constructs.wallet import Wallet


class RebatesStack(Stack):
    """Every Rebates resource. Outputs are the public contract (DESIGN "Local cloud")."""

    def __init__(self, scope: Construct, id: str, *, code_dir: Path, layer_dir: Path) -> None:
        super().__init__(scope, id, description="Rebates: serverless e-commerce reward campaigns")
        settings = DeploySettings.from_context(self.node, version=project_version())
        self.platform = Platform(
            self, "Platform", settings=settings, code_dir=code_dir, layer_dir=layer_dir
        )
        self.api = Api(self, "Api", platform=self.platform)
        self.campaigns = Campaigns(self, "Campaigns", platform=self.platform)
        self.offers = Offers(self, "Offers", platform=self.platform, api=self.api)
        self.wallet = Wallet(self, "Wallet", platform=self.platform, api=self.api)
        self.claims = Claims(
            self,
            "Claims",
            platform=self.platform,
            api=self.api,
            credit_function=self.wallet.credit_function,
        )
        self.notifications = Notifications(
            self, "Notifications", platform=self.platform, api=self.api
        )
        self.analytics = Analytics(self, "Analytics", platform=self.platform, api=self.api)

        # Declared on the stack itself so each logical id is exactly the output key.
        outputs = {
            "ApiUrl": (self.api.url, "Stage URL; routes are {ApiUrl}/v1/..."),
            "CampaignBucketName": (self.campaigns.bucket.bucket_name, "Campaign file uploads"),
            "ArchiveBucketName": (self.analytics.archive.bucket_name, "Event archive for SQL"),
            "EventBusName": (self.platform.bus.event_bus_name, "Domain events bus"),
            "ClaimsStateMachineArn": (
                self.claims.state_machine.state_machine_arn,
                "Claim verification",
            ),
            "EventsStreamName": (self.analytics.stream.stream_name, "Conversion events"),
            "SenderEmail": (self.notifications.sender_email, "SES sender identity"),
        }
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=description)
