"""ICCID helpers for the simulator: Luhn check digits, shape test and unique generators.

The simulator keeps its own copy of these rules on purpose: it must not share parsing or
validation code with the provider clients or the SQL models, so that a bug in one of them shows
up as a difference against the simulator's ground truth instead of hiding in both.
"""

from __future__ import annotations

import random
import re

SHAPE = re.compile(r"^89\d{16,18}$")


def luhn_digit(payload: str) -> str:
    """The Luhn check digit to append to ``payload`` (digits only)."""
    total = 0
    for position, char in enumerate(reversed(payload)):
        digit = ord(char) - 48
        if position % 2 == 0:  # doubled: these stand right of the check digit once it is added
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    return number.isdigit() and len(number) > 1 and luhn_digit(number[:-1]) == number[-1]


def shape_ok(value: str) -> bool:
    """True when ``value`` has the ICCID shape the reconciliation rules accept."""
    return SHAPE.fullmatch(value) is not None


def break_luhn(iccid: str) -> str:
    """The same ICCID with a wrong check digit (shape kept)."""
    last = int(iccid[-1])
    return iccid[:-1] + str((last + 3) % 10)


class IccidFactory:
    """Hands out unique, Luhn-valid ICCIDs from a few issuer prefixes.

    Serial numbers climb by small random steps per prefix, so no set of issued numbers has to be
    consulted: two calls can never produce the same ICCID.
    """

    def __init__(self, rng: random.Random, prefixes: list[tuple[str, int]]) -> None:
        # prefixes: (issuer prefix starting with 89, total length 19 or 20)
        self._rng = rng
        self._prefixes = prefixes
        self._serials = [rng.randrange(10_000, 90_000) for _ in prefixes]

    def next(self) -> str:
        index = self._rng.randrange(len(self._prefixes))
        prefix, length = self._prefixes[index]
        self._serials[index] += self._rng.randint(1, 9)
        width = length - len(prefix) - 1
        payload = prefix + str(self._serials[index]).zfill(width)
        return payload + luhn_digit(payload)


ESIMTRADE_PREFIXES = [("8948010000", 19), ("89852240810", 20), ("8934076500", 19)]
PRESSONE_PREFIXES = [("8944465400", 19), ("89010030001", 20), ("8935201102", 19)]
SPARE_PREFIXES = [("8972050000", 19), ("89460100207", 20)]


def malformed_variants(iccid: str) -> list[tuple[str, str]]:
    """Ways a reseller's records spoil an ICCID so that it fails the shape test.

    Returns (value, description) pairs; every value fails ``shape_ok``.
    """
    variants = [
        (iccid[:17], "truncated to 17 digits"),
        (iccid + "07" if len(iccid) == 19 else iccid + "3", "21 digits (extra digits appended)"),
        ("98" + iccid[2:], "starts with 98 instead of 89"),
        (iccid[:6] + "O" + iccid[7:], "letter O typed instead of a zero"),
        ("'" + iccid, "spreadsheet apostrophe kept in front"),
    ]
    for value, _ in variants:
        if shape_ok(value):  # pragma: no cover - guards the list above
            raise AssertionError(f"variant {value!r} unexpectedly has a valid shape")
    return variants
