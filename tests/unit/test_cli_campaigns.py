from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cli.campaigns import validate_file
from cli.contracts import CAMPAIGN_SCHEMA_FILE, check_event_schemas, write_event_schemas
from cli.main import main
from tests.unit.campaigns.documents import EXAMPLES, rebate

BROKEN = EXAMPLES / "broken" / "spring-trail-broken.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["campaigns", "validate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("name", "summary"),
    [
        ("spring-trail-2027.yaml", "OK: spring-trail-2027 (rebate, 1 offer)"),
        ("summer-cashback-2027.yaml", "OK: summer-cashback-2027 (cashback, 1 offer)"),
        ("store-opening-2027.json", "OK: store-opening-2027 (offer, 2 offers)"),
    ],
)
def test_a_valid_file_says_ok(capsys: pytest.CaptureFixture[str], name: str, summary: str) -> None:
    assert run(capsys, str(EXAMPLES / name)) == (0, summary + "\n", "")


def test_an_invalid_file_prints_each_error_with_its_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, str(BROKEN))
    assert code == 1
    assert [line.partition(": ")[0] for line in out.splitlines()] == [
        "ends_at",
        "budget.amount",
        "eligibility.channels[1]",
        "reward.tiered[1].min_purchase",
        "claims.require_reciept",
    ]
    assert (
        out.splitlines()[-1]
        == "claims.require_reciept: unknown key, did you mean 'require_receipt'?"
    )
    assert err == f"{BROKEN}: invalid, 5 errors\n"


def test_a_syntax_error_is_one_error_for_the_whole_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"id": "a-b-c",\n "name": }\n', encoding="utf-8")
    code, out, err = run(capsys, str(path))
    assert (code, out) == (1, "$: not valid JSON at line 2, column 10: Expecting value\n")
    assert err.endswith("invalid, 1 error\n")


def yaml_with(**verbatim: str) -> str:
    """The valid rebate as YAML, with each key of `verbatim` written unquoted as given."""
    rest = {key: value for key, value in rebate().items() if key not in verbatim}
    return yaml.safe_dump(rest, sort_keys=False) + "".join(
        f"{key}: {value}\n" for key, value in verbatim.items()
    )


@pytest.mark.parametrize(
    "instant",
    ["2027-02-30T00:00:00+09:00", "2027-03-01T24:00:00+09:00", "2027-03-01T00:00:60+09:00"],
)
def test_an_impossible_instant_in_yaml_is_an_error_at_its_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, instant: str
) -> None:
    path = tmp_path / "spring.yaml"
    path.write_text(yaml_with(starts_at=instant), encoding="utf-8")
    assert run(capsys, str(path)) == (
        1,
        f"starts_at: '{instant}' is not a valid instant: no such date or time\n",
        f"{path}: invalid, 1 error\n",
    )


@pytest.mark.parametrize(
    "instant", ["2027-03-01T9:00:00+09:00", "2027-03-01T09:00:00+09", "2027-3-1T09:00:00Z"]
)
def test_an_instant_json_refuses_is_refused_in_yaml_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, instant: str
) -> None:
    as_yaml, as_json = tmp_path / "spring.yaml", tmp_path / "spring.json"
    as_yaml.write_text(yaml_with(starts_at=instant), encoding="utf-8")
    as_json.write_text(json.dumps(rebate(starts_at=instant)), encoding="utf-8")
    expected = (
        "starts_at: expected an RFC 3339 date-time with an offset, e.g. 2027-03-01T00:00:00+09:00\n"
    )
    assert run(capsys, str(as_yaml)) == (1, expected, f"{as_yaml}: invalid, 1 error\n")
    assert run(capsys, str(as_json)) == (1, expected, f"{as_json}: invalid, 1 error\n")


def test_a_number_too_long_to_read_is_one_error_for_the_whole_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "spring.yaml"
    path.write_text(
        yaml_with(budget=f"{{amount: {'9' * 4400}, max_rewards: 10}}"), encoding="utf-8"
    )
    code, out, err = run(capsys, str(path))
    assert (code, err) == (1, f"{path}: invalid, 1 error\n")
    assert out.startswith("$: not valid YAML at line ")
    assert out.endswith(": a number of more than 4300 digits\n")


@pytest.mark.parametrize("name", ["SPRING.YAML", "spring.Yml", "spring.JSON"])
def test_a_suffix_in_any_case_is_a_campaign_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_text(json.dumps(rebate()), encoding="utf-8")  # JSON is YAML too
    assert run(capsys, str(path)) == (0, "OK: spring-trail-2027 (rebate, 1 offer)\n", "")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("spring.txt", "unsupported file type '.txt': use .yaml, .yml or .json"),
        ("readme", "the file name 'readme' has no type: use .yaml, .yml or .json"),
    ],
)
def test_another_file_says_why_it_is_not_a_campaign_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(json.dumps(rebate()), encoding="utf-8")
    assert run(capsys, str(path)) == (1, f"$: {message}\n", f"{path}: invalid, 1 error\n")


def test_a_missing_file_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.yaml"
    assert run(capsys, str(missing)) == (
        1,
        "",
        f"error: cannot read {missing}: No such file or directory\n",
    )


def test_a_directory_is_not_a_campaign_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, str(tmp_path))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: cannot read {tmp_path}: ")


def test_validate_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["campaigns", "validate"])
    assert exit_.value.code == 2
    assert "FILE" in capsys.readouterr().err


def test_help_lists_the_campaigns_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["campaigns", "--help"])
    assert "validate" in capsys.readouterr().out


def test_validate_file_returns_the_errors(tmp_path: Path) -> None:
    assert validate_file(EXAMPLES / "spring-trail-2027.yaml") == []
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps(rebate(claims=None)), encoding="utf-8")
    assert validate_file(path) == [
        {"path": "claims", "message": "required for kind rebate: how claims are verified"}
    ]
    with pytest.raises(FileNotFoundError):
        validate_file(tmp_path / "missing.yaml")


def test_the_campaign_schema_is_a_generated_contract(tmp_path: Path) -> None:
    write_event_schemas(tmp_path)
    schema_path = tmp_path / CAMPAIGN_SCHEMA_FILE
    assert schema_path.exists()

    def campaign_problems() -> list[str]:
        return [p for p in check_event_schemas(tmp_path) if CAMPAIGN_SCHEMA_FILE in p]

    assert campaign_problems() == []
    schema_path.write_text("{}\n", encoding="utf-8")
    assert campaign_problems() == [
        f"{schema_path} is out of date with functions.campaigns.config.CampaignConfig"
    ]
    schema_path.unlink()
    assert campaign_problems() == [f"{schema_path} is missing"]
