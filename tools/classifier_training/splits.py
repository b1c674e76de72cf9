"""Deterministic stratified train / validation / test splits.

Each item goes to a split by its rank, within its stratum, in the order of SHA-256(seed + key): the first
`test_fraction` of each stratum is test, the next `validation_fraction` validation, the rest train. The same data
and seed give the same splits on any machine and in any file order; training never reads the test split, and
thresholds and calibration are chosen on validation only.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")

TRAIN, VALIDATION, TEST = "train", "validation", "test"


def stable_rank_key(seed: int, key: str) -> str:
    """The per-item sort key: hex SHA-256 of `"<seed>:<key>"`."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def stratified_split(
    items: Sequence[T],
    *,
    key: Callable[[T], str],
    stratum: Callable[[T], Hashable],
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[T]]:
    """Splits `items` into {"train", "validation", "test"}, stratified by `stratum`.

    Args:
        items: The items (their order does not matter).
        key: A stable identity of an item (for example its text); equal keys land in the same split only if they
            are in the same stratum, so deduplicate first.
        stratum: The stratum of an item (for example dataset, subject and label).
        validation_fraction: Share of each stratum for validation, in [0, 1).
        test_fraction: Share of each stratum for test, in [0, 1); the two together below 1.
        seed: Changes the assignment.

    Returns:
        The three lists, each sorted by rank key (deterministic).

    Raises:
        ValueError: the fractions are out of range.
    """
    if not (
        0 <= validation_fraction < 1 and 0 <= test_fraction < 1 and validation_fraction + test_fraction < 1
    ):
        raise ValueError(f"bad fractions: validation={validation_fraction}, test={test_fraction}")
    strata: dict[Hashable, list[tuple[str, T]]] = defaultdict(list)
    for item in items:
        strata[stratum(item)].append((stable_rank_key(seed, key(item)), item))
    splits: dict[str, list[tuple[str, T]]] = {TRAIN: [], VALIDATION: [], TEST: []}
    for members in strata.values():
        members.sort(key=lambda pair: pair[0])
        n_test = round(len(members) * test_fraction)
        n_validation = round(len(members) * validation_fraction)
        splits[TEST].extend(members[:n_test])
        splits[VALIDATION].extend(members[n_test : n_test + n_validation])
        splits[TRAIN].extend(members[n_test + n_validation :])
    return {
        name: [item for _, item in sorted(members, key=lambda pair: pair[0])]
        for name, members in splits.items()
    }
