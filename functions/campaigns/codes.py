"""Offer codes without I/O: the alphabet, what a typed code is, and bulk generation.

Alphabet. ``34679CDFGHJKMNPQRTVWXY`` (22 symbols), the random part of every generated code.
Upper-case letters and digits minus the characters people confuse when reading a code off
a receipt or a screen: 0/O, 1/I/L, 5/S, 2/Z, 8/B (both sides of each group go, so there is
never a right one to guess), and U (read as V); minus the vowels A and E as well (I, O and
U are already out), so random codes cannot spell words. A customer who mistypes a
look-alike gets "not found" rather than someone else's code.

Format. ``<PREFIX>-<RANDOM>``: the marketer's prefix (``[A-Z0-9]`` groups joined by
single hyphens, at most 20 characters) then one hyphen and the random part. One group, no
inner hyphens, so a customer copying the code has a single separator to keep.

Typed codes (`canonical_code`). Whatever reaches us, a customer's typing, a storefront's
form, a campaign file, is read as the code a person meant. Unicode NFKC first: it turns
the full-width letters, digits and hyphen-minus a Japanese IME types (U+FF01-U+FF5E, so
full-width WELCOME-500 is WELCOME-500) into ASCII, as it does the small hyphen-minus, the
small and vertical dash forms and the super- and subscript minus. Then the dashes left,
hyphen, non-breaking hyphen, figure, en and em dash, horizontal bar (U+2010-U+2015) and
the minus sign (U+2212), become ``-``. The prolonged sound mark (U+30FC, and the half-width
U+FF70 that NFKC folds into it) is a letter, not a dash: after a kana it lengthens the
vowel. But it is what the ``-`` key gives in an IME's kana mode, so between two ASCII
letters or digits, where it cannot lengthen anything, it is read as the hyphen; anywhere
else it stays, and the code is refused. Other dash-like characters are not what people
type for a hyphen: the wave dash (U+301C) is the IME's tilde, the soft hyphen is
invisible, the two- and three-em dashes are typography. Case is folded on ASCII letters
only, to upper-case, since every code is ``[A-Z0-9-]``: `str.casefold` and `str.upper`
turn the sharp s (U+00DF) into "ss", and `str.upper` the dotless i (U+0131) into "I",
another string rather than the same code in another case, which would let a non-code
pass as one.

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

Storage is `functions.campaigns.code_pool`; this module never touches AWS.
"""

from __future__ import annotations

import math
import random
import re
import secrets
import string
import unicodedata
from typing import Final

from functions.core.errors import BadRequest

__all__ = [
    "ALPHABET",
    "ASSUMED_EXISTING",
    "MAX_COLLISION_PROBABILITY",
    "MIN_RANDOM_LENGTH",
    "SYSTEM_RANDOM",
    "InvalidCode",
    "canonical_code",
    "code_length",
    "collision_probability",
    "generate_codes",
    "normalise_prefix",
    "parse_typed_code",
    "split_code",
]

ALPHABET: Final = "34679CDFGHJKMNPQRTVWXY"
MIN_RANDOM_LENGTH: Final = 8
MAX_COLLISION_PROBABILITY: Final = 1e-6
ASSUMED_EXISTING: Final = 1_000_000
MAX_PREFIX_LENGTH: Final = 20
# Far above any generated code (20 + 1 + 13), far below DynamoDB's 2 KB key limit.
MAX_CODE_LENGTH: Final = 64

_TYPED_CODE: Final = re.compile(r"[A-Z0-9-]+", re.ASCII)
# What is left of the dashes once NFKC has folded their compatibility forms (see above).
_DASHES: Final = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))
_PROLONGED_SOUND_AS_HYPHEN: Final = re.compile(r"(?<=[A-Za-z0-9])\u30fc(?=[A-Za-z0-9])")
# Only ASCII letters change case (see above).
_ASCII_UPPER: Final = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_PREFIX: Final = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)*", re.ASCII)
_GENERATED: Final = re.compile(rf"(?P<prefix>.+)-(?P<random>[{ALPHABET}]+)", re.ASCII)

# Codes are bearer tokens: drawn from the system CSPRNG unless a test seeds its own.
SYSTEM_RANDOM = secrets.SystemRandom()


class InvalidCode(BadRequest):
    """A typed code that cannot be one of ours: empty, too long, or a stray character."""

    def __init__(self, text: str) -> None:
        super().__init__(
            "invalid_code",
            "A code is letters, digits and hyphens only.",
            {"code": text[:MAX_CODE_LENGTH]},
        )
        self.args = (text,)


def canonical_code(code: str) -> str:
    """The form a code is stored, keyed and compared in: NFKC, dashes as ``-``, trimmed
    and ASCII letters upper-case (the module's "Typed codes"). No check: what it cannot
    make a code of stays as it is, for `parse_typed_code` to refuse."""
    if code.isascii():
        # Every code we make, and nearly every one typed: NFKC leaves ASCII as it is, and
        # on ASCII str.upper changes the letters only.
        return code.strip().upper()
    text = unicodedata.normalize("NFKC", code).strip().translate(_DASHES)
    return _PROLONGED_SOUND_AS_HYPHEN.sub("-", text).translate(_ASCII_UPPER)


def parse_typed_code(text: str) -> str:
    """A code as a customer, a storefront or a file wrote it, in `canonical_code` form.

    Raises `InvalidCode` (400 ``invalid_code``) unless that form is ``[A-Z0-9-]`` only, so
    a garbage string is refused at the edge instead of becoming a key lookup.
    """
    code = canonical_code(text)
    if len(code) > MAX_CODE_LENGTH or not _TYPED_CODE.fullmatch(code):
        raise InvalidCode(text)
    return code


def normalise_prefix(prefix: str) -> str:
    """A marketer's code prefix, upper-case; ValueError unless ``[A-Z0-9]`` groups joined by
    single hyphens, at most 20 characters (a hyphen at either end would look like the
    separator before the random part)."""
    value = canonical_code(prefix)
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
    rng: random.Random = SYSTEM_RANDOM,
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
