"""The console's web application (Starlette): pages, a JSON API, Server-Sent Events, images.

Read-only: every route is a GET. Pages are Jinja2 templates (autoescaped) with a little plain
JavaScript from `static/`; nothing is loaded from outside the package.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from edge.console.archive import Archive, media_type
from edge.console.auth import ConsoleAuth
from edge.console.gallery import GalleryQuery, page_of
from edge.console.state import ConsoleState

HERE = Path(__file__).parent
_SSE_POLL_S = 0.25
_SSE_KEEPALIVE_S = 5.0  # also how soon a closed client's loop ends


def build_app(state: ConsoleState, archive: Archive, line: str, page_size: int,
              token: str | None = None, basic: tuple[str, str] | None = None) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals["line"] = line

    def render(request: Request, name: str, status_code: int = 200, **context):
        context.setdefault("cameras", state.cameras())
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    async def live(request: Request):
        return render(request, "live.html", view="live")

    async def commissioning(request: Request):
        cameras = state.cameras()
        camera = request.query_params.get("camera") or (cameras[0] if cameras else "")
        return render(request, "commissioning.html", view="commissioning", camera=camera)

    async def coils(request: Request):
        current = sorted({c["stats"]["coil_id"] for c in state.snapshot()["cameras"].values()
                          if c["stats"].get("coil_id")})
        return render(request, "coils.html", view="coils", current=current,
                      reports=state.coil_reports())

    async def coil(request: Request):
        coil_id = request.path_params["coil_id"]
        if coil_id not in state.coil_ids():
            raise HTTPException(404, f"no coil {coil_id!r} in the console's memory")
        reports = [dict(r, _map_ok=bool(r.get("map")) and archive.resolve(r["map"]) is not None)
                   for r in state.reports_of(coil_id)]  # copies: the state's stay as received
        return render(request, "coil.html", view="coils", coil_id=coil_id, reports=reports)

    async def coil_defects(request: Request):
        coil_id = request.path_params["coil_id"]
        if coil_id not in state.coil_ids():
            raise HTTPException(404, f"no coil {coil_id!r}")
        return JSONResponse(map_points(state.coil_events(coil_id)))

    async def defects(request: Request):
        query = GalleryQuery.from_params(request.query_params)
        page = page_of(state.defect_entries(), query, page_size)
        return render(request, "defects.html", view="defects", page=page, query=query,
                      coil_ids=state.coil_ids())

    async def defect(request: Request):
        event = state.event(request.path_params["event_id"])
        defect_id = request.path_params["defect_id"]
        found = [d for i, d in enumerate((event or {}).get("defects", ()))
                 if d.get("defect_id", i) == defect_id]  # v1 events: the defect's index
        if not found:
            raise HTTPException(404, "no such defect in the console's memory")
        image = found[0].get("image")
        return render(request, "defect.html", view="defects", event=event, defect=found[0],
                      image_ok=bool(image) and archive.resolve(image) is not None,
                      frame=event.get("frame_image"))

    async def archive_file(request: Request):
        relative = request.path_params["path"]
        data = await run_in_threadpool(archive.read, relative)  # a whole frame can be MBs
        if data is None:
            raise HTTPException(404, "not in the archive")
        return Response(data, media_type=media_type(Path(relative)),
                        headers={"Cache-Control": "max-age=3600"})

    async def latest_image(request: Request):
        image = archive.latest_jpeg(request.path_params["camera"])
        if image is None:
            raise HTTPException(404, "no latest frame for that camera")
        return Response(image, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def latest_meta(request: Request):
        meta = archive.latest_meta(request.path_params["camera"])
        if meta is None:
            raise HTTPException(404, "no latest frame for that camera")
        return JSONResponse(meta, headers={"Cache-Control": "no-store"})

    async def api_state(request: Request):
        return JSONResponse(state.snapshot())

    async def stream(request: Request):
        async def events():
            seen, quiet_since = -1, time.monotonic()
            while not await request.is_disconnected():
                if state.version != seen:
                    snapshot = state.snapshot()
                    seen, quiet_since = snapshot["version"], time.monotonic()
                    yield f"data: {json.dumps(snapshot, allow_nan=False)}\n\n"
                elif time.monotonic() - quiet_since > _SSE_KEEPALIVE_S:
                    quiet_since = time.monotonic()
                    yield ": keepalive\n\n"
                # polling a counter: no thread per client, at most _SSE_POLL_S behind
                await asyncio.sleep(_SSE_POLL_S)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def favicon(request: Request):
        # pages carry an empty icon; a browser opening a JSON or image URL directly asks here
        return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})

    async def not_found(request: Request, exc: HTTPException):
        if request.url.path.startswith(("/api/", "/archive/", "/latest/")):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        return render(request, "error.html", status_code=exc.status_code, view="",
                      status=exc.status_code, detail=exc.detail)

    routes = [
        Route("/", live),
        Route("/commissioning", commissioning),
        Route("/coils", coils),
        Route("/coils/{coil_id:path}", coil),
        Route("/api/coils/{coil_id:path}", coil_defects),
        Route("/defects", defects),
        Route("/defects/{event_id}/{defect_id:int}", defect),
        Route("/archive/{path:path}", archive_file),
        Route("/latest/{camera}.jpg", latest_image),
        Route("/api/latest/{camera}", latest_meta),
        Route("/api/state", api_state),
        Route("/api/stream", stream),
        Route("/favicon.ico", favicon),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [Middleware(ConsoleAuth, token=token, basic=basic)] if token or basic else []
    return Starlette(routes=routes, middleware=middleware,
                     exception_handlers={HTTPException: not_found})


def map_points(events: list[dict]) -> list[dict]:
    """The coil map's points: one per defect, in strip coordinates (v2 events only)."""
    points = []
    for event in events:
        for d in event["defects"]:
            if "md_m" in d and "cd_mm" in d:
                points.append({"camera": event["camera"], "side": event.get("side", "top"),
                               "class_id": d["class_id"], "class_name": d["class_name"],
                               "score": d["score"], "md_m": d["md_m"], "cd_mm": d["cd_mm"]})
    return points
