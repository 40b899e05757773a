from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
import yaml
from pydantic import ValidationError

from cli.main import EVENTS_DIR
from functions.campaigns.config import (
    MAX_FILE_BYTES,
    MAX_OFFERS,
    CampaignConfig,
    CampaignFileError,
    campaign_json_schema,
    load_campaign_file,
    parse_campaign,
    read_campaign_document,
)
from functions.campaigns.models import MAX_OFFERS_PER_CAMPAIGN
from functions.core.clock import WindowStatus
from functions.core.money import Money
from tests.unit.campaigns.documents import EXAMPLES, campaign, offer, rebate

VALID_EXAMPLES = sorted(path for path in EXAMPLES.glob("*.*"))
BROKEN = EXAMPLES / "broken" / "spring-trail-broken.yaml"


def errors_of(document: Any) -> dict[str, str]:
    """path -> message of every error in ``document`` (which must be invalid)."""
    with pytest.raises(CampaignFileError) as raised:
        parse_campaign(document)
    paths = [error["path"] for error in raised.value.errors]
    assert len(paths) == len(set(paths)), f"an error reported twice: {paths}"
    return {error["path"]: error["message"] for error in raised.value.errors}


def file_errors(name: str, content: bytes) -> list[dict[str, str]]:
    with pytest.raises(CampaignFileError) as raised:
        load_campaign_file(name, content)
    return raised.value.errors


def as_json_document(document: Any) -> Any:
    """A YAML document as the JSON it stands for (timestamps as text)."""
    return json.loads(json.dumps(document, default=lambda value: value.isoformat()))


# -- the examples ---------------------------------------------------------------------


def test_there_is_an_example_of_every_kind() -> None:
    kinds = {load_campaign_file(p.name, p.read_bytes()).kind for p in VALID_EXAMPLES}
    assert kinds == {"rebate", "cashback", "offer"}


@pytest.mark.parametrize("path", VALID_EXAMPLES, ids=lambda path: path.name)
def test_every_example_is_valid_and_survives_storage(path: Path) -> None:
    config = load_campaign_file(path.name, path.read_bytes())
    stored = json.loads(json.dumps(config.to_document()))
    assert parse_campaign(stored) == config


@pytest.mark.parametrize("path", [*VALID_EXAMPLES, BROKEN], ids=lambda path: path.name)
def test_the_committed_schema_agrees_with_the_models_on_the_examples(path: Path) -> None:
    schema = json.loads((EVENTS_DIR / "campaign.schema.json").read_text(encoding="utf-8"))
    validate = fastjsonschema.compile(schema)
    document = as_json_document(read_campaign_document(path.name, path.read_bytes()))
    if path == BROKEN:
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            validate(document)
    else:
        validate(document)


def test_the_design_example_reads_as_written() -> None:
    config = load_campaign_file("spring.yaml", (EXAMPLES / "spring-trail-2027.yaml").read_bytes())
    assert config.starts_at == datetime(2027, 2, 28, 15, tzinfo=UTC)
    assert config.reward is not None and config.reward.tiered is not None
    assert [tier.amount for tier in config.reward.tiered] == [1000, 2500]
    assert config.offer("TRAIL10").discount.percentage == Decimal(10)
    assert config.offer("TRAIL10").codes.prefix == "TRAIL"


def test_the_store_opening_shared_code_is_stored_upper_case() -> None:
    path = EXAMPLES / "store-opening-2027.json"
    config = load_campaign_file(path.name, path.read_bytes())
    assert config.offer("OPENING500").codes.code == "SHIBUYA-OPEN"
    assert {o.channel for o in config.offers} == {"in_store", "online"}


def test_the_broken_example_reports_every_mistake_in_one_pass() -> None:
    errors = file_errors(BROKEN.name, BROKEN.read_bytes())
    assert [error["path"] for error in errors] == [
        "ends_at",
        "budget.amount",
        "eligibility.channels[1]",
        "reward.tiered[1].min_purchase",
        "claims.require_reciept",
    ]
    messages = {error["path"]: error["message"] for error in errors}
    assert "after starts_at" in messages["ends_at"]
    assert "minor unit" in messages["budget.amount"]
    assert "'online' or 'in_store'" in messages["eligibility.channels[1]"]
    assert "ascend" in messages["reward.tiered[1].min_purchase"]
    assert "did you mean 'require_receipt'" in messages["claims.require_reciept"]


def test_the_broken_example_still_names_its_campaign() -> None:
    with pytest.raises(CampaignFileError) as raised:
        load_campaign_file(BROKEN.name, BROKEN.read_bytes())
    assert raised.value.campaign_id == "spring-trail-2027"
    assert str(raised.value).startswith("ends_at: must be after starts_at")


def test_an_invalid_id_is_not_named() -> None:
    with pytest.raises(CampaignFileError) as raised:
        parse_campaign(rebate(id="Spring Trail"))
    assert raised.value.campaign_id is None


# -- independent mistakes are reported together -----------------------------------------


def test_five_mistakes_in_one_section_each_get_their_error() -> None:
    document = rebate(
        reward={
            "tiered": [
                {"min_purchase": 15000, "amount": 2500},
                {"min_purchase": 8000, "amount": 1000.5},
                {"min_purchase": 20000, "amount": 2000},
            ],
            "fixed": 100,
            "max_per_reward": 0,
            "bonus": 1,
        }
    )
    assert set(errors_of(document)) == {
        "reward",  # fixed and tiered
        "reward.tiered[1].amount",  # a float
        "reward.tiered[1].min_purchase",  # out of order
        "reward.tiered[2].amount",  # pays less than the tier from 15000
        "reward.max_per_reward",  # zero
        "reward.bonus",  # unknown
    }


def test_rules_across_sections_are_reported_beside_shape_errors() -> None:
    document = rebate(
        kind="cashback",
        currency="yen",
        ends_at="2027-02-01T00:00:00+09:00",
        claims={"window_days": 0, "auto_approve_up_to": 9_000_000},
        offers=[offer(channel="everywhere"), offer(usage={"max_total": 6000})],
    )
    assert set(errors_of(document)) == {
        "currency",
        "ends_at",
        "cashback",  # required for kind cashback
        "claims",  # only for kind rebate
        "claims.window_days",
        "claims.auto_approve_up_to",  # above budget.amount
        "offers[0].channel",
        "offers[1].id",  # TRAIL10 twice
        "offers[1].usage.max_total",  # above codes.count
    }


def test_errors_come_in_the_order_of_the_file() -> None:
    document = rebate(offers=[offer(id="bad id")], name="", zzz=1, starts_at="soon")
    assert list(errors_of(document)) == ["name", "starts_at", "offers[0].id", "zzz"]


# -- the rules, one by one -------------------------------------------------------------


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("id pattern", {"id": "Spring_Trail"}, "id", "lower-case"),
    ("id too short", {"id": "ab"}, "id", "3 to 64"),
    ("id as a number", {"id": 2027}, "id", "quotes"),
    ("blank name", {"name": "  "}, "name", "at least 1"),
    ("unknown kind", {"kind": "coupon"}, "kind", "'rebate', 'cashback' or 'offer'"),
    ("lower-case currency", {"currency": "jpy"}, "currency", "ISO 4217"),
    ("unknown zone", {"timezone": "Tokyo"}, "timezone", "IANA"),
    ("no offset", {"starts_at": "2027-03-01T00:00:00"}, "starts_at", "offset"),
    ("a date only", {"starts_at": "2027-03-01"}, "starts_at", "offset"),
    ("an empty window", {"ends_at": "2027-03-01T00:00:00+09:00"}, "ends_at", "after starts_at"),
    ("no cap", {"budget": {}}, "budget", "amount, max_rewards or both"),
    ("zero budget", {"budget": {"amount": 0}}, "budget.amount", "greater than 0"),
    ("no channel", {"eligibility": {"channels": []}}, "eligibility.channels", "at least 1"),
    (
        "a repeated channel",
        {"eligibility": {"channels": ["online", "online"]}},
        "eligibility.channels[1]",
        "listed twice (first at eligibility.channels[0])",
    ),
    (
        "skus and categories",
        {"eligibility": {"channels": ["online"], "skus": ["A"], "categories": ["shoes"]}},
        "eligibility",
        "not both",
    ),
    (
        "a repeated sku",
        {"eligibility": {"channels": ["online"], "skus": ["A", "B", "A"]}},
        "eligibility.skus[2]",
        "listed twice",
    ),
    (
        "a negative minimum",
        {"eligibility": {"channels": ["online"], "min_purchase": -1}},
        "eligibility.min_purchase",
        "greater than or equal to 0",
    ),
    ("no reward kind", {"reward": {"max_per_reward": 10}}, "reward", "exactly one of"),
    ("two reward kinds", {"reward": {"fixed": 1, "percentage": 5}}, "reward", "not fixed and"),
    (
        "a cap on a fixed reward",
        {"reward": {"fixed": 1000, "max_per_reward": 500}},
        "reward.max_per_reward",
        "percentage or tiered",
    ),
    ("no tiers", {"reward": {"tiered": []}}, "reward.tiered", "at least 1"),
    (
        "a repeated tier",
        {
            "reward": {
                "tiered": [{"min_purchase": 1, "amount": 1}, {"min_purchase": 1, "amount": 2}]
            }
        },
        "reward.tiered[1].min_purchase",
        "ascend",
    ),
    (
        "a higher tier paying less",
        {
            "reward": {
                "tiered": [{"min_purchase": 1, "amount": 5}, {"min_purchase": 9, "amount": 4}]
            }
        },
        "reward.tiered[1].amount",
        "must not earn less",
    ),
    ("percentage zero", {"reward": {"percentage": 0}}, "reward.percentage", "greater than 0"),
    ("percentage over 100", {"reward": {"percentage": 100.5}}, "reward.percentage", "100"),
    ("three decimals", {"reward": {"percentage": 12.345}}, "reward.percentage", "2 decimal"),
    ("percentage as text", {"reward": {"percentage": "10"}}, "reward.percentage", "not text"),
    ("reward missing", {"reward": None}, "reward", "required for kind rebate"),
    ("claims missing", {"claims": None}, "claims", "required for kind rebate"),
    (
        "auto-approval above budget",
        {"claims": {"window_days": 30, "auto_approve_up_to": 5_000_001}},
        "claims.auto_approve_up_to",
        "budget.amount (5000000)",
    ),
    ("claim window", {"claims": {"window_days": 0}}, "claims.window_days", "greater than"),
    (
        "review longer than an execution",
        {"claims": {"window_days": 1, "review_timeout_hours": 9000}},
        "claims.review_timeout_hours",
        "less than or equal",
    ),
    (
        "receipt flag as text",
        {"claims": {"window_days": 1, "require_receipt": "yes"}},
        "claims.require_receipt",
        "boolean",
    ),
    (
        "cashback pending",
        {"cashback": {"pending_days": -1}},
        "cashback.pending_days",
        "greater than or equal to 0",
    ),
    ("a misspelt section", {"limit": {"per_customer": 1}}, "limit", "did you mean 'limits'"),
    ("per customer zero", {"limits": {"per_customer": 0}}, "limits.per_customer", "greater than"),
    (
        "too many offers",
        {"offers": [offer(id=f"O{i}") for i in range(MAX_OFFERS + 1)]},
        "offers",
        "at most 98",
    ),
]

OFFER_CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("offer id", {"id": "TRAIL 10"}, "offers[0].id", "letters, digits"),
    ("offer channel", {"channel": "web"}, "offers[0].channel", "'online', 'in_store' or 'both'"),
    ("no discount", {"discount": {}}, "offers[0].discount", "exactly one of percentage or amount"),
    (
        "two discounts",
        {"discount": {"percentage": 5, "amount": 100}},
        "offers[0].discount",
        "not percentage and amount",
    ),
    (
        "max with an amount",
        {"discount": {"amount": 100, "max": 50}},
        "offers[0].discount.max",
        "percentage",
    ),
    ("float discount", {"discount": {"amount": 1.5}}, "offers[0].discount.amount", "minor unit"),
    (
        "unknown mode",
        {"codes": {"mode": "random", "count": 1}},
        "offers[0].codes.mode",
        "'unique' or 'shared'",
    ),
    (
        # One group: the hyphen before the random part is the code's only one.
        "prefix with a hyphen",
        {"codes": {"mode": "unique", "prefix": "tr-ail", "count": 5000}},
        "offers[0].codes.prefix",
        "letters or digits",
    ),
    (
        "long prefix",
        {"codes": {"mode": "unique", "prefix": "A" * 13, "count": 5000}},
        "offers[0].codes.prefix",
        "1 to 12",
    ),
    (
        # An empty prefix would make codes start with the separator; leaving the key out
        # is how a file asks for the default (the offer id).
        "empty prefix",
        {"codes": {"mode": "unique", "prefix": "", "count": 5000}},
        "offers[0].codes.prefix",
        "leave prefix out",
    ),
    (
        "no count",
        {"codes": {"mode": "unique"}},
        "offers[0].codes.count",
        "required for unique codes",
    ),
    (
        "zero codes",
        {"codes": {"mode": "unique", "count": 0}},
        "offers[0].codes.count",
        "greater than",
    ),
    (
        "too many codes",
        {"codes": {"mode": "unique", "count": 100_001}},
        "offers[0].codes.count",
        "100000",
    ),
    (
        "a code with unique",
        {"codes": {"mode": "unique", "count": 5000, "code": "ABC"}},
        "offers[0].codes.code",
        "not used with unique",
    ),
    (
        "no shared code",
        {"codes": {"mode": "shared"}},
        "offers[0].codes.code",
        "required for shared codes",
    ),
    (
        "bad shared code",
        {"codes": {"mode": "shared", "code": "A!"}},
        "offers[0].codes.code",
        "3 to 32",
    ),
    (
        "count with shared",
        {"codes": {"mode": "shared", "code": "ABC", "count": 3}},
        "offers[0].codes.count",
        "not used with shared",
    ),
    (
        "prefix with shared",
        {"codes": {"mode": "shared", "code": "ABC", "prefix": "A"}},
        "offers[0].codes.prefix",
        "not used with shared",
    ),
    ("max total zero", {"usage": {"max_total": 0}}, "offers[0].usage.max_total", "greater than"),
    (
        "per customer zero",
        {"usage": {"per_customer": 0}},
        "offers[0].usage.per_customer",
        "greater than",
    ),
    (
        "more uses than codes",
        {"usage": {"max_total": 5001}},
        "offers[0].usage.max_total",
        "codes.count (5000)",
    ),
    (
        "reminder zero",
        {"reminders_days_before_expiry": [0]},
        "offers[0].reminders_days_before_expiry[0]",
        "greater than",
    ),
    (
        "reminder twice",
        {"reminders_days_before_expiry": [3, 1, 3]},
        "offers[0].reminders_days_before_expiry[2]",
        "listed twice",
    ),
    (
        "issue after purchase not a boolean",
        {"issue_after_purchase": "yes"},
        "offers[0].issue_after_purchase",
        "boolean",
    ),
    (
        "a misspelt key",
        {"discount": {"percentage": 5, "maxx": 9}},
        "offers[0].discount.maxx",
        "did you mean 'max'",
    ),
]


@pytest.mark.parametrize(
    ("changes", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_mistake_is_reported_at_its_path(
    changes: dict[str, Any], path: str, fragment: str
) -> None:
    errors = errors_of(rebate(**changes))
    assert errors.keys() == {path}, errors
    assert fragment in errors[path]


@pytest.mark.parametrize(
    ("changes", "path", "fragment"), [c[1:] for c in OFFER_CASES], ids=[c[0] for c in OFFER_CASES]
)
def test_each_offer_mistake_is_reported_at_its_path(
    changes: dict[str, Any], path: str, fragment: str
) -> None:
    errors = errors_of(rebate(offers=[offer(**changes)]))
    assert errors.keys() == {path}, errors
    assert fragment in errors[path]


# -- kinds and their sections ---------------------------------------------------------


def test_a_cashback_campaign_needs_its_cashback_section_and_no_claims() -> None:
    errors = errors_of(rebate(kind="cashback"))
    assert errors == {
        "claims": "only for kind rebate: remove it or change kind",
        "cashback": "required for kind cashback: when cashback is spendable",
    }


def test_an_offer_campaign_needs_an_offer_but_no_reward() -> None:
    assert errors_of(rebate(kind="offer", claims=None, reward=None, offers=[])) == {
        "offers": "required for kind offer: at least one offer"
    }
    assert campaign(kind="offer", claims=None, reward=None).reward is None


def test_a_rebate_may_carry_cashback_settings_for_its_payout() -> None:
    config = campaign(cashback={"pending_days": 0})
    assert config.cashback is not None and config.cashback.expires_after_days is None


def test_offer_channels_must_be_open_to_the_campaign() -> None:
    online_only = {"channels": ["online"]}
    errors = errors_of(
        rebate(
            eligibility=online_only,
            offers=[offer(channel="in_store"), offer(id="B", channel="both")],
        )
    )
    assert errors == {
        "offers[0].channel": "eligibility.channels does not include in_store",
        "offers[1].channel": "eligibility.channels does not include in_store",
    }


def test_offer_ids_and_shared_codes_are_unique_within_the_file() -> None:
    shared = {"mode": "shared", "code": "spring"}
    document = rebate(
        offers=[
            offer(id="A", codes=shared),
            offer(id="B", codes={**shared, "code": "SPRING"}),
            offer(id="A"),
        ]
    )
    assert errors_of(document) == {
        "offers[1].codes.code": "'SPRING' is listed twice (first at offers[0].codes.code)",
        "offers[2].id": "'A' is listed twice (first at offers[0].id)",
    }


@pytest.mark.parametrize(
    "codes",
    [{"mode": "unique", "prefix": "THX", "count": 1000}, {"mode": "shared", "code": "THANKS"}],
    ids=["unique", "shared"],
)
def test_an_offer_may_be_issued_after_a_purchase_in_either_code_mode(
    codes: dict[str, Any],
) -> None:
    config = campaign(
        offers=[
            offer(),
            offer(
                id="THANKS500", codes=codes, usage={"per_customer": 1}, issue_after_purchase=True
            ),
        ]
    )
    assert config.offer("THANKS500").issue_after_purchase is True
    # Not unless asked: an offer's codes are asked for by the storefront.
    assert config.offer("TRAIL10").issue_after_purchase is False
    stored = json.loads(json.dumps(config.to_document()))
    assert parse_campaign(stored) == config


def test_a_purchase_issues_the_code_of_one_offer_of_a_campaign_at_most() -> None:
    document = rebate(
        offers=[
            offer(id="A", issue_after_purchase=True),
            offer(id="B", issue_after_purchase=False),
            offer(id="C", issue_after_purchase=True),
        ]
    )
    assert errors_of(document) == {
        "offers[2].issue_after_purchase": (
            "only one offer of a campaign may be issued after a purchase (offers[0] already is)"
        )
    }


def test_shared_codes_may_be_used_without_a_limit_on_their_count() -> None:
    config = campaign(
        offers=[offer(codes={"mode": "shared", "code": "Trail-10"}, usage={"max_total": 10**6})]
    )
    assert config.offers[0].codes.code == "TRAIL-10"


def test_budget_may_cap_only_the_number_of_rewards() -> None:
    config = campaign(
        budget={"max_rewards": 10}, claims={"window_days": 9, "auto_approve_up_to": 10**9}
    )
    assert config.budget.amount is None
    assert config.claims is not None and config.claims.require_receipt is True


# -- amounts, percentages, instants -----------------------------------------------------


@pytest.mark.parametrize("currency", ["JPY", "USD"])
@pytest.mark.parametrize("amount", [12.5, 1000.0, "1000", True])
def test_amounts_are_whole_minor_units_in_every_currency(currency: str, amount: object) -> None:
    errors = errors_of(rebate(currency=currency, reward={"fixed": amount}))
    assert errors.keys() == {"reward.fixed"}


def test_a_float_amount_names_the_minor_unit_rule() -> None:
    errors = errors_of(rebate(currency="USD", reward={"fixed": 12.5}))
    assert errors["reward.fixed"] == (
        "amounts are whole numbers in the minor unit of the campaign currency "
        "(JPY 1500 is 1500, USD 15.00 is 1500), not 12.5"
    )


@pytest.mark.parametrize(
    ("given", "expected"), [(10, "10"), (12.5, "12.5"), (33.33, "33.33"), (100, "100")]
)
def test_percentages_are_exact_decimals(given: float, expected: str) -> None:
    config = campaign(reward={"percentage": given, "max_per_reward": 3000})
    assert config.reward is not None and config.reward.percentage == Decimal(expected)
    stored = json.loads(json.dumps(config.to_document()))
    assert stored["reward"]["percentage"] == given
    assert parse_campaign(stored) == config


def test_instants_accept_yaml_timestamps_and_offsets_and_are_kept_in_utc() -> None:
    tokyo = timezone(timedelta(hours=9))
    config = campaign(starts_at=datetime(2027, 3, 1, tzinfo=tokyo), ends_at="2027-03-31T15:00:00Z")
    assert config.starts_at == datetime(2027, 2, 28, 15, tzinfo=UTC)
    assert config.starts_at.tzinfo is UTC
    assert config.to_document()["starts_at"] == "2027-02-28T15:00:00Z"


def test_a_yaml_timestamp_without_offset_is_refused() -> None:
    content = yaml.safe_dump(rebate(starts_at=None)).encode() + b"starts_at: 2027-03-01T00:00:00\n"
    errors = file_errors("naive.yaml", content)
    assert [e["path"] for e in errors] == ["starts_at"]
    assert "offset" in errors[0]["message"]


def test_a_yaml_timestamp_with_offset_is_accepted() -> None:
    content = (
        yaml.safe_dump(rebate(starts_at=None)).encode() + b"starts_at: 2027-03-01 00:00:00+09:00\n"
    )
    assert load_campaign_file("aware.yaml", content).starts_at == datetime(
        2027, 2, 28, 15, tzinfo=UTC
    )


# -- files ----------------------------------------------------------------------------


def yaml_file(document: Any) -> bytes:
    return yaml.safe_dump(document, sort_keys=False).encode()


@pytest.mark.parametrize("name", ["a.yaml", "a.yml", "A.YAML", "campaigns/deep/a.Yml"])
def test_yaml_suffixes(name: str) -> None:
    assert load_campaign_file(name, yaml_file(rebate())).id == "spring-trail-2027"


def test_json_files() -> None:
    assert load_campaign_file("a.json", json.dumps(rebate()).encode()).kind == "rebate"


def test_a_utf8_byte_order_mark_is_fine() -> None:
    assert load_campaign_file("a.json", b"\xef\xbb\xbf" + json.dumps(rebate()).encode()).id


@pytest.mark.parametrize("name", ["a.txt", "a", "a.yaml.bak", "a.toml"])
def test_other_suffixes_are_refused(name: str) -> None:
    [error] = file_errors(name, yaml_file(rebate()))
    assert error["path"] == "$"
    assert "use .yaml, .yml or .json" in error["message"]


def test_a_yaml_syntax_error_gives_line_and_column() -> None:
    content = b"id: spring\nname: [unclosed\nkind: rebate\n"
    [error] = file_errors("bad.yaml", content)
    assert error["path"] == "$"
    assert error["message"].startswith("not valid YAML at line ")
    assert "column" in error["message"]


def test_a_yaml_indentation_error_points_at_its_line() -> None:
    content = b"id: spring\nbudget:\n  amount: 1\n bad: 2\n"
    [error] = file_errors("bad.yaml", content)
    assert "line 4, column 2" in error["message"]


def test_a_json_syntax_error_gives_line_and_column() -> None:
    [error] = file_errors("bad.json", b'{\n  "id": "spring",\n  "name": }')
    assert error == {"path": "$", "message": "not valid JSON at line 3, column 11: Expecting value"}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("twice.yaml", b"id: a-b-c\nreward: {fixed: 1}\nreward: {fixed: 2}\n"),
        ("twice.json", b'{"id": "a-b-c", "reward": {"fixed": 1}, "reward": {"fixed": 2}}'),
    ],
)
def test_a_key_given_twice_is_an_error_not_a_silent_override(name: str, content: bytes) -> None:
    [error] = file_errors(name, content)
    assert error["path"] == "$"
    assert "'reward' twice" in error["message"]


def test_yaml_merge_keys_may_be_overridden() -> None:
    content = yaml_file(rebate(offers=None)) + (
        b"offers:\n"
        b"  - &base {id: A, channel: online, discount: {amount: 100},\n"
        b"           codes: {mode: shared, code: AAA}}\n"
        b"  - <<: *base\n"
        b"    id: B\n"
        b"    codes: {mode: shared, code: BBB}\n"
    )
    config = load_campaign_file("merge.yaml", content)
    assert [(o.id, o.codes.code) for o in config.offers] == [("A", "AAA"), ("B", "BBB")]


def test_yaml_never_builds_python_objects() -> None:
    [error] = file_errors("evil.yaml", b"id: !!python/object/apply:os.system ['true']\n")
    assert error["path"] == "$"
    assert "not valid YAML" in error["message"]


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    [error] = file_errors("bomb.yaml", "\n".join(lines).encode())
    assert "more than 100000 values" in error["message"]


def test_json_nan_is_refused() -> None:
    [error] = file_errors("nan.json", b'{"reward": {"percentage": NaN}}')
    assert error == {"path": "$", "message": "not valid JSON: NaN is not a number JSON allows"}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "not empty"),
        (b"# just a comment\n", "not empty"),
        (b"- id: a\n", "not a list"),
        (b"hello\n", "not a str"),
    ],
)
def test_a_document_that_is_not_a_mapping(content: bytes, fragment: str) -> None:
    [error] = file_errors("a.yaml", content)
    assert error["path"] == "$"
    assert fragment in error["message"]


def test_a_file_that_is_not_utf8() -> None:
    [error] = file_errors("a.yaml", "name: café".encode("latin-1"))
    assert error == {"path": "$", "message": "the file is not UTF-8 text (byte 9)"}


def test_a_file_that_is_too_large() -> None:
    [error] = file_errors("a.yaml", b"#" * (MAX_FILE_BYTES + 1))
    assert "larger than 1024 KiB" in error["message"]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    [error] = file_errors("deep.json", b"[" * 100_000 + b"]" * 100_000)
    assert error["path"] == "$"


# -- the model as others use it -------------------------------------------------------


def test_the_model_on_its_own_enforces_the_rules_too() -> None:
    with pytest.raises(ValidationError) as raised:
        CampaignConfig.model_validate(rebate(claims=None, reward={"fixed": 1, "percentage": 1}))
    [error] = raised.value.errors()
    assert error["type"] == "campaign_rules"
    assert "reward: give exactly one of" in error["msg"]
    assert "claims: required for kind rebate" in error["msg"]


def test_the_model_reads_its_stored_json_back() -> None:
    config = campaign()
    assert CampaignConfig.model_validate_json(json.dumps(config.to_document())) == config


def test_window_offer_and_money_helpers() -> None:
    config = campaign()
    assert config.window.status_at(datetime(2027, 2, 28, 15, tzinfo=UTC)) is WindowStatus.OPEN
    assert config.window.status_at(datetime(2027, 3, 31, 15, tzinfo=UTC)) is WindowStatus.EXPIRED
    assert config.offer("TRAIL10").usage.max_total == 5000
    with pytest.raises(KeyError, match="NOPE"):
        config.offer("NOPE")
    assert config.money(1500) == Money.of(1500, "JPY")


def test_a_parsed_campaign_is_immutable_and_hashable() -> None:
    config = campaign()
    with pytest.raises(ValidationError):
        config.name = "other"  # type: ignore[misc]
    assert hash(config) == hash(campaign())


def test_the_offer_limit_is_the_publish_transaction_limit() -> None:
    assert MAX_OFFERS == MAX_OFFERS_PER_CAMPAIGN


def test_the_json_schema_is_generated_from_the_models() -> None:
    schema = campaign_json_schema()
    assert schema["title"] == "Rebates campaign file"
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"id", "kind", "currency", "budget", "eligibility"}
    kinds = {c["if"]["properties"]["kind"]["const"]: c["then"] for c in schema["allOf"]}
    assert kinds["rebate"] == {"required": ["claims", "reward"]}
