"""The defect gallery's filter and paging over the defects kept in memory."""

from __future__ import annotations

from dataclasses import dataclass

from edge.console.state import DefectEntry


@dataclass(frozen=True)
class GalleryQuery:
    coil: str = ""
    class_name: str = ""
    min_score: float = 0.0
    page: int = 1

    @classmethod
    def from_params(cls, params) -> GalleryQuery:
        def number(key, kind, default, low, high):
            try:
                return min(max(kind(params.get(key, default)), low), high)
            except ValueError:
                return default

        return cls(coil=params.get("coil", ""), class_name=params.get("class", ""),
                   min_score=number("min_score", float, 0.0, 0.0, 1.0),
                   page=number("page", int, 1, 1, 1_000_000))

    def matches(self, entry: DefectEntry) -> bool:
        return ((not self.coil or entry.coil_id == self.coil)
                and (not self.class_name or entry.class_name == self.class_name)
                and entry.score >= self.min_score)


@dataclass(frozen=True)
class GalleryPage:
    entries: list[DefectEntry]
    number: int
    pages: int
    total: int
    classes: list[str]


def page_of(entries: list[DefectEntry], query: GalleryQuery, size: int) -> GalleryPage:
    classes = sorted({e.class_name for e in entries})
    matching = [e for e in entries if query.matches(e)]
    pages = max(1, -(-len(matching) // size))
    number = min(query.page, pages)
    start = (number - 1) * size
    return GalleryPage(matching[start:start + size], number, pages, len(matching), classes)
