"""Can this shell reach an AWS account? `python -m cli.aws` answers before `make deploy` does.

The CDK CLI, given no credentials, still synthesizes (pip, jsii, cdk-nag: tens of
seconds) before failing with an SDK error that does not say what to set. This check
resolves credentials the way boto3 does, offline (no STS call), and fails at once
with what is missing and how to provide it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# The CDK CLI (the JavaScript SDK) reads AWS_REGION before AWS_DEFAULT_REGION; botocore
# reads only the second. Honouring both keeps this check, `rebates` and `cdk` agreeing
# on where the stack goes.
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")

HOW_TO_SET_CREDENTIALS = """\
Set one of these, then run it again:
  export AWS_PROFILE=my-profile        # a profile in ~/.aws/config (`aws configure`)
  aws sso login --profile my-profile   # ...when that profile uses IAM Identity Center (SSO)
  export AWS_ACCESS_KEY_ID=AKIA... AWS_SECRET_ACCESS_KEY=...   # plus AWS_SESSION_TOKEN if temporary
Looked for: AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the shared files
(AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE, ~/.aws/), SSO, and container or instance roles."""

HOW_TO_SET_REGION = """\
Set the region the stack goes to, then run it again:
  export AWS_REGION=ap-northeast-1     # or in the profile: `aws configure set region ...`"""


class AwsUnavailable(RuntimeError):
    """No usable credentials or no region; the message says what to set."""


@dataclass(frozen=True)
class AwsAccess:
    session: Any  # boto3.Session: boto3 ships no type hints here
    region: str
    method: str  # botocore's name for where the credentials came from: env, sso, iam-role...
    profile: str | None

    def client(self, service: str, **kwargs: Any) -> Any:
        return self.session.client(service, region_name=self.region, **kwargs)

    def describe(self) -> str:
        source = f"profile {self.profile}" if self.profile else self.method
        return f"AWS credentials from {source}, region {self.region}"


def _region(session: Any) -> str | None:
    for variable in REGION_VARIABLES:
        if os.environ.get(variable):
            return os.environ[variable]
    region: str | None = session.region_name
    return region


def resolve(session: Any = None) -> AwsAccess:
    """Credentials and region as boto3 (and so the CDK CLI) would find them, or `AwsUnavailable`.

    The credentials are frozen here because providers such as SSO resolve lazily: an
    expired SSO token would otherwise pass this check and fail the deploy.
    """
    try:
        session = session if session is not None else boto3.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise AwsUnavailable(f"no AWS credentials found.\n{HOW_TO_SET_CREDENTIALS}")
        frozen = credentials.get_frozen_credentials()
    except (BotoCoreError, ClientError) as error:
        # ProfileNotFound, an expired SSO token, a broken config file...
        raise AwsUnavailable(
            f"AWS credentials could not be resolved: {error}\n{HOW_TO_SET_CREDENTIALS}"
        ) from error
    if not frozen.access_key or not frozen.secret_key:
        raise AwsUnavailable(f"the AWS credentials found are incomplete.\n{HOW_TO_SET_CREDENTIALS}")
    region = _region(session)
    if not region:
        raise AwsUnavailable(f"no AWS region set.\n{HOW_TO_SET_REGION}")
    profile: str | None = session.profile_name
    if profile == "default" and not os.environ.get("AWS_PROFILE"):
        profile = None
    return AwsAccess(
        session=session, region=region, method=str(credentials.method), profile=profile
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m cli.aws [WHAT]`: exit 0 naming where credentials come from, else 2 and how."""
    what = " ".join(argv if argv is not None else sys.argv[1:]) or "this command"
    try:
        access = resolve()
    except AwsUnavailable as error:
        print(f"{what}: {error}\nStopped before running the CDK CLI.", file=sys.stderr)
        return 2
    print(f"{what}: {access.describe()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
