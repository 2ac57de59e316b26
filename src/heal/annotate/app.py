"""The annotation web app: an app factory, bearer-token authentication, security headers, the static page.

    from heal.annotate.app import create_app
    app = create_app(Store("labels.sqlite"), labels_per_pair=2)     # then uvicorn.run(app, host="127.0.0.1")

Every /api route needs `Authorization: Bearer <token>` (from `heal annotate add-annotator`); only the page itself
(/, /static/…) and the API's description (/openapi.json, /docs) are public, and they hold no data. Nothing here logs
request or response bodies: prompts, answers and rationales may be clinical text.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from heal.annotate.store import Refused, Store

STATIC = Path(__file__).with_name("static")
# The page loads only its own script and style; no inline script, so injected markup could not run even if it got in.
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


def create_app(store: Store, labels_per_pair: int = 2, reservation_minutes: float = 60.0) -> FastAPI:
    """The app over `store`; `labels_per_pair` annotators label each pair."""
    from heal.annotate import routes

    app = FastAPI(title="HEAL annotate", version="1",
                  description="Pairwise preference labelling for RLHF. Sign in with a token from `heal annotate "
                              "add-annotator`; see docs/annotate.md for curl examples.")
    app.state.store = store
    app.state.labels_per_pair = labels_per_pair
    app.state.reservation_s = reservation_minutes * 60
    store.set_setting("labels_per_pair", str(labels_per_pair))
    for router in (routes.me, routes.tasks, routes.guidelines, routes.admin):
        app.include_router(router, prefix="/api")

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused):
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"  # clinical text stays out of browser caches
        elif not request.url.path.startswith(("/docs", "/redoc")):  # Swagger UI loads its own scripts
            response.headers["Content-Security-Policy"] = CSP
        return response

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
