"""Offer codes: the alphabet, input normalisation, bulk generation and collision-free storage.

Alphabet. ``34679CDFGHJKMNPQRTVWXY`` (22 symbols), the random part of every generated code.
Upper-case letters and digits minus the characters people confuse when reading a code off
a receipt or a screen: 0/O, 1/I/L, 5/S, 2/Z, 8/B (both sides of each group go, so there is
never a right one to guess), and U (read as V); minus the vowels A and E as well (I, O and
U are already out), so random codes cannot spell words. A customer who mistypes a
look-alike gets "not found" rather than someone else's code.

Format. ``<PREFIX>-<RANDOM>``: the marketer's prefix (``[A-Z0-9]`` groups joined by
single hyphens, at most 20 characters) then one hyphen and the random part. One group, no
inner hyphens, so a customer copying the code has a single separator to keep.

Length of the random part (`code_length`). Collisions are harmless for correctness
(`store_new_codes` never overwrites a code and replaces the colliding one), but each one
costs a cancelled 100-item transaction, so the length keeps them negligible. For ``n`` new
codes among ``E`` existing codes with the same prefix and ``k = 22`` symbols, the union
bound gives::

    P(any collision) <= (n(n-1)/2 + n*E) / k**L

and the random part is the smallest ``L >= 8`` keeping that below 1e-6, with ``E`` assumed
to be 1,000,000 (ten maximum-size offers reusing a prefix). For ``n = 100,000`` that is
``1.05e11 / 22**13 = 3.7e-7``, so ``L = 13`` (12 would give 8.2e-6); 5,000 codes get 12.
Long codes also resist guessing: 22**13 is 2.8e17 codes per prefix.

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
"""

from __future__ import annotations

import math
import random
import re
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from functions.core.clock import utc_now
from functions.core.errors import BadRequest
from functions.core.models import Transaction, TransactionCancelled
from functions.offers.models import Code, CodeGeneration, normalize_code

__all__ = [
    "ALPHABET",
    "ASSUMED_EXISTING",
    "CHUNK_SIZE",
    "MAX_COLLISION_PROBABILITY",
    "MIN_RANDOM_LENGTH",
    "InvalidCode",
    "StoredCodes",
    "code_length",
    "collision_probability",
    "generate_codes",
    "normalise_code",
    "normalise_prefix",
    "provision_codes",
    "split_code",
    "store_new_codes",
]

ALPHABET: Final = "34679CDFGHJKMNPQRTVWXY"
MIN_RANDOM_LENGTH: Final = 8
MAX_COLLISION_PROBABILITY: Final = 1e-6
ASSUMED_EXISTING: Final = 1_000_000
MAX_PREFIX_LENGTH: Final = 20
# Far above any generated code (20 + 1 + 13), far below DynamoDB's 2 KB key limit.
MAX_CODE_LENGTH: Final = 64
# TransactWriteItems takes at most 100 items: 99 codes and the offer's generation count.
CHUNK_SIZE: Final = 99

# Validated before upper-casing: str.upper() maps some non-ASCII letters to ASCII ones
# ("ß" -> "SS", the dotless i -> "I"), which would otherwise sneak past the check.
_TYPED_CODE: Final = re.compile(r"[A-Za-z0-9-]+", re.ASCII)
_PREFIX: Final = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*", re.ASCII)
_GENERATED: Final = re.compile(rf"(?P<prefix>.+)-(?P<random>[{ALPHABET}]+)", re.ASCII)

# Cancellations worth retrying as they are: a concurrent transaction on the same items,
# or throttling (a 100k-code pool is one hot GSI partition until DynamoDB splits it).
_TRANSIENT: Final = frozenset({"TransactionConflict", "ThrottlingError"})
# Consecutive refusals of one chunk before giving up: each replaces colliding codes with
# fresh random ones, so more than a few in a row means something else is wrong.
_MAX_ATTEMPTS: Final = 8
_MARKER: Final = "generation"

_system_random = secrets.SystemRandom()


class InvalidCode(BadRequest):
    """A typed code that cannot be one of ours: empty, too long, or a stray character."""

    def __init__(self, text: str) -> None:
        super().__init__(
            "invalid_code",
            "A code is letters, digits and hyphens only.",
            {"code": text[:MAX_CODE_LENGTH]},
        )
        self.args = (text,)


def normalise_code(text: str) -> str:
    """The stored form of a code as typed: trimmed, upper-case, ``[A-Z0-9-]`` only.

    Raises `InvalidCode` (400 ``invalid_code``) for anything else, so a garbage string is
    refused at the edge instead of becoming a key lookup.
    """
    stripped = text.strip()
    if len(stripped) > MAX_CODE_LENGTH or not _TYPED_CODE.fullmatch(stripped):
        raise InvalidCode(text)
    return normalize_code(stripped)


def normalise_prefix(prefix: str) -> str:
    """A marketer's code prefix, upper-case; ValueError unless ``[A-Z0-9]`` groups joined by
    single hyphens, at most 20 characters (a hyphen at either end would look like the
    separator before the random part)."""
    value = prefix.strip().upper()
    if len(value) > MAX_PREFIX_LENGTH or not _PREFIX.fullmatch(value):
        raise ValueError(
            f"a code prefix is letters and digits (hyphens between groups), "
            f"1-{MAX_PREFIX_LENGTH} characters, got {prefix!r}"
        )
    return value


def split_code(code: str) -> tuple[str, str]:
    """``(prefix, random part)`` of a generated code; ValueError if it is not one."""
    match = _GENERATED.fullmatch(code)
    if match is None or len(match["random"]) < MIN_RANDOM_LENGTH:
        raise ValueError(f"{code!r} is not a generated code (PREFIX-{ALPHABET[:4]}...)")
    return normalise_prefix(match["prefix"]), match["random"]


def collision_probability(count: int, length: int, *, existing: int = ASSUMED_EXISTING) -> float:
    """Union bound on any collision among `count` new codes and `existing` ones."""
    pairs = count * (count - 1) / 2 + count * existing
    return pairs / float(len(ALPHABET) ** length)


def code_length(
    count: int,
    *,
    existing: int = ASSUMED_EXISTING,
    max_probability: float = MAX_COLLISION_PROBABILITY,
) -> int:
    """The shortest random part (at least 8) for which `collision_probability` of `count`
    new codes among `existing` stays below `max_probability`."""
    if count < 0 or existing < 0 or not 0 < max_probability < 1:
        raise ValueError("count and existing are non-negative, max_probability in (0, 1)")
    pairs = count * (count - 1) / 2 + count * existing
    # Start near the answer (log), then step: exact at the boundary whatever float does.
    length = max(MIN_RANDOM_LENGTH, math.floor(math.log(max(pairs, 1) / max_probability, 22)))
    while collision_probability(count, length, existing=existing) >= max_probability:
        length += 1
    return length


def generate_codes(
    prefix: str,
    count: int,
    *,
    length: int | None = None,
    rng: random.Random = _system_random,
) -> list[str]:
    """`count` distinct codes ``<PREFIX>-<RANDOM>``; the random part is `length` symbols
    of `ALPHABET` (default: `code_length(count)`). `rng` is the system CSPRNG: codes are
    bearer tokens, so they must not be predictable; tests pass a seeded one."""
    normalised = normalise_prefix(prefix)
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    size = code_length(count) if length is None else length
    if size < MIN_RANDOM_LENGTH:
        raise ValueError(f"the random part is at least {MIN_RANDOM_LENGTH} symbols, got {size}")
    seen: set[str] = set()
    codes: list[str] = []
    while len(codes) < count:
        before = len(codes)
        for part in _random_parts(rng, size, count - len(codes)):
            code = f"{normalised}-{part}"
            if code not in seen:
                seen.add(code)
                codes.append(code)
        if len(codes) == before:
            # A fair source repeats itself this much with probability ~0 at >= 8 symbols;
            # a broken one must fail rather than spin.
            raise RuntimeError(f"the random source keeps repeating itself ({before} unique)")
    return codes


# Uniform symbols from random bytes by rejection: 242 = 11 * 22 byte values map evenly
# onto the alphabet (b % 22), the 14 above are dropped. bytes.translate does both in C:
# 100,000 codes take a few tens of milliseconds instead of ~2 s of per-symbol draws.
_EVEN_BYTES: Final = 256 // len(ALPHABET) * len(ALPHABET)
_TO_SYMBOL: Final = bytes(ord(ALPHABET[b % len(ALPHABET)]) for b in range(256))
_UNEVEN: Final = bytes(range(_EVEN_BYTES, 256))


def _random_parts(rng: random.Random, size: int, count: int) -> list[str]:
    """`count` random parts of `size` symbols each."""
    needed = size * count
    symbols = b""
    while len(symbols) < needed:
        missing = needed - len(symbols)
        # 5.5% of bytes are dropped: ask for a little more than is missing.
        symbols += rng.randbytes(missing + missing // 16 + 8).translate(_TO_SYMBOL, _UNEVEN)
    text = symbols[:needed].decode("ascii")
    return [text[start : start + size] for start in range(0, needed, size)]


@dataclass(frozen=True)
class StoredCodes:
    """What a store did: codes written now, how many of those replace a code that already
    existed, and the offer's total afterwards (0 written: it already had them all)."""

    stored: int
    regenerated: int
    total: int


def provision_codes(
    offer_id: str,
    campaign_id: str,
    *,
    prefix: str,
    count: int,
    max_uses: int = 1,
    length: int | None = None,
    rng: random.Random = _system_random,
) -> StoredCodes:
    """Make the offer have `count` unique codes (the publish path's entry point).

    Only the missing number is generated and written: a republish with the same count
    writes nothing, a raised count writes the difference (a lowered one writes nothing;
    codes are never taken back here).
    """
    size = code_length(count) if length is None else length
    normalised = normalise_prefix(prefix)
    return _fill(
        offer_id,
        campaign_id,
        target=count,
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
    rng: random.Random = _system_random,
) -> StoredCodes:
    """Store `codes` (from `generate_codes`) as the offer's unique codes, never over an
    existing code; a colliding one is replaced by a fresh code of its prefix and length.

    `codes` is the offer's whole batch: if the offer already has some codes (a republish,
    a retry after a timeout), only ``len(codes)`` minus those are written, taken from the
    front of `codes`, so calling it again never duplicates.
    """
    batch = [normalise_code(code) for code in codes]
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
