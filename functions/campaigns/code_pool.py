"""Storage of offer codes: the offer's unique codes written collision-free, in chunks,
and the surplus retired in chunks when a version lowers ``codes.count``.

Storage (`store_new_codes`, `provision_codes`). Codes are `Code` items (``CODE#<CODE>`` /
``META``, unissued unique codes in the offer's pool on gsi1, taken one at a time by the
issuance path). They are written by TransactWriteItems of 99 conditional puts
(``attribute_not_exists(pk)``: never over an existing code of any offer) plus one update of
the offer's `CodeGeneration` count, conditional on the count the writer read. So:

- a chunk is all or nothing, and the count always equals the codes stored, even after a
  crash half-way through 100,000 codes;
- a republish, a retried publish or two loaders racing on one file write only the missing
  number: the count is the offer's target progress, and a writer whose expected count is
  stale is refused, re-reads it and carries on from there (never past the target);
- a chunk cancelled by ``ConditionalCheckFailed`` on some codes is retried with only those
  codes replaced by fresh ones of the same prefix and length.

Throughput: chunks go one after another (the count is each chunk's optimistic lock), and
`provision_codes` generates each chunk's codes when it writes it, so memory stays flat
(3.4 MB traced at the peak of 100,000 codes). Client-side work is at most 0.66 ms a code
(PynamoDB and botocore serialisation, measured on moto with its own parsing included);
a 100-item TransactWriteItems takes some tens of milliseconds on DynamoDB. So 100,000
codes (1,011 transactions) take one to two minutes: the publishing function needs a
timeout of a few minutes (its CPU share grows with its memory size, a full vCPU at
1,769 MB). Beware stock moto 5.2.5: its TransactWriteItems deep-copies the whole table
once per item, which makes bulk storage quadratic there (1,000 codes: 50 s) unless the
local cloud patches it.

Retirement (`retire_surplus_codes`). ``codes.count`` is how many codes the offer gives
out in all. Lowered on a republish, the codes beyond it that were never issued are
retired: taken out of the pool for good and refused by name, while issued codes stay
valid. The offer's live codes (generated minus retired, `CodeGeneration.live`) are brought
down to the new count, or to the codes already issued if more went out. It reads the pool
a page at a time (at most 99 codes, never the whole pool) and retires each page in one
TransactWriteItems: a conditional update per code (still unissued and unretired, the
mirror of `Code.issue`'s condition, so a code issued at the same moment ends up issued or
retired, never both) and the offer's retired count, conditional on both counts read. A
code that was issued meanwhile is dropped from the page and the rest retried; the number
to retire does not change, as an issue moves a code from the pool to a customer. Raising
the count later generates new codes on top: retired ones never return.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from functions.campaigns.codes import (
    SYSTEM_RANDOM,
    code_length,
    generate_codes,
    normalise_prefix,
    parse_typed_code,
    split_code,
)
from functions.campaigns.models import Code, CodeGeneration, get_offer
from functions.core.clock import utc_now
from functions.core.models import Transaction, TransactionCancelled

__all__ = [
    "CHUNK_SIZE",
    "RetiredCodes",
    "StoredCodes",
    "provision_codes",
    "retire_surplus_codes",
    "store_new_codes",
]

# TransactWriteItems takes at most 100 items: 99 codes and the offer's generation count.
CHUNK_SIZE: Final = 99
# Cancellations worth retrying as they are: a concurrent transaction on the same items,
# or throttling (a 100k-code pool is one hot GSI partition until DynamoDB splits it).
_TRANSIENT: Final = frozenset({"TransactionConflict", "ThrottlingError"})
# Consecutive refusals of one chunk before giving up: each replaces colliding codes with
# fresh random ones, so more than a few in a row means something else is wrong.
_MAX_ATTEMPTS: Final = 8
_MARKER: Final = "generation"


@dataclass(frozen=True)
class StoredCodes:
    """What a store did: codes written now, how many of those replace a code that already
    existed, and the offer's total afterwards (0 written: it already had them all)."""

    stored: int
    regenerated: int
    total: int


@dataclass(frozen=True)
class RetiredCodes:
    """What a retirement did: codes retired now, those the campaign version retired in all
    (now and in any earlier attempt of the same version), and the offer's live codes
    afterwards (issued or still to be issued)."""

    retired: int
    by_version: int
    live: int


def provision_codes(
    offer_id: str,
    campaign_id: str,
    *,
    prefix: str,
    count: int,
    max_uses: int = 1,
    length: int | None = None,
    rng: random.Random = SYSTEM_RANDOM,
) -> StoredCodes:
    """Make the offer have `count` unique codes (the publish path's entry point).

    Only the missing number is generated and written: a republish with the same count
    writes nothing, a raised count writes the difference (a lowered one writes nothing
    here: `retire_surplus_codes` retires what is beyond it). Retired codes do not count
    towards `count`: they are no longer given out.
    """
    size = code_length(count) if length is None else length
    normalised = normalise_prefix(prefix)
    state = CodeGeneration.of_offer(offer_id)
    return _fill(
        offer_id,
        campaign_id,
        target=count + (state.retired if state is not None else 0),
        take=lambda n: generate_codes(normalised, n, length=size, rng=rng),
        max_uses=max_uses,
        rng=rng,
    )


def store_new_codes(
    offer_id: str,
    campaign_id: str,
    codes: Sequence[str],
    *,
    max_uses: int = 1,
    rng: random.Random = SYSTEM_RANDOM,
) -> StoredCodes:
    """Store `codes` (from `generate_codes`) as the offer's unique codes, never over an
    existing code; a colliding one is replaced by a fresh code of its prefix and length.

    `codes` is the offer's whole batch: if the offer already has some codes (a republish,
    a retry after a timeout), only ``len(codes)`` minus those are written, taken from the
    front of `codes`, so calling it again never duplicates.
    """
    batch = [parse_typed_code(code) for code in codes]
    if len(set(batch)) != len(batch):
        raise ValueError("the codes to store must be distinct")
    for code in batch:
        split_code(code)  # replacements are made in the same format, so it must be ours
    pending = deque(batch)

    def take(n: int) -> list[str]:
        return [pending.popleft() for _ in range(min(n, len(pending)))]

    return _fill(
        offer_id,
        campaign_id,
        target=len(batch),
        take=take,
        max_uses=max_uses,
        rng=rng,
        give_back=pending.extendleft,
    )


def _fill(
    offer_id: str,
    campaign_id: str,
    *,
    target: int,
    take: Callable[[int], list[str]],
    max_uses: int,
    rng: random.Random,
    give_back: Callable[[Iterable[str]], None] | None = None,
) -> StoredCodes:
    """Write chunks until the offer's generation count reaches `target`.

    `take(n)` supplies up to `n` new codes; `give_back` returns unwritten ones to the front
    of the supply (a fixed list must not lose codes a refused chunk did not write).
    """
    if max_uses < 1:
        raise ValueError(f"max_uses must be at least 1, got {max_uses}")
    done = CodeGeneration.for_offer(offer_id)
    stored = regenerated = 0
    chunk: list[str] = []
    attempts = 0
    while done < target:
        if not chunk:
            chunk = take(min(CHUNK_SIZE, target - done))
            attempts = 0
            if not chunk:
                raise ValueError("ran out of codes before reaching the target")
        attempts += 1
        try:
            _write_chunk(offer_id, campaign_id, chunk, expected=done, max_uses=max_uses)
        except TransactionCancelled as cancelled:
            if attempts >= _MAX_ATTEMPTS:
                raise
            if cancelled.failed(_MARKER):
                # Another writer moved the count: nothing of ours was written. Start
                # again from the count it left, with these codes still unused.
                done = CodeGeneration.for_offer(offer_id)
                if give_back is not None:
                    give_back(reversed(chunk))
                chunk = []
                continue
            colliding = [code for code in chunk if cancelled.failed(_label(code))]
            if colliding:
                chunk = _replace(chunk, set(colliding), rng)
                regenerated += len(colliding)
            elif set(cancelled.reasons.values()) <= _TRANSIENT:
                time.sleep(min(0.05 * 2**attempts, 1.0) * rng.random())
            else:
                raise
        else:
            done += len(chunk)
            stored += len(chunk)
            chunk = []
    return StoredCodes(stored=stored, regenerated=regenerated, total=done)


def _label(code: str) -> str:
    return f"code:{code}"


def _write_chunk(
    offer_id: str, campaign_id: str, chunk: list[str], *, expected: int, max_uses: int
) -> None:
    now = utc_now()
    # A token makes the SDK's own retry of a committed-but-unacknowledged transaction a
    # no-op instead of a refusal (DynamoDB remembers it for ten minutes).
    transaction = Transaction(client_request_token=str(uuid.uuid4()))
    for code in chunk:
        item = _new_code(code, offer_id, campaign_id, max_uses, now)
        transaction.put(_label(code), item, condition=Code.pk.does_not_exist())
    transaction.update(
        _MARKER,
        CodeGeneration.ref(offer_id),
        *CodeGeneration.advance(offer_id, campaign_id, expected, len(chunk), now),
    )
    transaction.commit()


def _new_code(code: str, offer_id: str, campaign_id: str, max_uses: int, at: datetime) -> Code:
    # Unissued unique codes are in the offer's pool (gsi1), whence issuance takes them.
    return Code(
        code=code,
        offer_id=offer_id,
        campaign_id=campaign_id,
        mode="unique",
        uses=0,
        max_uses=max_uses,
        created_at=at,
    )


def _replace(chunk: list[str], colliding: set[str], rng: random.Random) -> list[str]:
    """`chunk` with each colliding code swapped for a fresh one of the same prefix and
    length, distinct from everything else in the chunk (one transaction may not write
    one item twice)."""
    taken = set(chunk)
    result = []
    for code in chunk:
        if code not in colliding:
            result.append(code)
            continue
        prefix, random_part = split_code(code)
        for _ in range(_MAX_ATTEMPTS):
            fresh = generate_codes(prefix, 1, length=len(random_part), rng=rng)[0]
            if fresh not in taken:
                break
        else:
            raise RuntimeError(f"no fresh code to replace {code}: the random source repeats")
        taken.add(fresh)
        result.append(fresh)
    return result


def retire_surplus_codes(
    offer_id: str,
    campaign_id: str,
    *,
    count: int,
    version: int,
    page_size: int = CHUNK_SIZE,
    rng: random.Random = SYSTEM_RANDOM,
) -> RetiredCodes:
    """Retire the offer's unissued codes beyond `count` (campaign `version` lowered it).

    Keeps ``max(count, issued)`` live codes; nothing happens when there are no more than
    that. A retry after a crash retires only what is still beyond the count, and reports
    what its version retired in all.
    """
    if count < 0 or not 1 <= page_size <= CHUNK_SIZE:
        raise ValueError(f"count must be non-negative and page_size 1-{CHUNK_SIZE}")
    state = CodeGeneration.of_offer(offer_id)
    if state is None:
        return RetiredCodes(retired=0, by_version=0, live=0)
    surplus = _surplus(offer_id, state, count)
    retired = attempts = 0
    after: str | None = None
    page: list[str] = []
    while surplus > 0:
        if not page:
            limit = min(page_size, surplus)
            page = [c.code for c in Code.pool(offer_id, start_after=after, limit=limit)]
            attempts = 0
            if not page:
                break  # everything left was issued meanwhile: nothing more to retire
            # Codes are read in index order from the last one seen, so a code left in the
            # pool (an index lagging behind a retirement) is not read twice.
            after = page[-1]
        attempts += 1
        try:
            _retire_page(offer_id, campaign_id, page, state, version)
        except TransactionCancelled as cancelled:
            if attempts >= _MAX_ATTEMPTS:
                raise
            if cancelled.failed(_MARKER):
                # Another writer added or retired codes: what is surplus now is theirs too.
                state = CodeGeneration.of_offer(offer_id) or state
                surplus = _surplus(offer_id, state, count)
                page = page[:surplus]
                continue
            taken = [code for code in page if cancelled.failed(_label(code))]
            if taken:
                # Issued (or retired) since the page was read: those stay as they are.
                page = [code for code in page if code not in taken]
                attempts = 0
            elif set(cancelled.reasons.values()) <= _TRANSIENT:
                time.sleep(min(0.05 * 2**attempts, 1.0) * rng.random())
            else:
                raise
        else:
            retired += len(page)
            surplus -= len(page)
            state = _after_retiring(state, len(page), version)
            page = []
    return RetiredCodes(retired=retired, by_version=state.retired_by(version), live=state.live)


def _surplus(offer_id: str, state: CodeGeneration, count: int) -> int:
    """Live codes beyond what the offer keeps: `count`, or what is issued if more is."""
    offer = get_offer(offer_id)
    issued = offer.codes_issued if offer is not None else 0
    return max(state.live - max(count, issued), 0)


def _retire_page(
    offer_id: str, campaign_id: str, page: list[str], state: CodeGeneration, version: int
) -> None:
    now = utc_now()
    transaction = Transaction(client_request_token=str(uuid.uuid4()))
    for code in page:
        transaction.update(_label(code), Code.ref(code), *Code.retire_unissued(offer_id, now))
    actions, condition = state.retire(len(page), version, now)
    actions += [CodeGeneration.offer_id.set(offer_id), CodeGeneration.campaign_id.set(campaign_id)]
    transaction.update(_MARKER, CodeGeneration.ref(offer_id), actions, condition)
    transaction.commit()


def _after_retiring(state: CodeGeneration, by: int, version: int) -> CodeGeneration:
    """The counts as `_retire_page` left them, without reading them back."""
    return CodeGeneration(
        offer_id=state.offer_id,
        campaign_id=state.campaign_id,
        generated=state.generated,
        retired=state.retired + by,
        retired_version=version,
        retired_in_version=state.retired_by(version) + by,
        updated_at=state.updated_at,
    )
