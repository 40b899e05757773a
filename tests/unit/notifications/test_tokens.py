"""Unsubscribe tokens: signed, bound to customer and channel, refused when altered."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.notifications.tokens import MAX_TOKEN_LENGTH, BadToken, sign, verify

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


def test_a_token_names_its_customer_and_channel() -> None:
    token = sign(KEY, "cust-1", "email")
    assert verify(KEY, token) == ("cust-1", "email")
    assert verify(KEY, sign(KEY, "cust-1", "sms")) == ("cust-1", "sms")


def test_a_token_is_url_safe_and_versioned() -> None:
    token = sign(KEY, "顧客 #1/+=?&", "email")
    assert token.startswith("v1.")
    assert all(c.isalnum() or c in "._-" for c in token)
    assert verify(KEY, token) == ("顧客 #1/+=?&", "email")


def test_another_key_does_not_verify() -> None:
    with pytest.raises(BadToken, match="signature"):
        verify(OTHER_KEY, sign(KEY, "cust-1", "email"))


def test_swapping_the_customer_or_the_channel_breaks_the_signature() -> None:
    version, subject, channel, signature = sign(KEY, "cust-1", "email").split(".")
    other_subject = base64.urlsafe_b64encode(b"cust-2").decode().rstrip("=")
    with pytest.raises(BadToken):
        verify(KEY, ".".join((version, other_subject, channel, signature)))
    with pytest.raises(BadToken):
        verify(KEY, ".".join((version, subject, "sms", signature)))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "v1",
        "v1.a.email",
        "v2.Y3VzdC0x.email.AAAA",
        "v1.Y3VzdC0x.fax." + "A" * 43,
        "v1.Y3VzdC0x.email.short",
        "v1.Y3VzdC0x.email." + "A" * 43 + "=",
        "v1.Y3V zdC0x.email." + "A" * 43,
        "v1.顧客.email." + "A" * 43,
        "v1.\udcff.email." + "A" * 43,
        "v1." + "A" * MAX_TOKEN_LENGTH + ".email." + "A" * 43,
        "v1.Y3VzdC0x.email.abc.def",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadToken):
        verify(KEY, token)


def test_no_token_is_made_for_no_customer_or_with_no_key() -> None:
    with pytest.raises(ValueError, match="customer"):
        sign(KEY, "", "email")
    with pytest.raises(ValueError, match="key"):
        sign(b"", "cust-1", "email")


@given(st.text(max_size=300))
def test_no_text_makes_verify_fail_otherwise_than_bad_token(text: str) -> None:
    with contextlib.suppress(BadToken):
        verify(KEY, text)


@given(st.text(min_size=1, max_size=128), st.sampled_from(["email", "sms"]))
def test_every_customer_id_round_trips(customer_id: str, channel: str) -> None:
    try:
        customer_id.encode("utf-8")
    except UnicodeEncodeError:
        return
    assert verify(KEY, sign(KEY, customer_id, channel)) == (customer_id, channel)  # type: ignore[arg-type]
