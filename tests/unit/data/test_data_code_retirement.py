"""Retiring an offer's unissued codes beyond a lowered count, on moto: a page of the pool
per transaction, and a code issued at the same moment ends up issued or retired, never
both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.campaigns import code_pool
from functions.campaigns.code_pool import RetiredCodes, provision_codes, retire_surplus_codes
from functions.campaigns.models import Code, CodeGeneration, Offer, get_code, get_offer
from functions.core.models import Transaction, TransactionCancelled
from functions.offers.models import CodeIssue
from tests.unit.data.factories import make_campaign, make_offer, publish

T0 = datetime(2027, 3, 2, tzinfo=UTC)
CAMPAIGN = "spring-trail-2027"
OFFER = "TRAIL10"


def pool() -> list[str]:
    return [code.code for code in Code.pool(OFFER, limit=1000)]


def give(code: str, customer_id: str) -> None:
    """Issue `code` as the offers API does: the issue record, the code, the offer's count."""
    transaction = Transaction()
    issue = CodeIssue(
        customer_id=customer_id,
        offer_id=OFFER,
        campaign_id=CAMPAIGN,
        code=code,
        mode="unique",
        channel="online",
        issued_at=T0,
        expires_at=T0 + timedelta(days=30),
    )
    transaction.put("issue", issue, condition=CodeIssue.pk.does_not_exist())
    transaction.update("code", Code.ref(code), *Code.issue(customer_id, T0))
    transaction.update("offer", Offer.ref(OFFER), [Offer.codes_issued.add(1)])
    transaction.commit()


@pytest.fixture
def codes(tables: list[str]) -> list[str]:
    """An offer with twelve unissued codes."""
    publish(make_campaign(), [make_offer(code_count=12, max_total=None)])
    provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=12)
    return pool()


def test_the_surplus_is_retired_a_page_per_transaction(
    codes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    real_commit = Transaction.commit

    def counted(transaction: Transaction) -> None:
        commits.append(len(transaction.labels))
        real_commit(transaction)

    monkeypatch.setattr(Transaction, "commit", counted)

    result = retire_surplus_codes(OFFER, CAMPAIGN, count=2, version=2, page_size=4)

    assert result == RetiredCodes(retired=10, by_version=10, live=2)
    # Three pages of at most four codes, each with the offer's count: never a call a code.
    assert commits == [5, 5, 3]
    left = pool()
    assert len(left) == 2
    for name in set(codes) - set(left):
        code = get_code(name)
        assert code is not None and code.retired_at is not None and code.issued_to is None
    state = CodeGeneration.of_offer(OFFER)
    assert state is not None and (state.generated, state.retired, state.live) == (12, 10, 2)

    # Again (a retried publish): nothing more is retired, the version's figure stands.
    assert retire_surplus_codes(OFFER, CAMPAIGN, count=2, version=2) == RetiredCodes(0, 10, 2)
    # A later version lowering it again reports only its own.
    assert retire_surplus_codes(OFFER, CAMPAIGN, count=1, version=3) == RetiredCodes(1, 1, 1)


def test_issued_codes_count_against_the_new_count(codes: list[str]) -> None:
    for number, name in enumerate(codes[:5]):
        give(name, f"cust-{number}")

    # Five are out: keeping three is impossible, so the seven left in the pool go.
    assert retire_surplus_codes(OFFER, CAMPAIGN, count=3, version=2) == RetiredCodes(7, 7, 5)
    assert pool() == []
    for name in codes[:5]:
        code = get_code(name)
        assert code is not None and code.retired_at is None and code.issued_to is not None


def test_a_code_issued_while_its_page_is_retired_stays_issued(
    codes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_retire_page = code_pool._retire_page
    raced: list[str] = []

    def issued_meanwhile(offer_id: str, campaign_id: str, page: list[str], *args: Any) -> None:
        if not raced:
            # A customer is given the page's first code between the read and the write.
            raced.append(page[0])
            give(page[0], "cust-racing")
        real_retire_page(offer_id, campaign_id, page, *args)

    monkeypatch.setattr(code_pool, "_retire_page", issued_meanwhile)

    result = retire_surplus_codes(OFFER, CAMPAIGN, count=4, version=2)

    # Eight were beyond the count; the raced code is one of the four kept, not the eight.
    assert result == RetiredCodes(retired=8, by_version=8, live=4)
    (taken,) = raced
    code = get_code(taken)
    assert code is not None
    assert (code.issued_to, code.retired_at) == ("cust-racing", None)
    assert len(pool()) == 3
    offer = get_offer(OFFER)
    assert offer is not None and offer.codes_issued == 1
    retired = [name for name in codes if (item := get_code(name)) and item.retired_at]
    assert len(retired) == 8 and taken not in retired


def test_a_retired_code_is_never_issued(codes: list[str]) -> None:
    retire_surplus_codes(OFFER, CAMPAIGN, count=11, version=2)
    (retired,) = set(codes) - set(pool())

    # An issuer that read the pool before the retirement (or an index lagging behind it).
    with pytest.raises(TransactionCancelled) as refused:
        give(retired, "cust-late")

    assert refused.value.failed("code")
    assert CodeIssue.find("cust-late", OFFER) is None
    code = get_code(retired)
    assert code is not None and code.issued_to is None


def test_a_raised_count_adds_codes_on_top_of_the_retired_ones(codes: list[str]) -> None:
    retire_surplus_codes(OFFER, CAMPAIGN, count=5, version=2)

    stored = provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=8)

    assert stored.stored == 3 and stored.total == 15
    assert len(pool()) == 8
    assert set(codes) - set(pool()) == {n for n in codes if (c := get_code(n)) and c.retired_at}


def test_nothing_to_retire_without_codes_or_below_the_count(tables: list[str]) -> None:
    assert retire_surplus_codes(OFFER, CAMPAIGN, count=0, version=1) == RetiredCodes(0, 0, 0)
    publish(make_campaign(), [make_offer(code_count=3, max_total=None)])
    provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=3)
    assert retire_surplus_codes(OFFER, CAMPAIGN, count=3, version=2) == RetiredCodes(0, 0, 3)
    assert retire_surplus_codes(OFFER, CAMPAIGN, count=9, version=2) == RetiredCodes(0, 0, 3)
    with pytest.raises(ValueError, match="page_size"):
        retire_surplus_codes(OFFER, CAMPAIGN, count=1, version=2, page_size=100)
