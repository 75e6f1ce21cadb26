"""The archive's part of a coil: each defect's image, and the coil map when the coil ends.

`CoilArchive` is what the inspection (edge.defects.inspection) hands its defects to; it queues
the images on the `ArchiveWriter` (never blocking), keeps the open coil's defects for its map
(those seen since the daemon started, at most `MAP_MAX`), and at the coil's end queues the map,
drawn and encoded on the writer's thread.

A coil's folder is named by its id and start (`files.coil_folder`). Frames acquired before the
first L2 message belong to the coil that message names (the ledger adopts them): their images
went to `no-coil_<start>`, and `follow` has the writer move them into the named folder once the
name is known, leaving the old name as a link for the events already sent.
"""

from __future__ import annotations

from edge.archive.coilmap import MapDefect, encode_png, render_coil_map
from edge.archive.files import coil_folder, frame_image_name
from edge.archive.writer import ArchiveWriter, DefectCrop
from edge.config import GeometryConfig
from edge.observe.stats import utc_iso
from edge.sources.base import Frame

MAP_MAX = 100_000  # defects drawn on one coil's map at most
MAP_NAME = "coil-map.png"


class CoilArchive:
    def __init__(self, writer: ArchiveWriter, geometry: GeometryConfig,
                 class_names: list[str]) -> None:
        self.writer = writer
        self.geometry = geometry
        self.class_names = list(class_names)
        self._map: list[MapDefect] = []
        self._frame_width = 1
        self._coil: tuple[str | None, float] | None = None  # (coil id, start) of the open coil
        self._folder = ""  # its folder

    def follow(self, coil_id: str | None, started: float) -> str:
        """The coil's folder; when the coil of this start got its name only now, the writer
        moves what went to its unnamed folder (called for every frame: a tuple compare; the
        folder is named, and a move queued, only when the coil id or start changes)."""
        if self._coil == (coil_id, started):
            return self._folder
        folder = coil_folder(coil_id, started)
        if self._coil is not None and self._coil[1] == started and self._folder != folder:
            self.writer.move_folder(self._folder, folder)
        self._coil, self._folder = (coil_id, started), folder
        return folder

    def defect_images(self, frame: Frame, coil_id: str | None, started: float,
                      defects: list[dict]) -> str | None:
        """Queue the crops; each defect queued gets its `image` (relative to the archive).
        Returns the whole frame's path when archive.whole_frame keeps it too, else None."""
        self._frame_width = frame.image.shape[1]
        room = MAP_MAX - len(self._map)
        self._map.extend(MapDefect.from_event(d) for d in defects[:max(room, 0)])
        crops = [DefectCrop(d["defect_id"], tuple(d["box_px"])) for d in defects]
        folder = self.follow(coil_id, started)
        record = (frame_record(frame, coil_id, defects) if self.writer.config.whole_frame
                  else None)
        paths = self.writer.submit(frame.image, folder, frame.frame_id, crops, record)
        for defect in defects:
            if defect["defect_id"] in paths:
                defect["image"] = paths[defect["defect_id"]]
        if not (paths and self.writer.config.whole_frame):
            return None
        return f"{folder}/{frame_image_name(frame.frame_id)}"

    def coil_map(self, coil_id: str | None, started: float, report: dict) -> str | None:
        """Queue the ended coil's map; its path relative to the archive, or None."""
        defects, self._map = self._map, []
        if report["length_m"] <= 0:
            return None
        g = self.geometry
        cd_range = (g.cd_offset_mm, g.cd_offset_mm + self._frame_width * g.mm_per_px_cd)
        title = f"coil {report['coil_id'] or '-'} ({report['side']}), {report['length_m']:.1f} m"
        names, length, width = self.class_names, report["length_m"], self.writer.config.map_width_px
        distinct = dict(report["defects"])

        def draw() -> bytes:
            return encode_png(render_coil_map(defects, names, length, cd_range, title, width,
                                              counts=distinct))

        folder = self.follow(coil_id, started)
        self._coil = None  # the coil ended: the next one is named afresh
        return self.writer.submit_file(f"{folder}/{MAP_NAME}", draw)


FRAME_RECORD_SCHEMA = "steel-inspect/archive-frame/v1"
RECORD_KEYS = ("defect_id", "class_id", "class_name", "score", "box_px")


def frame_record(frame: Frame, coil_id: str | None, defects: list[dict]) -> dict:
    """What the daemon decided on a whole frame it keeps: the JSON `archive export` reads."""
    height, width = frame.image.shape[:2]
    return {
        "schema": FRAME_RECORD_SCHEMA,
        "frame_id": frame.frame_id,
        "ts": utc_iso(frame.timestamp),
        "coil_id": coil_id,
        "width": int(width),
        "height": int(height),
        "defects": [{k: d[k] for k in RECORD_KEYS} for d in defects],
    }
