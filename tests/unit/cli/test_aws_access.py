"""`python -m cli.aws`: the check `make deploy` runs before it touches npm or the CDK."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from cli.aws import AwsUnavailable, main, resolve


def test_no_credentials_says_what_to_set(bare_aws_env: Path) -> None:
    with pytest.raises(AwsUnavailable) as error:
        resolve()
    message = str(error.value)
    assert "no AWS credentials found" in message
    for hint in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws sso login"):
        assert hint in message


def test_credentials_without_a_region_ask_for_one(
    bare_aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with pytest.raises(AwsUnavailable, match="no AWS region set") as error:
        resolve()
    assert "AWS_REGION" in str(error.value)


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_environment_credentials_and_region(
    bare_aws_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv(variable, "ap-northeast-1")
    access = resolve()
    assert (access.region, access.method, access.profile) == ("ap-northeast-1", "env", None)
    assert access.describe() == "AWS credentials from env, region ap-northeast-1"


def test_aws_region_wins_as_the_cdk_cli_reads_it(
    bare_aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert resolve().region == "eu-west-1"


def test_a_profile_from_the_shared_files(
    bare_aws_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (bare_aws_env / "config").write_text("[profile shop]\nregion = ap-northeast-1\n")
    (bare_aws_env / "credentials").write_text(
        "[shop]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = secret\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(bare_aws_env / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(bare_aws_env / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "shop")
    access = resolve()
    assert (access.region, access.profile) == ("ap-northeast-1", "shop")
    assert access.describe() == "AWS credentials from profile shop, region ap-northeast-1"
    assert access.client("sts").meta.region_name == "ap-northeast-1"


def test_a_missing_profile_is_named(bare_aws_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nowhere")
    with pytest.raises(AwsUnavailable, match=r"nowhere.*could not be found"):
        resolve()


def test_an_explicit_session_is_used(bare_aws_env: Path) -> None:
    session = boto3.Session(
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="secret", region_name="us-west-2"
    )
    assert resolve(session).region == "us-west-2"


def test_main_exits_2_with_the_message(
    bare_aws_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["make", "deploy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("make deploy: no AWS credentials found")
    assert "Stopped before running the CDK CLI" in err


def test_main_exits_0_naming_the_source(
    bare_aws_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "ap-northeast-1")
    assert main(["make", "diff"]) == 0
    assert capsys.readouterr().err == "make diff: AWS credentials from env, region ap-northeast-1\n"
