"""Offer codes: alphabet, typed input, generation, and storage that never overwrites."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pynamodb.exceptions import TransactWriteError

import functions.campaigns.code_pool as codes_module
from functions.campaigns.code_pool import CHUNK_SIZE, StoredCodes, provision_codes, store_new_codes
from functions.campaigns.codes import (
    ALPHABET,
    MAX_COLLISION_PROBABILITY,
    MIN_RANDOM_LENGTH,
    InvalidCode,
    code_length,
    collision_probability,
    generate_codes,
    normalise_prefix,
    parse_typed_code,
    split_code,
)
from functions.campaigns.models import Code, CodeGeneration, Offer, get_code
from functions.core.errors import BadRequest
from functions.core.models import TransactionCancelled
from tests.support.aws import aws_env, tables

__all__ = ["aws_env", "tables"]

OFFER = "TRAIL10"
CAMPAIGN = "spring-trail-2027"
LOOK_ALIKES = "0O1IL5S2Z8BUV"


# -- alphabet and normalisation ----------------------------------------------------------


def test_alphabet_has_no_look_alikes_or_vowels() -> None:
    assert ALPHABET == "34679CDFGHJKMNPQRTVWXY"
    assert len(set(ALPHABET)) == len(ALPHABET) == 22
    # Both sides of every confusable pair are out (V stays: its partner U went).
    assert not set(ALPHABET) & (set(LOOK_ALIKES) - {"V"})
    assert not set(ALPHABET) & set("AEIOU")
    assert all(char.isascii() and (char.isdigit() or char.isupper()) for char in ALPHABET)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("trail-9xk4", "TRAIL-9XK4"),
        ("  Trail-9XK4\n", "TRAIL-9XK4"),
        ("TRAIL10", "TRAIL10"),
        ("\uff34\uff32\uff21\uff29\uff2c", "TRAIL"),  # full-width "TRAIL"
        ("\uff54\uff52\uff41\uff49\uff4c\uff0d\uff19\uff38\uff2b\uff14", "TRAIL-9XK4"),
        ("\u3000trail\u2013\uff19xk4\u3000", "TRAIL-9XK4"),  # ideographic spaces, en dash
        ("TRAIL\u30fc9XK4", "TRAIL-9XK4"),  # the kana-mode "-" between Latin and digits
        ("\u017ftrail", "STRAIL"),  # the long s is an s to NFKC
    ],
)
def test_codes_are_case_insensitive_and_trimmed(typed: str, stored: str) -> None:
    assert parse_typed_code(typed) == stored


@pytest.mark.parametrize(
    "dash",
    [
        "-",
        *(chr(point) for point in range(0x2010, 0x2016)),
        "\u2212",  # minus sign
        "\ufe58",  # small em dash
        "\ufe63",  # small hyphen-minus
        "\uff0d",  # full-width hyphen-minus
        "\u207b",  # superscript minus
        "\u208b",  # subscript minus
        "\ufe31",  # presentation form for a vertical em dash
        "\ufe32",  # presentation form for a vertical en dash
    ],
)
def test_dash_variants_are_the_hyphen(dash: str) -> None:
    assert parse_typed_code(f"welcome{dash}500") == "WELCOME-500"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "TRAIL 9XK4",  # inner space
        "TRAIL_9XK4",
        "TRAIL#9XK4",  # would reach into a key
        "straße",  # "ß".upper() is "SS": checked before upper-casing
        "\u0131x",  # dotless i upper-cases to an ASCII "I"
        "\u1e9e",  # capital sharp s: casefold makes it "ss"
        "TRAIL\u301c9XK4",  # wave dash: the IME's tilde
        "TRAIL\u00ad9XK4",  # soft hyphen
        "TRAIL\u2e3a9XK4",  # two-em dash
        "\u30c8\u30ec\u30a4\u30eb\u30fc9XK4",  # after a kana, the mark lengthens it
        "\u30fc9XK4",  # nothing before it
        "TRAIL\u200b9XK4",  # zero-width space
        "A" * 65,
        "\u216b" * 22,  # 22 characters, but 66 once NFKC has spelled each out as XII
    ],
)
def test_anything_but_letters_digits_and_hyphens_is_refused(typed: str) -> None:
    with pytest.raises(InvalidCode) as raised:
        parse_typed_code(typed)
    assert isinstance(raised.value, BadRequest)
    assert (raised.value.status, raised.value.code) == (400, "invalid_code")


@pytest.mark.parametrize("prefix", ["", "-TRAIL", "TRAIL-", "TR--AIL", "TR AIL", "T_R", "X" * 21])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        normalise_prefix(prefix)


def test_prefixes_are_upper_cased_and_may_have_groups() -> None:
    assert normalise_prefix(" spring-trail ") == "SPRING-TRAIL"


# -- length rule and generation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "length"), [(0, 8), (1, 9), (100, 11), (5_000, 12), (100_000, 13)]
)
def test_length_rule(count: int, length: int) -> None:
    assert code_length(count) == length


@pytest.mark.parametrize("count", [1, 100, 5_000, 100_000, 1_000_000])
@pytest.mark.parametrize("existing", [0, 1_000_000, 50_000_000])
def test_length_is_the_shortest_below_the_bound(count: int, existing: int) -> None:
    length = code_length(count, existing=existing)
    assert collision_probability(count, length, existing=existing) < MAX_COLLISION_PROBABILITY
    assert length == MIN_RANDOM_LENGTH or (
        collision_probability(count, length - 1, existing=existing) >= MAX_COLLISION_PROBABILITY
    )


def test_100k_codes_are_negligibly_likely_to_collide() -> None:
    # The documented figure: 1.05e11 pairs over 22**13 codes.
    assert collision_probability(100_000, 13) == pytest.approx(3.71e-7, rel=0.01)
    assert collision_probability(100_000, 12) > MAX_COLLISION_PROBABILITY


def test_generated_codes_are_distinct_and_well_formed() -> None:
    codes = generate_codes("trail", 2_000, rng=random.Random(1))
    length = code_length(2_000)
    assert len(codes) == len(set(codes)) == 2_000
    shape = re.compile(rf"TRAIL-[{ALPHABET}]{{{length}}}")
    assert all(shape.fullmatch(code) for code in codes)
    assert all(parse_typed_code(code) == code for code in codes)
    assert split_code(codes[0]) == ("TRAIL", codes[0].removeprefix("TRAIL-"))


def test_generation_is_reproducible_only_with_a_seeded_source() -> None:
    assert generate_codes("T", 5, rng=random.Random(4)) == generate_codes(
        "T", 5, rng=random.Random(4)
    )
    assert generate_codes("T", 5) != generate_codes("T", 5)  # the system CSPRNG
    assert generate_codes("T", 0) == []


def test_explicit_length_and_its_floor() -> None:
    assert len(split_code(generate_codes("T", 1, length=10)[0])[1]) == 10
    with pytest.raises(ValueError, match="at least 8"):
        generate_codes("T", 1, length=7)


class Stuck(random.Random):
    """A broken random source: always the same bytes."""

    def randbytes(self, n: int) -> bytes:
        return bytes(n)


def test_a_repeating_source_fails_instead_of_spinning() -> None:
    with pytest.raises(RuntimeError, match="repeating"):
        generate_codes("T", 3, rng=Stuck())


@pytest.mark.parametrize("code", ["TRAIL10", "TRAIL-ABCDEFGH", "TRAIL-9XK4", "-34679CDF"])
def test_split_refuses_what_generation_cannot_make(code: str) -> None:
    with pytest.raises(ValueError, match="not a generated code"):
        split_code(code)


# -- storage -----------------------------------------------------------------------------


def pool(offer_id: str = OFFER) -> list[str]:
    return [code.code for code in Code.gsi1.query(Code.pool_partition(offer_id))]


def test_generation_count_lives_in_the_offers_partition() -> None:
    assert CodeGeneration.key(OFFER)[0] == Offer.key(OFFER)[0]


@pytest.mark.usefixtures("tables")
def test_provisioned_codes_are_unissued_unique_codes_in_the_pool() -> None:
    count = 2 * CHUNK_SIZE + 52  # three transactions, the last one partial
    result = provision_codes(OFFER, CAMPAIGN, prefix="trail", count=count, max_uses=2)
    assert result == StoredCodes(stored=count, regenerated=0, total=count)
    codes = pool()
    assert len(codes) == len(set(codes)) == count
    first = get_code(codes[0].lower())
    assert first is not None
    assert (first.offer_id, first.campaign_id, first.mode) == (OFFER, CAMPAIGN, "unique")
    assert (first.uses, first.max_uses, first.issued_to) == (0, 2, None)
    assert CodeGeneration.for_offer(OFFER) == count


@pytest.mark.usefixtures("tables")
def test_republishing_generates_only_the_missing_number() -> None:
    assert provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=120).stored == 120
    before = set(pool())
    assert provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=120) == StoredCodes(0, 0, 120)
    assert set(pool()) == before
    assert provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=150) == StoredCodes(30, 0, 150)
    assert len(pool()) == 150 and before < set(pool())
    # A lower count takes nothing back (issued codes may be in customers' hands).
    assert provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=10) == StoredCodes(0, 0, 150)


@pytest.mark.usefixtures("tables")
def test_storing_a_batch_again_does_not_duplicate() -> None:
    first = generate_codes("TRAIL", 120, rng=random.Random(3))
    assert store_new_codes(OFFER, CAMPAIGN, first) == StoredCodes(120, 0, 120)
    second = generate_codes("TRAIL", 120, rng=random.Random(5))
    assert store_new_codes(OFFER, CAMPAIGN, second) == StoredCodes(0, 0, 120)
    assert set(pool()) == set(first)


@pytest.mark.usefixtures("tables")
def test_an_existing_code_of_another_offer_is_never_overwritten() -> None:
    length = code_length(150)
    # The same seed makes the offer's first generated code this existing one.
    taken = generate_codes("TRAIL", 1, length=length, rng=random.Random(7))[0]
    Code(
        code=taken,
        offer_id="OTHER",
        campaign_id="autumn-2026",
        mode="unique",
        max_uses=1,
        issued_to="cust-1",
        created_at=datetime(2026, 9, 1, tzinfo=UTC),
    ).save()

    result = provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=150, rng=random.Random(7))

    assert result == StoredCodes(stored=150, regenerated=1, total=150)
    existing = get_code(taken)
    assert existing is not None
    assert (existing.offer_id, existing.issued_to) == ("OTHER", "cust-1")
    codes = pool()
    assert len(set(codes)) == 150 and taken not in codes
    assert all(len(split_code(code)[1]) == length for code in codes)


@pytest.mark.usefixtures("tables")
def test_a_colliding_code_in_a_given_batch_is_replaced_in_its_format() -> None:
    batch = generate_codes("SPRING-TRAIL", 10, length=10, rng=random.Random(11))
    store_new_codes("OTHER", CAMPAIGN, batch[3:4])

    result = store_new_codes(OFFER, CAMPAIGN, batch)

    assert result == StoredCodes(stored=10, regenerated=1, total=10)
    codes = pool()
    assert set(batch) - set(codes) == {batch[3]}
    (fresh,) = set(codes) - set(batch)
    assert split_code(fresh)[0] == "SPRING-TRAIL" and len(split_code(fresh)[1]) == 10
    assert pool("OTHER") == [batch[3]]


class Racing(random.Random):
    """Draws codes for a writer while a second writer fills the same offer first."""

    def __init__(self, count: int) -> None:
        super().__init__(13)
        self.count = count
        self.raced = False

    def randbytes(self, n: int) -> bytes:
        if not self.raced:
            self.raced = True
            provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=self.count)
        return super().randbytes(n)


@pytest.mark.usefixtures("tables")
def test_two_writers_racing_on_one_offer_never_pass_its_count() -> None:
    # The first writer read a count of 0, then the second stored all 150 before its
    # first chunk: that chunk is refused on the count and nothing more is written.
    result = provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=150, rng=Racing(150))
    assert result == StoredCodes(stored=0, regenerated=0, total=150)
    assert len(pool()) == CodeGeneration.for_offer(OFFER) == 150


@pytest.mark.usefixtures("tables")
def test_bad_batches_are_refused_before_writing() -> None:
    with pytest.raises(ValueError, match="distinct"):
        store_new_codes(OFFER, CAMPAIGN, ["TRAIL-34679CDF", "trail-34679cdf"])
    with pytest.raises(ValueError, match="not a generated code"):
        store_new_codes(OFFER, CAMPAIGN, ["TRAIL10"])
    with pytest.raises(ValueError, match="max_uses"):
        provision_codes(OFFER, CAMPAIGN, prefix="TRAIL", count=5, max_uses=0)
    assert pool() == [] and CodeGeneration.for_offer(OFFER) == 0


def cancelled(**reasons: str) -> TransactionCancelled:
    return TransactionCancelled(reasons, TransactWriteError("cancelled"))


@pytest.mark.usefixtures("tables")
def test_a_conflicting_transaction_is_retried_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    real = codes_module._write_chunk
    refusals = [cancelled(generation="TransactionConflict"), cancelled(x="ThrottlingError")]
    sent: list[list[str]] = []

    def flaky(offer_id: str, campaign_id: str, chunk: list[str], **kwargs: Any) -> None:
        sent.append(list(chunk))
        if refusals:
            raise refusals.pop(0)
        real(offer_id, campaign_id, chunk, **kwargs)

    monkeypatch.setattr(codes_module, "_write_chunk", flaky)
    monkeypatch.setattr("time.sleep", lambda seconds: None)  # no real backoff

    assert provision_codes(OFFER, CAMPAIGN, prefix="T", count=5) == StoredCodes(5, 0, 5)
    assert sent[0] == sent[1] == sent[2]  # the same codes each time: nothing collided
    assert set(pool()) == set(sent[0])


@pytest.mark.usefixtures("tables")
def test_other_refusals_and_endless_ones_are_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(reason: str) -> Any:
        def write(*args: Any, **kwargs: Any) -> None:
            raise cancelled(generation=reason)

        return write

    monkeypatch.setattr("time.sleep", lambda seconds: None)  # no real backoff
    monkeypatch.setattr(codes_module, "_write_chunk", refuse("ValidationError"))
    with pytest.raises(TransactionCancelled, match="ValidationError"):
        provision_codes(OFFER, CAMPAIGN, prefix="T", count=5)
    monkeypatch.setattr(codes_module, "_write_chunk", refuse("TransactionConflict"))
    with pytest.raises(TransactionCancelled, match="TransactionConflict"):
        provision_codes(OFFER, CAMPAIGN, prefix="T", count=5)


def test_the_count_only_moves_forward_from_what_was_read() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        CodeGeneration.advance(OFFER, CAMPAIGN, -1, 5, datetime(2027, 3, 1, tzinfo=UTC))
