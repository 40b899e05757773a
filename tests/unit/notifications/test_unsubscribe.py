"""GET and POST /v1/unsubscribe?token= through the API handler, on moto.

GET shows the page and changes nothing (link scanners prefetch). POST opts out: the RFC
8058 one-click in either form encoding, or the page's own button. A bad token is a 400
page; a body that cannot be read is a 4xx, never a 5xx; opting out twice logs once.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from functions.notifications import tokens
from functions.notifications.dal import ProfileInput, ProfileStore
from functions.notifications.handlers import api
from functions.notifications.models import ConsentEntry, get_profile
from infra.local.proxy_event import proxy_event
from tests.unit.notifications.service_support import (
    CONTEXT,
    UNSUBSCRIBE_KEY,
    Cloud,
    cloud,
    ids,
)

__all__ = ["cloud", "ids"]

Ids = Callable[[str], str]
FORM = "application/x-www-form-urlencoded"
KEY = UNSUBSCRIBE_KEY.encode()


def call(
    method: str,
    token: str | None,
    body: Any = None,
    *,
    content_type: str | None = FORM,
    request_id: str | None = None,
) -> tuple[int, str, dict[str, list[str]]]:
    event = proxy_event(
        method,
        "/v1/unsubscribe",
        query={"token": token} if token is not None else None,
        headers={"Content-Type": content_type} if content_type and body is not None else None,
        body=body,
        request_id=request_id,
    )
    answer = api.handler(event, CONTEXT)
    return answer["statusCode"], answer["body"], answer["multiValueHeaders"]


def opted_in(customer_id: str, locale: str = "ja") -> str:
    """A profile opted in to marketing; the token its messages carry."""
    ProfileStore().put(
        customer_id,
        ProfileInput("hanako@example.com", None, locale, "JP", True),
        now=_now(),
        request_id="req-setup",
    )
    return tokens.sign(KEY, customer_id, "email")


def consent(customer_id: str) -> list[tuple[bool, str]]:
    return [(e.marketing_opt_in, e.channel) for e in ConsentEntry.history(customer_id)]


def is_opted_in(customer_id: str) -> bool:
    profile = get_profile(customer_id)
    assert profile is not None
    return profile.marketing_opt_in


def test_the_page_is_in_the_customers_language_and_changes_nothing(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    token = opted_in(customer, locale="ja")
    status, page, headers = call("GET", token)
    assert status == 200
    assert headers["Content-Type"] == ["text/html; charset=utf-8"]
    assert headers["Cache-Control"] == ["no-store"]
    assert '<html lang="ja">' in page
    assert "配信" in page
    assert "Unsubscribe" not in page
    assert is_opted_in(customer)
    assert consent(customer) == [(True, "api")]

    english = ids("cust-en")
    status, page, _ = call("GET", opted_in(english, locale="en"))
    assert (status, '<html lang="en">' in page) == (200, True)


def test_the_pages_button_opts_out(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    token = opted_in(customer)
    _, page, _ = call("GET", token)
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page)[1])  # type: ignore[index]
    posted_token = parse_qs(urlsplit(action).query)["token"][0]
    assert posted_token == token
    assert 'name="confirm" value="yes"' in page

    status, done, _ = call("POST", posted_token, "confirm=yes", request_id="req-button")
    assert status == 200
    assert "配信を停止しました" in done
    assert not is_opted_in(customer)
    [_, entry] = ConsentEntry.history(customer)
    assert (entry.marketing_opt_in, entry.channel, entry.request_id) == (
        False,
        "unsubscribe_link",
        "req-button",
    )
    profile = get_profile(customer)
    assert profile is not None
    assert profile.consent_entry_id == entry.entry_id


def test_one_click_opts_out_at_once(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    status, _, _ = call("POST", opted_in(customer), "List-Unsubscribe=One-Click")
    assert status == 200
    assert consent(customer) == [(True, "api"), (False, "one_click")]


def test_one_click_as_multipart_form_data_opts_out(cloud: Cloud, ids: Ids) -> None:
    # RFC 8058 3.2: mail receivers SHOULD send the POST as multipart/form-data.
    customer = ids("cust")
    body = (
        "--FormBoundaryjWmhtjORrn\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n'
        "\r\n"
        "One-Click\r\n"
        "--FormBoundaryjWmhtjORrn--\r\n"
    )
    status, _, _ = call(
        "POST",
        opted_in(customer),
        body,
        content_type="multipart/form-data; boundary=FormBoundaryjWmhtjORrn",
    )
    assert status == 200
    assert consent(customer) == [(True, "api"), (False, "one_click")]


def test_opting_out_again_appends_nothing(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    token = opted_in(customer)
    assert call("POST", token, "List-Unsubscribe=One-Click")[0] == 200
    assert call("POST", token, "List-Unsubscribe=One-Click")[0] == 200
    assert call("POST", token, "confirm=yes")[0] == 200
    assert consent(customer) == [(True, "api"), (False, "one_click")]


def test_a_post_without_either_field_changes_nothing(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    token = opted_in(customer)
    for body in ("", "confirm=no", "List-Unsubscribe=Yes", "other=1"):
        status, page, _ = call("POST", token, body)
        assert status == 400, body
        assert 'name="confirm"' in page
    assert is_opted_in(customer)


@pytest.mark.parametrize(
    "token",
    [None, "", "garbage", "v1.Y3VzdC0x.email." + "A" * 43, "v1.\u00ff.email.x" * 100],
)
def test_a_bad_token_is_a_400_page_in_both_languages(
    cloud: Cloud, ids: Ids, token: str | None
) -> None:
    for method, body in (("GET", None), ("POST", "List-Unsubscribe=One-Click")):
        status, page, headers = call(method, token, body)
        assert status == 400, (method, token)
        assert headers["Content-Type"] == ["text/html; charset=utf-8"]
        assert 'lang="ja"' in page and 'lang="en"' in page


def test_a_tampered_token_opts_nobody_out(cloud: Cloud, ids: Ids) -> None:
    victim = ids("victim")
    opted_in(victim)
    forged = tokens.sign(b"not-our-key", victim, "email")
    assert call("POST", forged, "List-Unsubscribe=One-Click")[0] == 400
    version, _, channel, signature = tokens.sign(KEY, ids("me"), "email").split(".")
    subject = base64.urlsafe_b64encode(victim.encode()).decode().rstrip("=")
    swapped = ".".join((version, subject, channel, signature))
    assert call("POST", swapped, "List-Unsubscribe=One-Click")[0] == 400
    assert is_opted_in(victim)


def test_a_token_for_a_customer_without_profile_writes_nothing(cloud: Cloud, ids: Ids) -> None:
    ghost = ids("ghost")
    token = tokens.sign(KEY, ghost, "email")
    status, page, _ = call("GET", token)
    assert status == 200
    assert 'lang="ja"' in page and 'lang="en"' in page
    assert call("POST", token, "List-Unsubscribe=One-Click")[0] == 200
    assert get_profile(ghost) is None
    assert ConsentEntry.history(ghost) == []


def test_hostile_bodies_are_4xx_and_change_nothing(cloud: Cloud, ids: Ids) -> None:
    customer = ids("cust")
    token = opted_in(customer)
    cases: list[tuple[Any, str | None, int]] = [
        (b"List-Unsubscribe=One-Click\xff\xfe", FORM, 400),
        ("List-Unsubscribe=One-Click", "application/json", 415),
        ("List-Unsubscribe=One-Click", "text/plain", 415),
        ("List-Unsubscribe=One-Click", f"{FORM}; charset=latin-1", 415),
        ("List-Unsubscribe=One-Click&" + "a=1&" * 300_000, FORM, 413),
        ("--B\r\n\r\n", "multipart/form-data", 400),
        (
            b'--B\r\nContent-Disposition: form-data; name="confirm"\r\n\r\n\xff\r\n--B--',
            "multipart/form-data; boundary=B",
            400,
        ),
        ("List-Unsubscribe=One-Click", None, 415),
    ]
    for body, content_type, expected in cases:
        status, answer, _ = call("POST", token, body, content_type=content_type)
        assert status == expected, (content_type, answer[:300])
    assert is_opted_in(customer)


def test_an_undecodable_base64_body_is_a_400(cloud: Cloud, ids: Ids) -> None:
    token = opted_in(ids("cust"))
    event = proxy_event(
        "POST", "/v1/unsubscribe", query={"token": token}, headers={"Content-Type": FORM}
    )
    event["body"], event["isBase64Encoded"] = "not base64!!", True
    assert api.handler(event, CONTEXT)["statusCode"] == 400


def _now() -> Any:
    from functions.core.clock import utc_now

    return utc_now()
