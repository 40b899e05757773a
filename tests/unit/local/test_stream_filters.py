"""Lambda event filtering for the local cloud: the grammar, case by case, then the offers
outbox's own filters, as the stack emits them, over real stream records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.offers.outbox import STREAM_FILTERS, event_for
from infra.local.stream_filters import FilterPatternError, matches, validate_filter_criteria
from tests.unit.offers.test_outbox import (
    GENERATION,
    GUARD,
    SHARED_CODE,
    USAGE,
    code_issue,
    redemption,
    rolled_back,
    stream_record,
)

RECORD: dict[str, Any] = {
    "eventName": "INSERT",
    "dynamodb": {
        "Keys": {"pk": {"S": "REDEMPTION#rdm_01"}, "sk": {"S": "META"}},
        "NewImage": {
            "status": {"S": "redeemed"},
            "discount": {"M": {"amount": {"N": "1200"}, "currency": {"S": "JPY"}}},
        },
        "SizeBytes": 256,
    },
    "tags": ["gold", "early"],
    "score": 7.5,
    "flag": True,
    "nothing": None,
    "empty": "",
    "items": [{"sku": "TRAIL-01", "quantity": 2}, {"sku": "CAP-02", "quantity": 1}],
}


def criteria(*patterns: dict[str, Any]) -> dict[str, Any]:
    """An event source mapping's FilterCriteria, as the API and CloudFormation take it."""
    return {"Filters": [{"Pattern": json.dumps(pattern)} for pattern in patterns]}


def passes(pattern: dict[str, Any], record: dict[str, Any] = RECORD) -> bool:
    return matches(criteria(pattern), record)


# -- filters ------------------------------------------------------------------------------


@pytest.mark.parametrize("filter_criteria", [None, {}, {"Filters": []}])
def test_without_filters_every_record_passes(filter_criteria: dict[str, Any] | None) -> None:
    assert matches(filter_criteria, RECORD)


def test_filters_are_ored() -> None:
    assert matches(criteria({"eventName": ["REMOVE"]}, {"eventName": ["INSERT"]}), RECORD)
    assert not matches(criteria({"eventName": ["REMOVE"]}, {"eventName": ["MODIFY"]}), RECORD)


def test_every_key_of_a_pattern_must_match() -> None:
    assert passes({"eventName": ["INSERT"], "flag": [True]})
    assert not passes({"eventName": ["INSERT"], "flag": [False]})


# -- values -------------------------------------------------------------------------------


def test_nested_keys_descend_into_the_record() -> None:
    assert passes({"dynamodb": {"NewImage": {"status": {"S": ["redeemed"]}}}})
    assert passes({"dynamodb": {"NewImage": {"discount": {"M": {"amount": {"N": ["1200"]}}}}}})
    assert not passes({"dynamodb": {"NewImage": {"status": {"S": ["rolled_back"]}}}})
    assert not passes({"dynamodb": {"OldImage": {"status": {"S": ["redeemed"]}}}})


def test_a_list_of_values_matches_any_of_them() -> None:
    assert passes({"eventName": ["MODIFY", "INSERT"]})
    assert not passes({"eventName": ["MODIFY", "REMOVE"]})


def test_strings_match_exactly() -> None:
    assert not passes({"eventName": ["insert"]})
    assert not passes({"eventName": ["INSERT "]})
    assert passes({"empty": [""]})


def test_numbers_match_by_value_and_never_a_string() -> None:
    assert passes({"score": [7.5]})
    assert passes({"dynamodb": {"SizeBytes": [256.0]}})
    assert not passes({"score": ["7.5"]})
    assert not passes({"dynamodb": {"NewImage": {"discount": {"M": {"amount": {"N": [1200]}}}}}})


def test_booleans_and_null_match_themselves_only() -> None:
    assert passes({"flag": [True]})
    assert not passes({"flag": [1]})
    assert not passes({"score": [True]})
    assert passes({"nothing": [None]})
    assert not passes({"missing": [None]})
    assert not passes({"empty": [None]})


def test_a_record_array_matches_when_one_element_does() -> None:
    assert passes({"tags": ["early"]})
    assert not passes({"tags": ["late"]})
    assert passes({"items": {"sku": ["CAP-02"], "quantity": [1]}})
    # Both conditions must hold for the same element.
    assert not passes({"items": {"sku": ["CAP-02"], "quantity": [2]}})


def test_a_pattern_object_never_matches_a_scalar_field() -> None:
    assert not passes({"eventName": {"S": ["INSERT"]}})
    assert not passes({"dynamodb": ["INSERT"]})


# -- operators ------------------------------------------------------------------------------


def test_prefix_and_suffix() -> None:
    assert passes({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "REDEMPTION#"}]}}}})
    assert not passes({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "redemption#"}]}}}})
    assert not passes({"dynamodb": {"Keys": {"sk": {"S": [{"prefix": "ISSUE#"}]}}}})
    assert passes({"dynamodb": {"Keys": {"pk": {"S": [{"suffix": "_01"}]}}}})
    assert not passes({"score": [{"prefix": "7"}]})


def test_equals_ignore_case() -> None:
    assert passes({"eventName": [{"equals-ignore-case": "insert"}]})
    assert not passes({"eventName": [{"equals-ignore-case": "modify"}]})


def test_exists_is_about_leaves() -> None:
    assert passes({"nothing": [{"exists": True}]})
    assert passes({"missing": [{"exists": False}]})
    assert not passes({"missing": [{"exists": True}]})
    assert not passes({"eventName": [{"exists": False}]})
    assert passes({"dynamodb": {"OldImage": {"status": {"S": [{"exists": False}]}}}})
    assert not passes({"dynamodb": {"NewImage": {"status": {"S": [{"exists": False}]}}}})
    # An object is no leaf.
    assert not passes({"dynamodb": {"Keys": [{"exists": True}]}})
    assert passes({"dynamodb": {"Keys": [{"exists": False}]}})


def test_anything_but_needs_the_field_and_refuses_the_values() -> None:
    assert passes({"eventName": [{"anything-but": "REMOVE"}]})
    assert not passes({"eventName": [{"anything-but": "INSERT"}]})
    assert not passes({"eventName": [{"anything-but": ["REMOVE", "INSERT"]}]})
    assert passes({"score": [{"anything-but": [8, "7.5"]}]})
    assert not passes({"score": [{"anything-but": 7.5}]})
    assert not passes({"missing": [{"anything-but": "x"}]})


def test_anything_but_a_prefix() -> None:
    keys = {"Keys": {"pk": {"S": [{"anything-but": {"prefix": "CODE#"}}]}}}
    assert passes({"dynamodb": keys})
    keys = {"Keys": {"pk": {"S": [{"anything-but": {"prefix": "REDEMPTION#"}}]}}}
    assert not passes({"dynamodb": keys})


def test_numeric_ranges() -> None:
    assert passes({"score": [{"numeric": [">", 7]}]})
    assert passes({"score": [{"numeric": [">", 0, "<=", 7.5]}]})
    assert not passes({"score": [{"numeric": [">", 0, "<", 7.5]}]})
    assert passes({"dynamodb": {"SizeBytes": [{"numeric": ["=", 256]}]}})
    assert not passes({"eventName": [{"numeric": [">=", 0]}]})
    assert not passes({"flag": [{"numeric": ["=", 1]}]})


# -- patterns outside the grammar are refused, whatever the record ----------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"eventName": [{"prefixx": "IN"}]}, "unknown operator 'prefixx'"),
        ({"eventName": [{"wildcard": "IN*"}]}, "unknown operator 'wildcard'"),
        ({"$or": [{"eventName": ["INSERT"]}]}, "unknown operator"),
        ({"eventName": "INSERT"}, "expected an object or a list of matchers"),
        ({"eventName": []}, "cannot be empty"),
        ({"dynamodb": {}}, "empty object"),
        ({"eventName": [{"prefix": "IN", "suffix": "T"}]}, "exactly one operator"),
        ({"eventName": [{"prefix": 1}]}, "prefix takes a string"),
        ({"eventName": [{"exists": "yes"}]}, "exists takes true or false"),
        ({"eventName": [{"anything-but": {"numeric": [">", 1]}}]}, "anything-but"),
        ({"eventName": [{"anything-but": []}]}, "cannot be empty"),
        ({"score": [{"numeric": [">"]}]}, "numeric takes"),
        ({"score": [{"numeric": ["~", 1]}]}, "numeric takes"),
        ({"score": [{"numeric": [">", "1"]}]}, "numeric takes"),
        ({"tags": [["gold"]]}, "expected a string, number, boolean or null"),
    ],
)
def test_a_pattern_outside_the_grammar_raises(pattern: dict[str, Any], message: str) -> None:
    # The first filter matches: the bad one must still be refused, not skipped.
    with pytest.raises(FilterPatternError, match=message.replace("$", r"\$")):
        matches(criteria({"eventName": ["INSERT"]}, pattern), RECORD)
    with pytest.raises(FilterPatternError):
        validate_filter_criteria(criteria(pattern))


def test_an_unknown_operator_deep_in_a_pattern_raises_even_if_an_earlier_key_fails() -> None:
    pattern = {"eventName": ["REMOVE"], "dynamodb": {"Keys": {"pk": {"S": [{"begins": "R"}]}}}}
    with pytest.raises(FilterPatternError, match=r"\$\.dynamodb\.Keys\.pk\.S: unknown operator"):
        passes(pattern)


@pytest.mark.parametrize(
    "filter_criteria",
    [
        {"Filters": [{"Pattern": "{not json"}]},
        {"Filters": [{"Pattern": '["INSERT"]'}]},
        {"Filters": [{"pattern": '{"eventName": ["INSERT"]}'}]},
        {"Filters": {"Pattern": '{"eventName": ["INSERT"]}'}},
    ],
)
def test_malformed_filter_criteria_raise(filter_criteria: dict[str, Any]) -> None:
    with pytest.raises(FilterPatternError):
        matches(filter_criteria, RECORD)


# -- the offers outbox's filters ----------------------------------------------------------

# What the stack emits for the outbox mapping (tests/infra/test_offers_stack.py checks the
# synthesized template carries exactly these patterns).
OUTBOX_CRITERIA = criteria(*STREAM_FILTERS)

OUTBOX_RECORDS = [
    pytest.param(stream_record("INSERT", new=code_issue()), id="issue inserted"),
    pytest.param(stream_record("INSERT", new=code_issue(channel="in_store")), id="in-store issue"),
    pytest.param(stream_record("INSERT", new=redemption()), id="redemption inserted"),
    pytest.param(
        stream_record("MODIFY", old=redemption(), new=rolled_back()), id="redemption rolled back"
    ),
    pytest.param(
        stream_record("MODIFY", old=redemption(), new=redemption(store_id="s")),
        id="redeemed to redeemed",
    ),
    pytest.param(
        stream_record("MODIFY", old=rolled_back(), new=rolled_back(store_id="s")),
        id="rolled back to rolled back",
    ),
    pytest.param(
        stream_record("MODIFY", old=code_issue(), new=code_issue(channel="both")),
        id="issue modified",
    ),
    pytest.param(stream_record("REMOVE", old=code_issue()), id="issue removed"),
    pytest.param(stream_record("REMOVE", old=redemption()), id="redemption removed"),
    pytest.param(stream_record("INSERT", new=SHARED_CODE), id="code inserted"),
    pytest.param(stream_record("MODIFY", old=SHARED_CODE, new=SHARED_CODE), id="code used"),
    pytest.param(stream_record("INSERT", new=USAGE), id="usage"),
    pytest.param(stream_record("INSERT", new=GUARD), id="order guard"),
    pytest.param(stream_record("INSERT", new=GENERATION), id="code generation"),
]


@pytest.mark.parametrize("record", OUTBOX_RECORDS)
def test_the_outbox_filters_pass_exactly_the_records_that_are_events(
    record: dict[str, Any],
) -> None:
    assert matches(OUTBOX_CRITERIA, record) == (event_for(record) is not None)


def test_the_outbox_filters_are_valid() -> None:
    validate_filter_criteria(OUTBOX_CRITERIA)
    assert len(OUTBOX_CRITERIA["Filters"]) <= 5  # Lambda's default quota per mapping
