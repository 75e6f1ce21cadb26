"""Severstal class id -> project class id.

Text form: `1:1,2:0,3:2,4:3` (Severstal id:project id). Project id 0 drops a Severstal class on
purpose; a Severstal id the map does not name is an error. Project ids must be 1..C with no gap,
because model output column c is project class c + 1 (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import DataError

DROPPED = 0

# The paper's three classes (Konovalenko et al., Table 1), by project id.
DEFAULT_NAMES = {1: "rolled-in scale", 2: "scratches", 3: "rolling films"}


def class_name(project_id: int) -> str:
    """Default name of a project class: the paper's names for 1..3, `class N` beyond."""
    return DEFAULT_NAMES.get(project_id, f"class {project_id}")


def class_names(project_ids) -> list[str]:
    """Default names of several project classes, in the given order."""
    return [class_name(int(i)) for i in project_ids]


@dataclass(frozen=True)
class ClassMap:
    """Maps Severstal class ids to project class ids (0 = dropped)."""

    mapping: dict[int, int]

    def __post_init__(self) -> None:
        kept = sorted({p for p in self.mapping.values() if p != DROPPED})
        if any(p < 0 for p in self.mapping.values()):
            raise DataError(f"class map {self.to_text()}: project ids must be >= 0")
        if kept != list(range(1, len(kept) + 1)):
            raise DataError(
                f"class map {self.to_text()}: project ids must be 1..C without gaps, got {kept}"
            )

    @classmethod
    def parse(cls, text: str) -> ClassMap:
        """Parse `severstal:project` pairs separated by commas, e.g. `1:1,2:0,3:2,4:3`."""
        mapping: dict[int, int] = {}
        for item in (part.strip() for part in text.split(",")):
            source, sep, target = item.partition(":")
            if not sep or not source.strip().isdigit() or not target.strip().isdigit():
                raise DataError(f"class map '{text}': '{item}' is not 'severstal_id:project_id'")
            if int(source) in mapping:
                raise DataError(f"class map '{text}': Severstal class {int(source)} given twice")
            mapping[int(source)] = int(target)
        return cls(mapping)

    @classmethod
    def identity(cls, data_ids) -> ClassMap:
        """Identity over 1..max(data_ids), so project ids have no gap."""
        top = max((int(i) for i in data_ids), default=0)
        return cls({i: i for i in range(1, top + 1)})

    def to_project(self, severstal_id: int) -> int:
        """Project id of a Severstal class id (0 when dropped); DataError if the map lacks it."""
        try:
            return self.mapping[int(severstal_id)]
        except KeyError:
            raise DataError(
                f"Severstal class {severstal_id} is not in the class map {self.to_text()}"
            ) from None

    @property
    def project_ids(self) -> list[int]:
        """Sorted project class ids (1..C)."""
        return sorted({p for p in self.mapping.values() if p != DROPPED})

    @property
    def num_classes(self) -> int:
        return len(self.project_ids)

    def names(self) -> list[str]:
        """Default names of the project classes, in id order."""
        return class_names(self.project_ids)

    def to_text(self) -> str:
        return ",".join(f"{s}:{p}" for s, p in sorted(self.mapping.items()))

    def __str__(self) -> str:
        return self.to_text()
