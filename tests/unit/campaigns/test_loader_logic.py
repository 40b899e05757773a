"""The loader's pure decisions: publish, reject (file errors, version rules), unchanged, skip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.campaigns.config import CampaignFileError, load_campaign_file
from functions.campaigns.logic import (
    Publish,
    PublishedCampaign,
    Reject,
    SourceFile,
    Unchanged,
    already_handled,
    code_prefix,
    decide,
    is_campaign_upload,
    published_event,
    rejected_event,
    rejection_message,
    report_document,
    report_key,
)
from functions.core.events import InMemoryPublisher
from tests.unit.campaigns.documents import EXAMPLES, campaign, offer

KEY = "campaigns/spring-trail-2027.yaml"
SOURCE = SourceFile(key=KEY, etag='"9b2cf535f27731c974343645a3985328"', version_id="v1")
START = datetime(2027, 2, 28, 15, tzinfo=UTC)  # 2027-03-01T00:00:00+09:00
BEFORE = START - timedelta(days=10)
AFTER = START + timedelta(days=3)


def published(**changes: Any) -> PublishedCampaign:
    state = PublishedCampaign(
        campaign_id="spring-trail-2027",
        version=1,
        status="active",
        currency="JPY",
        starts_at=START,
        budget_used_amount=0,
        budget_used_count=0,
        source_key=KEY,
        published_at=BEFORE - timedelta(days=1),
        config=campaign().to_document(),
    )
    return replace(state, **changes)


def paths(decision: Any) -> list[str]:
    assert isinstance(decision, Reject), decision
    return [error.path for error in decision.errors]


# -- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("campaigns/spring.yaml", True),
        ("campaigns/teams/spring.yml", True),
        ("campaigns/spring.json", True),
        ("campaigns/Spring.JSON", True),
        # Not campaign files, but the loader answers them with a report saying why.
        ("campaigns/.yaml", True),
        ("campaigns/spring.txt", True),
        ("campaigns/spring.yaml.bak", True),
        ("campaigns/readme", True),
        ("campaigns/", False),
        ("campaigns/teams/", False),
        ("Campaigns/spring.yaml", False),
        ("reports/campaigns/spring.yaml.result.json", False),
        ("spring.yaml", False),
    ],
)
def test_the_loader_answers_every_file_under_campaigns(key: str, expected: bool) -> None:
    assert is_campaign_upload(key) is expected


def test_the_report_sits_under_reports_with_the_same_key() -> None:
    assert report_key(KEY) == "reports/campaigns/spring-trail-2027.yaml.result.json"
    assert not is_campaign_upload(report_key(KEY))


# -- publish ----------------------------------------------------------------------------


def test_a_new_campaign_publishes_version_1() -> None:
    config = campaign()
    decision = decide(SOURCE, config, None, BEFORE)
    assert decision == Publish(config, 1, SOURCE)
    assert report_document(decision) == {
        "status": "published",
        "campaignId": "spring-trail-2027",
        "version": 1,
        "errors": [],
    }


def test_a_changed_file_publishes_the_next_version_and_names_dropped_offers() -> None:
    before = published(version=4, config=campaign(offers=[offer(), offer(id="OLD5")]).to_document())
    config = campaign(name="Spring trail shoes, extended")
    decision = decide(replace(SOURCE, version_id="v2"), config, before, BEFORE)
    assert isinstance(decision, Publish)
    assert decision.version == 5
    assert decision.dropped_offer_ids == ("OLD5",)
    assert report_document(decision)["version"] == 5


def test_an_archived_campaign_is_published_again_even_with_the_same_content() -> None:
    decision = decide(SOURCE, campaign(), published(status="archived"), BEFORE)
    assert isinstance(decision, Publish) and decision.version == 2


def test_the_same_content_from_another_key_is_a_new_version_from_that_key() -> None:
    other = replace(SOURCE, key="campaigns/copy.yaml")
    decision = decide(other, campaign(), published(), BEFORE)
    assert isinstance(decision, Publish) and decision.source.key == "campaigns/copy.yaml"


# -- replays ----------------------------------------------------------------------------


def test_the_content_already_served_from_this_key_is_unchanged() -> None:
    # The same object delivered twice, or a retry after the publish transaction: no new
    # version, and the version the report and the event name is the published one.
    state = published(version=3)
    decision = decide(SOURCE, campaign(), state, AFTER)
    assert decision == Unchanged(campaign(), state)
    assert report_document(decision)["version"] == 3


def test_a_revision_the_report_already_answers_is_skipped() -> None:
    assert already_handled(SOURCE, "v1")
    assert not already_handled(replace(SOURCE, version_id="v2"), "v1")
    assert not already_handled(SOURCE, None)
    # An unversioned bucket: the ETag (without its quotes) is the revision.
    unversioned = replace(SOURCE, version_id=None)
    assert already_handled(unversioned, "9b2cf535f27731c974343645a3985328")


# -- rejections -------------------------------------------------------------------------


def test_file_errors_are_rejected_with_every_path_and_the_id_when_known() -> None:
    content = (EXAMPLES / "broken" / "spring-trail-broken.yaml").read_bytes()
    with pytest.raises(CampaignFileError) as raised:
        load_campaign_file("spring-trail-broken.yaml", content)
    decision = decide(SOURCE, raised.value, published(), AFTER)
    assert paths(decision) == [error["path"] for error in raised.value.errors]
    assert len(paths(decision)) >= 5
    report = report_document(decision)
    assert report["status"] == "rejected"
    assert report["campaignId"] == "spring-trail-2027"
    assert report["version"] is None
    assert report["errors"] == raised.value.errors


def test_an_unreadable_file_is_rejected_without_a_campaign_id() -> None:
    error = CampaignFileError([{"path": "$", "message": "not valid YAML"}])
    decision = decide(SOURCE, error, None, BEFORE)
    assert report_document(decision) == {
        "status": "rejected",
        "campaignId": None,
        "version": None,
        "errors": [{"path": "$", "message": "not valid YAML"}],
    }


def test_a_new_version_cannot_change_the_currency() -> None:
    config = campaign(currency="USD")
    assert paths(decide(SOURCE, config, published(), BEFORE)) == ["currency"]


def test_a_start_that_has_passed_cannot_move() -> None:
    later = campaign(starts_at="2027-03-05T00:00:00+09:00")
    assert paths(decide(SOURCE, later, published(), AFTER)) == ["starts_at"]
    # Before the start it may move, and after it an unmoved start is fine.
    assert isinstance(decide(SOURCE, later, published(), BEFORE), Publish)
    renamed = campaign(name="Renamed")
    assert isinstance(decide(SOURCE, renamed, published(), AFTER), Publish)


def test_the_start_counts_as_passed_at_the_very_instant() -> None:
    later = campaign(starts_at="2027-03-05T00:00:00+09:00")
    assert paths(decide(SOURCE, later, published(), START)) == ["starts_at"]


def test_a_budget_cannot_be_lowered_below_what_is_used() -> None:
    used = published(budget_used_amount=40_000, budget_used_count=30)
    lower = campaign(budget={"amount": 39_999, "max_rewards": 29})
    decision = decide(SOURCE, lower, used, AFTER)
    assert paths(decision) == ["budget.amount", "budget.max_rewards"]
    assert isinstance(decision, Reject)
    assert "40000 already used" in decision.errors[0].message
    # Down to exactly what is used, or up, is allowed.
    exact = campaign(budget={"amount": 40_000, "max_rewards": 30})
    assert isinstance(decide(SOURCE, exact, used, AFTER), Publish)


def test_every_version_rule_is_reported_at_once() -> None:
    used = published(budget_used_amount=40_000)
    config = campaign(currency="USD", starts_at="2027-03-05T00:00:00+09:00", budget={"amount": 100})
    decision = decide(SOURCE, config, used, AFTER)
    assert paths(decision) == ["currency", "starts_at", "budget.amount"]
    assert isinstance(decision, Reject) and decision.campaign_id == "spring-trail-2027"


def test_an_offer_id_of_another_campaign_is_refused() -> None:
    config = campaign(offers=[offer(id="OTHER"), offer()])
    decision = decide(
        SOURCE, config, None, BEFORE, offer_owners={"TRAIL10": "autumn-2026", "OTHER": config.id}
    )
    assert paths(decision) == ["offers[1].id"]
    assert isinstance(decision, Reject)
    assert "autumn-2026" in decision.errors[0].message


def test_a_shared_code_of_another_offer_is_refused() -> None:
    shared = offer(id="SHARED", codes={"mode": "shared", "code": "trail-open"}, usage={})
    config = campaign(offers=[shared])
    taken = decide(SOURCE, config, None, BEFORE, code_owners={"TRAIL-OPEN": "ELSEWHERE"})
    assert paths(taken) == ["offers[0].codes.code"]
    own = decide(SOURCE, config, None, BEFORE, code_owners={"TRAIL-OPEN": "SHARED"})
    assert isinstance(own, Publish)


# -- what is sent -----------------------------------------------------------------------


def test_published_event_is_the_same_however_often_it_is_sent() -> None:
    config = campaign()
    at = BEFORE
    first = published_event(config, 2, at, KEY)
    assert first == published_event(config, 2, at, KEY)
    assert first.eventId != published_event(config, 3, at, KEY).eventId
    assert (first.campaignId, first.version, first.fileKey) == ("spring-trail-2027", 2, KEY)
    assert first.occurredAt == at
    InMemoryPublisher().publish(first)  # matches the committed schema


def test_rejected_event_is_per_revision_and_matches_its_schema() -> None:
    errors = [{"path": f"offers[{i}].id", "message": "bad"} for i in range(150)]
    decision = decide(SOURCE, CampaignFileError(errors, "spring-trail-2027"), None, BEFORE)
    assert isinstance(decision, Reject)
    event = rejected_event(SOURCE, decision, BEFORE)
    assert len(event.errors) == 100  # the report has all 150
    assert event.eventId == rejected_event(SOURCE, decision, AFTER).eventId
    assert (
        event.eventId != rejected_event(replace(SOURCE, version_id="v2"), decision, AFTER).eventId
    )
    InMemoryPublisher().publish(event)


def test_rejection_message_lists_each_path_and_message() -> None:
    decision = decide(SOURCE, campaign(currency="USD"), published(), BEFORE)
    assert isinstance(decision, Reject)
    subject, message = rejection_message(SOURCE, decision, "s3://bucket/reports/x")
    assert subject == f"Rejected: {KEY}"
    assert "Campaign: spring-trail-2027" in message
    assert "s3://bucket/reports/x" in message
    assert "- currency: a new version cannot change the currency" in message


def test_rejection_subject_is_short_printable_ascii() -> None:
    source = replace(SOURCE, key="campaigns/" + "春" * 200 + ".yaml")
    decision = Reject(None, ())
    subject, message = rejection_message(source, decision, "s3://b/r")
    assert len(subject) <= 100 and subject.isascii() and subject.isprintable()
    assert "unknown" in message


def test_code_prefix_is_the_file_s_or_made_from_the_offer_id() -> None:
    config = campaign(
        offers=[
            offer(),
            offer(id="web_15-off", codes={"mode": "unique", "count": 10}, usage={}),
            offer(id="___", codes={"mode": "unique", "count": 10}, usage={}),
        ]
    )
    assert [code_prefix(o) for o in config.offers] == ["TRAIL", "WEB15OFF", "CODE"]
