"""PUT and GET /v1/customers/{customerId}/profile through the API handler, on moto.

Contact details are stored normalised, bad ones are a 400 naming the field, and every
consent change (the first profile, or marketingOptIn changing) is logged in the same
write as the profile, also when two writers race.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from functions.notifications import models
from functions.notifications.dal import ProfileInput, ProfileStore
from functions.notifications.handlers import api
from functions.notifications.models import ConsentEntry
from infra.local.proxy_event import proxy_event
from tests.unit.notifications.service_support import CONTEXT, Cloud, cloud, ids

__all__ = ["cloud", "ids"]

Ids = Callable[[str], str]


def call(
    method: str, path: str, body: Any = None, *, request_id: str | None = None, **options: Any
) -> tuple[int, Any]:
    event = proxy_event(
        method, path, body=body, api_key="test-key", request_id=request_id, **options
    )
    answer = api.handler(event, CONTEXT)
    return answer["statusCode"], json.loads(answer["body"])


def put(customer_id: str, body: Any, **options: Any) -> tuple[int, Any]:
    return call("PUT", f"/v1/customers/{customer_id}/profile", body, **options)


def get(customer_id: str) -> tuple[int, Any]:
    return call("GET", f"/v1/customers/{customer_id}/profile")


def profile(**changes: Any) -> dict[str, Any]:
    body = {
        "email": "Hanako.Yamada@Example.COM",
        "phone": "090-1234-5678",
        "country": "jp",
        "locale": "ja",
        "marketingOptIn": False,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def history(customer_id: str) -> list[ConsentEntry]:
    return ConsentEntry.history(customer_id)


def test_a_profile_is_stored_normalised_with_its_first_consent_entry(
    cloud: Cloud, ids: Ids
) -> None:
    customer = ids("cust")
    status, body = put(customer, profile(), request_id="req-first")
    assert status == 200, body
    assert body["email"] == "Hanako.Yamada@example.com"
    assert body["phone"] == "+819012345678"
    assert body["country"] == "JP"
    assert (body["locale"], body["marketingOptIn"]) == ("ja", False)

    [entry] = history(customer)
    assert body["consentEntryId"] == entry.entry_id
    assert (entry.marketing_opt_in, entry.channel, entry.request_id) == (False, "api", "req-first")
    assert entry.previous_entry_id is None

    status, read = get(customer)
    assert (status, read) == (200, body)


def test_an_unknown_profile_is_404_in_the_error_shape(cloud: Cloud, ids: Ids) -> None:
    status, body = get(ids("nobody"))
    assert status == 404
    assert body["error"]["code"] == "profile_not_found"
    assert set(body["error"]) == {"code", "message", "details"}


def test_each_consent_change_appends_one_entry_and_nothing_else_does(
    cloud: Cloud, ids: Ids
) -> None:
    customer = ids("cust")
    put(customer, profile())
    status, first = put(customer, profile())  # the same again: a retry
    assert status == 200
    assert len(history(customer)) == 1

    status, changed_email = put(customer, profile(email="new@example.com"))
    assert (status, changed_email["email"]) == (200, "new@example.com")
    assert changed_email["consentEntryId"] == first["consentEntryId"]
    assert len(history(customer)) == 1

    status, opted_in = put(customer, profile(marketingOptIn=True), request_id="req-in")
    assert status == 200
    entries = history(customer)
    assert [e.marketing_opt_in for e in entries] == [False, True]
    assert opted_in["consentEntryId"] == entries[-1].entry_id
    assert entries[-1].previous_entry_id == entries[0].entry_id
    assert entries[-1].request_id == "req-in"


def test_a_put_replaces_the_whole_profile(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    put(customer, profile())
    status, body = put(customer, {"locale": "en", "marketingOptIn": False})
    assert status == 200
    assert (body["email"], body["phone"], body["country"], body["locale"]) == (
        None,
        None,
        None,
        "en",
    )


def test_an_international_number_needs_no_country(cloud: Cloud, ids: Ids) -> None:
    status, body = put(ids("cust"), profile(phone="+1 (415) 555-0132", country=None))
    assert (status, body["phone"], body["country"]) == (200, "+14155550132", None)


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"email": "not an address"}, "body.email"),
        ({"email": "hanako@"}, "body.email"),
        ({"phone": "12345"}, "body.phone"),
        ({"phone": "090-1234-5678", "country": None}, "body.phone"),
        ({"phone": "+81 12"}, "body.phone"),
        ({"locale": "fr"}, "body.locale"),
        ({"country": "XX"}, "body.country"),
        ({"country": "EU"}, "body.country"),
        ({"country": "JPN"}, "body.country"),
        ({"marketingOptIn": "yes"}, "body.marketingOptIn"),
        ({"marketingOptIn": 1}, "body.marketingOptIn"),
        ({"nickname": "Hana"}, "body.nickname"),
    ],
)
def test_bad_values_are_a_400_naming_the_field(
    cloud: Cloud, ids: Ids, changes: dict[str, Any], path: str
) -> None:
    customer = ids("cust")
    body = profile()
    body.update(changes)
    status, answer = put(customer, {k: v for k, v in body.items() if v is not None})
    assert status == 400, answer
    assert answer["error"]["code"] == "invalid_request"
    assert path in [e["path"] for e in answer["error"]["details"]["errors"]]
    assert get(customer)[0] == 404


def test_a_missing_consent_or_locale_is_a_400(cloud: Cloud, ids: Ids) -> None:
    status, answer = put(ids("cust"), {"email": "a@example.com"})
    assert status == 400
    paths = {e["path"] for e in answer["error"]["details"]["errors"]}
    assert paths == {"body.locale", "body.marketingOptIn"}


def test_hostile_bodies_are_4xx(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    path = f"/v1/customers/{customer}/profile"
    assert call("PUT", path, b"\xff\xfe{}", headers={"Content-Type": "application/json"})[0] == 400
    assert call("PUT", path, "email=a@b.c", headers={"Content-Type": "text/plain"})[0] == 415
    assert call("PUT", path, '{"locale": "ja", "locale": "en"}')[0] == 400
    huge = json.dumps(profile(email="a" * 1_000_000 + "@example.com"))
    assert call("PUT", path, huge, headers={"Content-Type": "application/json"})[0] == 400


def test_racing_writers_never_lose_a_consent_entry(
    cloud: Cloud, ids: Ids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reads the profile (opted out), B opts in and commits, then A writes opted out:
    A's write must fail on the version, read again, and log its own change."""
    customer = ids("cust")
    store = ProfileStore()
    base = ProfileInput("a@example.com", None, "ja", "JP", False)
    store.put(customer, base, now=_now(), request_id="req-0")

    reads = 0
    real_read = models.get_profile

    def read_then_let_b_commit(customer_id: str) -> Any:
        nonlocal reads
        reads += 1
        found = real_read(customer_id)
        if reads == 1:
            monkeypatch.setattr("functions.notifications.dal.get_profile", real_read)
            store.put(customer, _opted(base, True), now=_now(), request_id="req-b")
        return found

    monkeypatch.setattr("functions.notifications.dal.get_profile", read_then_let_b_commit)
    written = store.put(
        customer,
        ProfileInput("other@example.com", None, "ja", "JP", False),
        now=_now(),
        request_id="req-a",
    )

    entries = history(customer)
    assert [(e.marketing_opt_in, e.request_id) for e in entries] == [
        (False, "req-0"),
        (True, "req-b"),
        (False, "req-a"),
    ]
    assert [e.previous_entry_id for e in entries[1:]] == [e.entry_id for e in entries[:-1]]
    assert written.consent_entry_id == entries[-1].entry_id
    assert (written.version, written.email) == (3, "other@example.com")


def _opted(given: ProfileInput, value: bool) -> ProfileInput:
    return ProfileInput(given.email, given.phone, given.locale, given.country, value)


def _now() -> Any:
    from functions.core.clock import utc_now

    return utc_now()
