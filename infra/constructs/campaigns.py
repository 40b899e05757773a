"""Campaigns: the campaign files marketers upload, the campaigns table, and the
topic that tells marketers whether a file was published or rejected.

The campaigns table also holds offers, codes, budget counters and redemptions
(everything a redemption transaction touches), so the offers domain is granted
access to it rather than owning a table of its own.
"""

from __future__ import annotations

from aws_cdk import aws_sns as sns
from constructs import Construct

from functions.core.tables import CAMPAIGNS
from infra.constructs.platform import Platform
from infra.constructs.resources import secure_bucket


class Campaigns(Construct):
    def __init__(self, scope: Construct, id: str, *, platform: Platform) -> None:
        super().__init__(scope, id)
        self.table = platform.add_table(self, CAMPAIGNS)
        # campaigns/<file> uploads and reports/<file>.result.json (DESIGN "Campaign file");
        # versioning keeps every published file, deleting one archives its campaign.
        self.bucket = secure_bucket(self, "Bucket", access_logs=platform.access_logs)
        self.marketers_topic = sns.Topic(
            self,
            "MarketersTopic",
            display_name="Rebates campaign reports",
            master_key=platform.key,
            enforce_ssl=True,
        )
