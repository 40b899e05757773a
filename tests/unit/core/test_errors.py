"""Client-facing errors: statuses, codes and the contract's body shape."""

from __future__ import annotations

import pickle

import pytest

from functions.core.errors import (
    BadRequest,
    Conflict,
    CurrencyMismatch,
    InvalidMoney,
    NotFound,
    RebatesError,
    Throttled,
    Unprocessable,
)


@pytest.mark.parametrize(
    ("cls", "status"),
    [(BadRequest, 400), (NotFound, 404), (Conflict, 409), (Unprocessable, 422), (Throttled, 429)],
)
def test_each_class_carries_its_status(cls: type[RebatesError], status: int) -> None:
    error = cls("some_reason", "Something happened.")
    assert error.status == status
    assert cls.status == status
    assert isinstance(error, RebatesError)


def test_body_has_the_contract_shape() -> None:
    error = Conflict("limit_reached", "This offer was already used.", {"limit": 1})
    assert error.to_body() == {
        "error": {
            "code": "limit_reached",
            "message": "This offer was already used.",
            "details": {"limit": 1},
        }
    }


def test_details_default_to_an_empty_object() -> None:
    assert NotFound("claim_not_found", "No such claim.").to_body()["error"]["details"] == {}


def test_details_are_copied_in_and_out() -> None:
    details = {"claimId": "clm_1"}
    error = NotFound("claim_not_found", "No such claim.", details)
    details["claimId"] = "changed"
    body = error.to_body()
    body["error"]["details"]["claimId"] = "changed again"
    assert error.details == {"claimId": "clm_1"}


@pytest.mark.parametrize(
    "code", ["not_found", "limit_reached", "a", "budget_exhausted2", "idempotency_key_reused"]
)
def test_snake_case_codes_are_accepted(code: str) -> None:
    assert BadRequest(code, "x").code == code


@pytest.mark.parametrize(
    "code",
    [
        "",
        "NotFound",
        "not-found",
        "not found",
        "_leading",
        "trailing_",
        "double__under",
        "2fast",
        "É",
    ],
)
def test_other_codes_are_refused(code: str) -> None:
    with pytest.raises(ValueError, match="snake_case"):
        BadRequest(code, "x")


def test_the_base_class_cannot_be_raised_directly() -> None:
    with pytest.raises(TypeError):
        RebatesError("some_reason", "x")


def test_currency_mismatch_is_a_422_with_both_currencies() -> None:
    error = CurrencyMismatch("JPY", "USD")
    assert isinstance(error, Unprocessable)
    assert error.status == 422
    assert error.code == "currency_mismatch"
    assert error.details == {"expected": "JPY", "actual": "USD"}
    assert "JPY" in error.message
    assert "USD" in error.message


def test_invalid_money_is_a_400() -> None:
    error = InvalidMoney("too many decimals", {"currency": "JPY"})
    assert isinstance(error, BadRequest)
    assert (error.status, error.code) == (400, "invalid_money")
    assert error.to_body()["error"]["details"] == {"currency": "JPY"}


@pytest.mark.parametrize(
    "error",
    [
        Conflict("limit_reached", "Used up.", {"limit": 1}),
        CurrencyMismatch("JPY", "EUR"),
        InvalidMoney("bad", {"field": "amount"}),
    ],
)
def test_errors_survive_pickling(error: RebatesError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.to_body() == error.to_body()


def test_str_shows_code_and_message() -> None:
    assert str(NotFound("offer_not_found", "No such offer.")) == "offer_not_found: No such offer."
