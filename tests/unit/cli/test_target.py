"""Stack outputs from `.local/outputs.json` or CloudFormation, and which one a command uses."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

import cli.target
from cli.aws import resolve
from cli.main import main
from cli.target import (
    STACK_NAME,
    Target,
    TargetUnavailable,
    announce,
    aws_target,
    local_target,
    read_api_key,
    read_local_outputs,
    read_stack_outputs,
    requested_target,
    resolve_target,
)

REGION = "ap-northeast-1"
LOCAL = {
    "ApiUrl": "http://127.0.0.1:3000",
    "AwsEndpoint": "http://127.0.0.1:4566",
    "Region": REGION,
    "ApiKey": "local-key",
    "CampaignBucketName": "rebates-campaigns-local",
}
# A stand-in for the deployed stack: one resource moto deploys, the contract's outputs.
TEMPLATE = {
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {
        "ApiUrl": {"Value": "https://abc123.execute-api.ap-northeast-1.amazonaws.com/prod"},
        "CampaignBucketName": {"Value": "rebates-campaignsbucket-xyz"},
        "QueueUrl": {"Value": {"Ref": "Queue"}},
    },
}


@pytest.fixture
def outputs_file(tmp_path: Path) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(LOCAL))
    return path


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The local cloud answers its health probe; records the URLs probed."""
    probed: list[str] = []

    class Response(io.BytesIO):
        status = 200

        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    def urlopen(url: str, timeout: float) -> Response:
        probed.append(url)
        return Response(b'{"status": "ok"}')

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return probed


@pytest.fixture
def silent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing answers: outputs.json outlived its cloud."""

    def urlopen(url: str, timeout: float) -> None:
        raise urllib.error.URLError(ConnectionRefusedError(111, "refused"))

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


@pytest.fixture
def deployed(bare_aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Credentials, a region and a CloudFormation stack named Rebates, in moto."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=json.dumps(TEMPLATE))
        yield cloudformation


# -- local ------------------------------------------------------------------------------


def test_local_outputs_are_read_from_the_file(outputs_file: Path) -> None:
    assert read_local_outputs(outputs_file) == LOCAL


def test_missing_local_outputs_say_how_to_start_the_cloud(tmp_path: Path) -> None:
    with pytest.raises(TargetUnavailable, match="make run"):
        read_local_outputs(tmp_path / "outputs.json")


@pytest.mark.parametrize("content", ["{not json", '{"ApiUrl": "x"}', "[]"])
def test_broken_local_outputs_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(content)
    with pytest.raises(TargetUnavailable, match="make run"):
        read_local_outputs(path)


def test_local_target(outputs_file: Path, answering: list[str]) -> None:
    target = local_target(outputs_file)
    assert answering == ["http://127.0.0.1:3000/v1/health"]
    assert target.kind == "local"
    assert target.description == "local cloud at http://127.0.0.1:4566 (API http://127.0.0.1:3000)"
    assert (target.region, target.api_url, target.api_key()) == (
        REGION,
        "http://127.0.0.1:3000",
        "local-key",
    )
    assert target.output("CampaignBucketName") == "rebates-campaigns-local"
    client = target.client("s3")
    assert client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert client.meta.region_name == REGION


def test_an_unknown_output_lists_the_known_ones(outputs_file: Path, answering: list[str]) -> None:
    with pytest.raises(TargetUnavailable, match=r"no output 'Nope'.*ApiUrl"):
        local_target(outputs_file).output("Nope")


def test_a_stale_outputs_file_is_not_a_running_cloud(outputs_file: Path, silent: None) -> None:
    with pytest.raises(TargetUnavailable, match=r"no local cloud answers.*make run"):
        local_target(outputs_file)


# -- AWS --------------------------------------------------------------------------------


def test_stack_outputs_from_cloudformation(deployed: Any) -> None:
    outputs, stack_id = read_stack_outputs(deployed)
    assert outputs["ApiUrl"] == "https://abc123.execute-api.ap-northeast-1.amazonaws.com/prod"
    assert outputs["CampaignBucketName"] == "rebates-campaignsbucket-xyz"
    assert "QueueUrl" in outputs  # every output, not only the contract's
    assert stack_id.startswith(f"arn:aws:cloudformation:{REGION}:123456789012:stack/Rebates/")


def test_a_stack_not_deployed_says_make_deploy(deployed: Any) -> None:
    with pytest.raises(TargetUnavailable, match=r"no stack Elsewhere here: deploy it"):
        read_stack_outputs(deployed, "Elsewhere")


def test_aws_target_names_stack_region_and_account(deployed: Any) -> None:
    target = aws_target()
    assert target.kind == "aws"
    assert target.description == f"AWS stack Rebates in {REGION}, account 123456789012"
    assert target.api_url == "https://abc123.execute-api.ap-northeast-1.amazonaws.com/prod"
    assert target.client("s3").meta.region_name == REGION
    assert "Region" not in target.outputs and target.region == REGION


def test_aws_target_names_the_profile(bare_aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bare_aws_env / "config").write_text(f"[profile shop]\nregion = {REGION}\n")
    (bare_aws_env / "credentials").write_text(
        "[shop]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(bare_aws_env / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(bare_aws_env / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "shop")
    with mock_aws():
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=STACK_NAME, TemplateBody=json.dumps(TEMPLATE)
        )
        target = aws_target()
    assert target.description.endswith("account 123456789012, profile shop")


def test_the_api_key_is_read_from_api_gateway(deployed: Any) -> None:
    # moto's CloudFormation cannot create an ApiKey: the stack's resources are stubbed,
    # the key itself lives in moto's API Gateway.
    access = resolve()
    key = access.client("apigateway").create_api_key(
        name="generated", value="the-storefront-key-value"
    )
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stubber = Stubber(cloudformation)
    summary = {"ResourceStatus": "CREATE_COMPLETE", "LastUpdatedTimestamp": "2027-01-01T00:00Z"}
    stubber.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                {
                    "LogicalResourceId": "ApiRestApi",
                    "PhysicalResourceId": "abc123",
                    "ResourceType": "AWS::ApiGateway::RestApi",
                    **summary,
                },
                {
                    "LogicalResourceId": "ApiRestApiStorefrontKey9B97B348",
                    "PhysicalResourceId": key["id"],
                    "ResourceType": "AWS::ApiGateway::ApiKey",
                    **summary,
                },
            ]
        },
        {"StackName": STACK_NAME},
    )

    class Access:
        def client(self, service: str) -> Any:
            return cloudformation if service == "cloudformation" else access.client(service)

    with stubber:
        assert read_api_key(Access()) == "the-storefront-key-value"


def test_a_stack_without_its_key_is_reported(deployed: Any) -> None:
    with pytest.raises(TargetUnavailable, match="0 API keys"):
        read_api_key(resolve())


# -- choosing ---------------------------------------------------------------------------


def test_the_flag_beats_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REBATES_TARGET", "aws")
    assert requested_target("local") == "local"
    assert requested_target(None) == "aws"
    monkeypatch.setenv("REBATES_TARGET", " Local ")
    assert requested_target(None) == "local"
    monkeypatch.delenv("REBATES_TARGET")
    assert requested_target(None) is None
    monkeypatch.setenv("REBATES_TARGET", "prod")
    with pytest.raises(TargetUnavailable, match="expected one of local, aws"):
        requested_target(None)


def _aws_stand_in() -> Target:
    return Target(
        kind="aws",
        outputs={"ApiUrl": "https://x"},
        region=REGION,
        description="AWS stack Rebates in ap-northeast-1, account 111122223333",
        make_client=lambda service: None,
        fetch_api_key=lambda: "k",
    )


def test_auto_prefers_a_local_cloud_that_answers(outputs_file: Path, answering: list[str]) -> None:
    target, reason = resolve_target(None, outputs_path=outputs_file, aws=_aws_stand_in)
    assert (target.kind, reason) == ("local", None)


def test_auto_falls_back_to_aws_and_says_why(outputs_file: Path, silent: None) -> None:
    target, reason = resolve_target(None, outputs_path=outputs_file, aws=_aws_stand_in)
    assert target.kind == "aws"
    assert reason is not None and "no local cloud answers" in reason and "--target local" in reason


def test_auto_with_nothing_reachable_explains_both(bare_aws_env: Path) -> None:
    with pytest.raises(TargetUnavailable) as error:
        resolve_target(None, outputs_path=bare_aws_env / "outputs.json")
    message = str(error.value)
    assert "Local:" in message and "make run" in message
    assert "AWS: no AWS credentials found" in message


def test_asking_for_local_never_falls_back(outputs_file: Path, silent: None) -> None:
    with pytest.raises(TargetUnavailable, match="make run"):
        resolve_target("local", outputs_path=outputs_file, aws=_aws_stand_in)


def test_announce_goes_to_the_stream() -> None:
    stream = io.StringIO()
    announce(_aws_stand_in(), "no local cloud", stream)
    assert stream.getvalue() == (
        "rebates: talking to the AWS stack Rebates in ap-northeast-1, account 111122223333\n"
        "rebates: (not the local cloud: no local cloud)\n"
    )


# -- `rebates outputs` ------------------------------------------------------------------


def test_outputs_command_on_the_local_cloud(
    outputs_file: Path,
    answering: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli.target, "LOCAL_OUTPUTS", outputs_file)
    assert main(["outputs"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == LOCAL
    assert (
        err
        == "rebates: talking to the local cloud at http://127.0.0.1:4566 (API http://127.0.0.1:3000)\n"
    )
    assert main(["outputs", "ApiKey", "--target", "local"]) == 0
    assert capsys.readouterr().out == "local-key\n"


def test_outputs_command_on_aws(
    deployed: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--target", "aws", "outputs", "CampaignBucketName"]) == 0
    out, err = capsys.readouterr()
    assert out == "rebates-campaignsbucket-xyz\n"
    assert err == f"rebates: talking to the AWS stack Rebates in {REGION}, account 123456789012\n"


def test_outputs_command_reports_what_is_missing(
    bare_aws_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outputs", "--target", "aws"]) == 1
    assert "no AWS credentials found" in capsys.readouterr().err


def test_local_commands_refuse_aws(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["local", "clock", "--target", "aws"]) == 1
    assert "local cloud only" in capsys.readouterr().err
