"""Event contracts: every detail-type has a model, a committed schema and a sample that agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from pydantic import ValidationError

from cli.contracts import (
    DRAFT_07,
    check_event_schemas,
    detail_schema,
    render_schema,
    write_event_schemas,
)
from functions.core.clock import frozen_at
from functions.core.event_types import (
    EVENT_TYPES,
    CashbackCredited,
    CashbackSpent,
    ClaimApproved,
    ClaimRejected,
    EventDetail,
)
from functions.core.events import EVENTS_DIR, detail_sample_path, detail_schema_path
from functions.core.ids import is_valid_id
from functions.core.money import Money

# The list in DESIGN.md ("Events"), with the domain that publishes each type.
DESIGN_SOURCES = {
    "CampaignPublished": "rebates.campaigns",
    "CampaignRejected": "rebates.campaigns",
    "OfferCodeIssued": "rebates.offers",
    "OfferRedeemed": "rebates.offers",
    "RedemptionRolledBack": "rebates.offers",
    "OfferExpiring": "rebates.offers",
    "PurchaseRecorded": "rebates.wallet",
    "PurchaseRefunded": "rebates.wallet",
    "ClaimSubmitted": "rebates.claims",
    "ClaimNeedsReview": "rebates.claims",
    "ClaimApproved": "rebates.claims",
    "ClaimRejected": "rebates.claims",
    "CashbackCredited": "rebates.wallet",
    "CashbackAvailable": "rebates.wallet",
    "CashbackSpent": "rebates.wallet",
    "CashbackReversed": "rebates.wallet",
    "CashbackExpired": "rebates.wallet",
    # Beyond DESIGN's list: the warning before `CashbackExpired` that notifications sends
    # (issue 12, "Reminders"), as `OfferExpiring` is the warning before a code expires.
    "CashbackExpiring": "rebates.wallet",
    "NotificationSent": "rebates.notifications",
    "NotificationFailed": "rebates.notifications",
}
ENVELOPE_KEYS = {
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
}

detail_types = pytest.mark.parametrize("detail_type", sorted(DESIGN_SOURCES))


def load_sample(detail_type: str) -> dict[str, Any]:
    sample: dict[str, Any] = json.loads(detail_sample_path(detail_type).read_text(encoding="utf-8"))
    return sample


def committed_validator(detail_type: str) -> Any:
    schema = json.loads(detail_schema_path(detail_type).read_text(encoding="utf-8"))
    return fastjsonschema.compile(schema)


def claim_approved(**overrides: Any) -> ClaimApproved:
    fields: dict[str, Any] = {
        "campaignId": "spring-trail-2027",
        "customerId": "cus_48213977",
        "claimId": "clm_01MGN0V7P0R10X0FP7BHA6N8GJ",
        "reward": Money(amount=2500, currency="JPY"),
        **overrides,
    }
    return ClaimApproved.model_validate(fields)


# -- the catalogue ----------------------------------------------------------------------


def test_every_design_detail_type_has_a_model() -> None:
    assert set(EVENT_TYPES) == set(DESIGN_SOURCES)


@detail_types
def test_model_declares_its_detail_type_and_source(detail_type: str) -> None:
    model = EVENT_TYPES[detail_type]
    assert model.detail_type == detail_type
    assert model.__name__ == detail_type
    assert model.source == DESIGN_SOURCES[detail_type]


@detail_types
def test_every_detail_carries_its_identity_and_time(detail_type: str) -> None:
    required = detail_schema(EVENT_TYPES[detail_type])["required"]
    assert {"eventId", "occurredAt", "correlationId"} <= set(required)


@detail_types
def test_every_detail_may_carry_a_correlation_id_or_null(detail_type: str) -> None:
    schema = detail_schema(EVENT_TYPES[detail_type])["properties"]["correlationId"]
    assert [option["type"] for option in schema["anyOf"]] == ["string", "null"]
    assert EVENT_TYPES[detail_type].model_fields["correlationId"].default is None


# -- committed files --------------------------------------------------------------------


@detail_types
def test_schema_and_sample_files_exist(detail_type: str) -> None:
    assert detail_schema_path(detail_type).is_file()
    assert detail_sample_path(detail_type).is_file()


@detail_types
def test_sample_is_an_eventbridge_envelope_of_its_type(detail_type: str) -> None:
    sample = load_sample(detail_type)
    assert set(sample) == ENVELOPE_KEYS
    assert sample["version"] == "0"
    assert sample["detail-type"] == detail_type
    assert sample["source"] == EVENT_TYPES[detail_type].source
    assert sample["account"] == "123456789012"
    assert sample["region"] == "ap-northeast-1"


@detail_types
def test_sample_detail_validates_against_the_committed_schema(detail_type: str) -> None:
    committed_validator(detail_type)(load_sample(detail_type)["detail"])


@detail_types
def test_sample_detail_parses_and_dumps_back_unchanged(detail_type: str) -> None:
    # Samples are written in the published form, so they must survive a round trip
    # exactly: key set, instants (UTC, `Z`) and money objects.
    detail = load_sample(detail_type)["detail"]
    parsed = EVENT_TYPES[detail_type].model_validate(detail)
    assert parsed.model_dump(mode="json", by_alias=True) == detail


def test_committed_schemas_are_what_the_models_generate() -> None:
    # Fails when a model changes without `rebates contracts generate`.
    assert check_event_schemas(EVENTS_DIR) == []


# -- the generator ----------------------------------------------------------------------


@detail_types
def test_generated_schema_is_self_contained_draft_07(detail_type: str) -> None:
    schema = detail_schema(EVENT_TYPES[detail_type])
    text = render_schema(schema)

    assert schema["$schema"] == DRAFT_07
    assert schema["title"] == detail_type
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])
    assert "$ref" not in text
    assert "$defs" not in text
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_nested_objects_are_closed_and_money_is_an_integer() -> None:
    schema = detail_schema(ClaimApproved)
    reward = schema["properties"]["reward"]
    assert reward["additionalProperties"] is False
    assert reward["properties"]["amount"]["type"] == "integer"
    validate = fastjsonschema.compile(schema)
    detail = claim_approved().model_dump(mode="json")
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate({**detail, "reward": {"amount": 25.5, "currency": "JPY"}})
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        validate({**detail, "reward": {"amount": 2500, "currency": "JPY", "fx": 1}})


def test_write_then_check_is_clean_and_deterministic(tmp_path: Path) -> None:
    first = write_event_schemas(tmp_path)
    contents = [path.read_text(encoding="utf-8") for path in first]
    second = write_event_schemas(tmp_path)

    assert first == second
    assert [path.read_text(encoding="utf-8") for path in second] == contents
    assert {path.name for path in first} == {f"{name}.schema.json" for name in DESIGN_SOURCES}
    # Only the samples are reported: they are hand-written, not generated.
    problems = check_event_schemas(tmp_path)
    assert len(problems) == len(DESIGN_SOURCES)
    assert all(".sample.json is missing" in problem for problem in problems)


def test_check_names_edited_missing_and_stale_schemas(tmp_path: Path) -> None:
    write_event_schemas(tmp_path)
    edited = detail_schema_path("ClaimApproved", tmp_path)
    edited.write_text(edited.read_text(encoding="utf-8").replace("reviewer", "approver"))
    detail_schema_path("OfferRedeemed", tmp_path).unlink()
    stale = detail_schema_path("ClaimWithdrawn", tmp_path)
    stale.write_text("{}\n")

    problems = [p for p in check_event_schemas(tmp_path) if ".sample.json" not in p]

    assert problems == [
        f"{edited} is out of date with functions.core.event_types.ClaimApproved",
        f"{detail_schema_path('OfferRedeemed', tmp_path)} is missing",
        f"{stale} has no detail-type in EVENT_TYPES",
    ]
    write_event_schemas(tmp_path)
    assert not stale.exists()


def test_check_reports_a_sample_that_no_longer_fits(tmp_path: Path) -> None:
    write_event_schemas(tmp_path)
    for detail_type in DESIGN_SOURCES:
        sample = load_sample(detail_type)
        if detail_type == "ClaimRejected":
            sample["source"] = "rebates.wallet"
            del sample["detail"]["reasons"]
        detail_sample_path(detail_type, tmp_path).write_text(json.dumps(sample))

    problems = check_event_schemas(tmp_path)

    path = detail_sample_path("ClaimRejected", tmp_path)
    assert len(problems) == 3
    assert problems[0] == f"{path}: source is 'rebates.wallet', expected 'rebates.claims'"
    assert problems[1].startswith(f"{path}: detail does not match the schema")
    assert problems[2].startswith(f"{path}: detail does not parse as ClaimRejected")


# -- the models -------------------------------------------------------------------------


def test_event_id_and_occurred_at_default_to_a_new_id_and_now() -> None:
    now = datetime(2027, 3, 10, 4, 2, 55, tzinfo=UTC)
    with frozen_at(now):
        first, second = claim_approved(), claim_approved()
    assert is_valid_id(first.eventId, "evt")
    assert first.eventId != second.eventId
    assert first.occurredAt == now
    assert first.model_dump(mode="json")["occurredAt"] == "2027-03-10T04:02:55Z"


def test_instants_need_an_offset_and_are_published_in_utc() -> None:
    detail = claim_approved(occurredAt="2027-03-10T13:02:55+09:00")
    assert detail.model_dump(mode="json")["occurredAt"] == "2027-03-10T04:02:55Z"
    with pytest.raises(ValidationError, match="offset"):
        claim_approved(occurredAt="2027-03-10T13:02:55")


def test_details_are_closed_and_immutable() -> None:
    with pytest.raises(ValidationError, match=r"Extra inputs are not permitted"):
        claim_approved(approvedBy="y.tanaka")
    detail = claim_approved()
    with pytest.raises(ValidationError):
        detail.reviewer = "someone"  # type: ignore[misc]


def test_amounts_are_money_never_floats() -> None:
    with pytest.raises(ValidationError):
        claim_approved(reward={"amount": 2500.0, "currency": "JPY"})
    with pytest.raises(ValidationError):
        claim_approved(reward=2500)


def test_moved_amounts_are_never_negative_but_balances_may_be() -> None:
    with pytest.raises(ValidationError, match="never negative"):
        claim_approved(reward=Money(amount=-2500, currency="JPY"))
    spent = CashbackSpent(
        customerId="cus_7730415",
        entryId="wle_1",
        amount=Money(amount=1000, currency="USD"),
        orderId="1001-60114",
        availableBalance=Money(amount=-25, currency="USD"),
    )
    assert spent.availableBalance.is_negative


def test_claim_rejected_needs_snake_case_reasons() -> None:
    base = {"campaignId": "spring-trail-2027", "customerId": "c-1", "claimId": "clm_1"}
    assert ClaimRejected.model_validate({**base, "reasons": ["outside_window"]}).reasons == [
        "outside_window"
    ]
    with pytest.raises(ValidationError):
        ClaimRejected.model_validate({**base, "reasons": []})
    with pytest.raises(ValidationError):
        ClaimRejected.model_validate({**base, "reasons": ["Outside window"]})


@pytest.mark.parametrize(
    ("claim_id", "order_id"), [(None, None), ("clm_01MGN0V7P0R10X0FP7BHA6N8GJ", "1001-58372")]
)
def test_cashback_credit_comes_from_exactly_one_claim_or_order(
    claim_id: str | None, order_id: str | None
) -> None:
    with pytest.raises(ValidationError, match="exactly one of claimId and orderId"):
        CashbackCredited.model_validate(
            {
                "campaignId": "summer-run-cashback-2027",
                "customerId": "cus_7730415",
                "entryId": "wle_1",
                "amount": {"amount": 799, "currency": "USD"},
                "claimId": claim_id,
                "orderId": order_id,
                "availableAt": "2027-04-07T04:00:00Z",
            }
        )


def test_field_groups_are_not_detail_types() -> None:
    # Only concrete details are registered; the shared bases are building blocks.
    assert all(model is not EventDetail for model in EVENT_TYPES.values())
    assert all(issubclass(model, EventDetail) for model in EVENT_TYPES.values())
