"""The org tree (city → district → town/street → village/community → grid) and departments."""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from pydantic import Field
from sharpeye.config.base import Identifier, StrictModel


class Level(StrEnum):
    """Levels of the governance hierarchy, top to bottom."""

    city = "city"
    district = "district"
    town = "town"
    village = "village"
    grid = "grid"

    @property
    def depth(self) -> int:
        return _DEPTH[self]


_DEPTH = {Level.city: 0, Level.district: 1, Level.town: 2, Level.village: 3, Level.grid: 4}


class OrgUnit(StrictModel):
    """One unit of the org tree with the units below it."""

    id: Identifier = Field(description="Stable id of the unit.")
    name: str = Field(min_length=1, description="Display name, e.g. 'XX街道' or '第三网格'.")
    level: Level = Field(description="Level in the hierarchy; children must be at a lower level.")
    children: list[OrgUnit] = Field(default_factory=list, description="Units directly below this one.")

    def walk(self, parent: OrgUnit | None = None) -> Iterator[tuple[OrgUnit, OrgUnit | None]]:
        """Yield (unit, parent) for this unit and every unit below it, depth first."""
        yield self, parent
        for child in self.children:
            yield from child.walk(self)


class Department(StrictModel):
    """A department (职能部门) that handles cases, attached to the org unit it serves."""

    id: Identifier = Field(description="Stable id of the department.")
    name: str = Field(min_length=1, description="Display name, e.g. '街道综合执法队'.")
    unit: Identifier = Field(description="Id of the org unit this department belongs to (sets its level).")
    categories: list[str] = Field(default_factory=list, description="Case categories this department can handle.")
