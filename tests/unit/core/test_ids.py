"""Ids: prefixed ULIDs that sort by time and name Step Functions executions."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.core.clock import frozen_at
from functions.core.ids import id_timestamp, is_valid_id, new_id

# What Step Functions accepts for an execution name and can still log.
EXECUTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
CROCKFORD = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def test_shape_with_and_without_prefix() -> None:
    claim_id = new_id("clm")
    prefix, _, body = claim_id.partition("_")
    assert prefix == "clm"
    assert CROCKFORD.fullmatch(body)
    assert CROCKFORD.fullmatch(new_id())
    assert is_valid_id(claim_id, "clm")
    assert is_valid_id(new_id())


@given(st.from_regex(r"[a-z][a-z0-9]{0,15}", fullmatch=True))
def test_every_id_is_a_valid_execution_name(prefix: str) -> None:
    assert EXECUTION_NAME.fullmatch(new_id(prefix))


def test_ids_are_unique() -> None:
    ids = [new_id("clm") for _ in range(10_000)]
    assert len(set(ids)) == len(ids)


def test_ids_are_unique_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def draw(bucket: list[str]) -> None:
        bucket.extend(new_id() for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(bucket,)) for bucket in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_ids = [i for bucket in results for i in bucket]
    assert len(set(all_ids)) == len(all_ids)


def test_ids_sort_by_time() -> None:
    with frozen_at(datetime(2027, 3, 1, tzinfo=UTC)) as clock:
        ids = []
        for _ in range(200):
            ids.append(new_id("red"))
            clock.advance(timedelta(milliseconds=7))
    assert sorted(ids) == ids


def test_ids_in_the_same_millisecond_keep_their_order() -> None:
    with frozen_at(datetime(2027, 3, 1, tzinfo=UTC)):
        ids = [new_id("led") for _ in range(1_000)]
    assert sorted(ids) == ids
    assert len(set(ids)) == len(ids)


def test_id_carries_the_clock_time_to_the_millisecond() -> None:
    instant = datetime(2027, 3, 1, 12, 34, 56, 789_999, tzinfo=UTC)
    with frozen_at(instant):
        claim_id = new_id("clm")
    assert id_timestamp(claim_id, "clm") == instant.replace(microsecond=789_000)


def test_known_ulid_timestamp() -> None:
    # The example from the ULID specification.
    assert id_timestamp("01ARYZ6S41TSV4RRFFQ69G5FAV") == datetime(
        2016, 7, 30, 22, 36, 16, 385_000, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("clm_01ARYZ6S41TSV4RRFFQ69G5FAV", "red"),  # another prefix
        ("01ARYZ6S41TSV4RRFFQ69G5FAV", "clm"),  # prefix missing
        ("clm_01ARYZ6S41TSV4RRFFQ69G5FAV", ""),  # prefix not expected
        ("clm_01aryz6s41tsv4rrffq69g5fav", "clm"),  # lower case
        ("clm_01ARYZ6S41TSV4RRFFQ69G5FA", "clm"),  # 25 characters
        ("clm_01ARYZ6S41TSV4RRFFQ69G5FAVX", "clm"),  # 27 characters
        ("clm_81ARYZ6S41TSV4RRFFQ69G5FAV", "clm"),  # more than 128 bits
        ("clm_01ARYZ6S41TSV4RRFFQ69G5FAU", "clm"),  # U is not Crockford
        ("clm_01ARYZ6S41TSV4RRFFQ69G5FAI", "clm"),  # nor I, L, O
        ("clm-01ARYZ6S41TSV4RRFFQ69G5FAV", "clm"),
        ("", ""),
    ],
)
def test_invalid_ids(text: str, prefix: str) -> None:
    assert not is_valid_id(text, prefix)
    with pytest.raises(ValueError, match="not an id"):
        id_timestamp(text, prefix)


def test_non_strings_are_not_ids() -> None:
    assert not is_valid_id(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["CLM", "1abc", "a_b", "a-b", "x" * 17, "ç"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id(prefix)
