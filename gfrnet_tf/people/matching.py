"""Which person a face shows: the nearest person by identity, if near enough and unambiguous.

A degraded face embeds worse than a clean one (docs/DESIGN.md, 2026-12-06: after a 3x
degradation different people came as close as 0.47 in dlib's distance, under its 0.6
same-person threshold), so a fixed threshold alone would hand strangers' guides out. A
face is matched to a person only when its distance to that person's nearest guide is at
most `max_distance` AND every other person is at least `min_ratio` times as far (the
ratio test); otherwise it is nobody's and is left as it is. The values are chosen from
measured same-person / different-person distributions of degraded faces (docs/PEOPLE.md).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np


def euclidean(a, b) -> float:
    """dlib's identity distance (same person below 0.6 for clean faces)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


@dataclasses.dataclass(frozen=True)
class AcceptanceRule:
    """When a face may take a person's guide (distances in the embedder's own unit)."""

    max_distance: float
    min_ratio: float

    def __post_init__(self):
        if not (self.max_distance > 0 and self.min_ratio >= 1):
            raise ValueError(f"need max_distance > 0 and min_ratio >= 1, got {self}")


@dataclasses.dataclass(frozen=True)
class Match:
    """The person a face was matched to (`index` into the people, or None) and why.

    `distance`: to the nearest person's nearest guide; `runner_up`: to the next person's
    (inf with one person); `reason`: empty when matched, else one line for `faces.csv`.
    """

    index: int | None
    distance: float
    runner_up: float
    reason: str = ""


NO_PERSON = "no guide of this person"


def match_person(
    embedding,
    people_embeddings: Sequence[Sequence],
    rule: AcceptanceRule,
    names: Sequence[str] = (),
    distance: Callable = euclidean,
) -> Match:
    """Matches one face's `embedding` against each person's guide embeddings.

    `people_embeddings[p]` lists person p's guide embeddings (a person's distance is its
    nearest guide's); `names` only word the reason of an ambiguous face.
    """
    nearest = [
        min((distance(embedding, guide) for guide in guides), default=np.inf)
        for guides in people_embeddings
    ]
    if not nearest:
        return Match(None, np.inf, np.inf, NO_PERSON)
    order = np.argsort(nearest, kind="stable")
    best = int(order[0])
    first = float(nearest[best])
    second = float(nearest[order[1]]) if len(order) > 1 else np.inf
    if first > rule.max_distance:
        return Match(None, first, second, NO_PERSON)
    if second < rule.min_ratio * first:
        other = int(order[1])
        who = f"{names[best]} or {names[other]}" if names else "two people"
        return Match(None, first, second, f"could be {who}")
    return Match(best, first, second)
