"""A marketer's upload of a campaign file, and the wait for the loader's report on it.

S3 notifies the loader asynchronously, in AWS as in the local cloud: the upload returns
at once and the report comes when the loader has finished with the file. Until then the
key's report from an earlier upload may still be there, so a report answers this upload
only when it names the upload's revision (the version id PutObject returned, else its
ETag), which the loader records on every report as the `source-revision` metadata
(`functions.campaigns.dal.CampaignFiles`).

Plain S3 calls only, as a marketer's own tooling would make them: the demo, the
integration tests and the benchmarks upload through here, and none imports handler code.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

__all__ = [
    "CampaignReport",
    "ReportTimeout",
    "report_key",
    "upload_campaign_file",
    "wait_for_report",
]

DEFAULT_TIMEOUT_SECONDS: Final = 120.0
_POLL_SECONDS: Final = 0.2
# What the loader writes (DESIGN "Campaign file"), and the revision it records there.
_REPORTS_PREFIX: Final = "reports/"
_REPORT_SUFFIX: Final = ".result.json"
_REVISION_METADATA: Final = "source-revision"


def report_key(key: str) -> str:
    """``campaigns/spring.yaml`` -> ``reports/campaigns/spring.yaml.result.json``."""
    return f"{_REPORTS_PREFIX}{key}{_REPORT_SUFFIX}"


class ReportTimeout(TimeoutError):
    """No report answered the upload in time (the loader failed, or is still working)."""


@dataclass(frozen=True)
class CampaignReport:
    """The loader's report on one upload."""

    key: str
    revision: str
    document: dict[str, Any]
    content_type: str


def upload_campaign_file(s3: Any, bucket: str, key: str, content: bytes) -> str:
    """Upload `content` as `key`; returns the revision its report will name."""
    response = s3.put_object(Bucket=bucket, Key=key, Body=content)
    return str(response.get("VersionId") or str(response["ETag"]).strip('"'))


def wait_for_report(
    s3: Any,
    bucket: str,
    key: str,
    revision: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> CampaignReport:
    """The report on `revision` of `key`, polled for until `timeout` (`ReportTimeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        response = _report(s3, bucket, key)
        if response is not None and response["Metadata"].get(_REVISION_METADATA) == revision:
            return CampaignReport(
                key=key,
                revision=revision,
                document=json.loads(response["Body"].read()),
                content_type=str(response.get("ContentType", "")),
            )
        if time.monotonic() >= deadline:
            raise ReportTimeout(
                f"no report on {key} (revision {revision}) within {timeout:g} s: the loader "
                "failed on it (see its DLQ and logs) or is still working"
            )
        time.sleep(_POLL_SECONDS)


def _report(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        response: dict[str, Any] = s3.get_object(Bucket=bucket, Key=report_key(key))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise
    return response
