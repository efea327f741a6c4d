"""A visitor's finished run as the page keeps it: the library's plan, each item's
decisions (a person's overrides in) and result, and the ids the page names them by."""

from __future__ import annotations

import dataclasses

from gfrnet_tf.people import Decision
from gfrnet_tf.restoration import library

# The reason of a face a person chose to keep as it was.
EXCLUDED = "you chose to keep it"


@dataclasses.dataclass
class ItemState:
    """One library item of a visitor's run: the library's decisions for it, the ones it
    was last restored with (a person's overrides in), and its result."""

    item: library.LibraryItem
    problem: str
    planned: list[Decision]
    decisions: list[Decision]
    result: library.PhotoResult | None = None


@dataclasses.dataclass
class Run:
    """A visitor's finished restoration: the library's plan and each item's state (by the
    page's item id); `faces` maps the page's face ids to `(item id, face index)`;
    `guide_problems` are the guide photos the library could not use, and why."""

    plan: library.LibraryPlan
    items: dict[str, ItemState]
    faces: dict[str, tuple[str, int]]
    guide_problems: tuple[tuple[str, str], ...] = ()  # (file, problem): guides not used
    guides: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        """Every guide's id (`g1`, `g2`, ...), in the plan's order of people."""
        for person in self.plan.people:
            for guide in person.guides:
                self.guides.setdefault(guide.key, f"g{len(self.guides) + 1}")

    def guide_choices(self, state: ItemState) -> dict[str, tuple]:
        """`{guide id: (person, guide)}`: every guide of the people the item's faces were
        decided against (its album's), for a person to choose from."""
        people = self.plan.people_of.get(state.item.album, ())
        return {self.guides[g.key]: (person, g) for person in people for g in person.guides}
