"""The annotation API, one router per resource. The page uses exactly these routes; so can a script (docs/annotate.md).

    GET  /api/me                    who am I, and my progress
    GET  /api/next                  the pair to label now (the same one again until it is labelled or skipped)
    POST /api/labels                store a label; the AI judge's verdict, if any, comes back only now
    POST /api/pairs/{id}/skip       not this pair (it is not shown to me again)
    POST /api/undo                  withdraw my last label; the pair comes back to me
    GET  /api/guidelines            the guidelines shown beside the task
    PUT  /api/guidelines            edit them (admins)
    GET  /api/admin/stats           everyone's progress, inter-annotator and judge–human agreement (admins)

Handlers are plain functions: FastAPI runs them on its thread pool, each thread with its own SQLite connection.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from heal.annotate.deps import AdminAnnotator, CurrentAnnotator
from heal.annotate.schemas import (Guidelines, GuidelinesIn, LabelIn, LabelOut, Me, NextOut, Progress, SkipOut,
                                   UndoOut)
from heal.annotate.store import Annotator

me = APIRouter(tags=["me"])
tasks = APIRouter(tags=["labelling"])
guidelines = APIRouter(tags=["guidelines"])
admin = APIRouter(tags=["admin"])


def _progress(request: Request, who: Annotator) -> Progress:
    state = request.app.state
    return Progress(**state.store.progress(who, state.labels_per_pair, state.reservation_s))


@me.get("/me", response_model=Me, summary="Who am I (signs in: a wrong token is 401)")
def whoami(request: Request, who: CurrentAnnotator) -> Me:
    return Me(name=who.name, admin=who.is_admin, progress=_progress(request, who))


@tasks.get("/next", response_model=NextOut, summary="The pair to label now")
def next_pair(request: Request, who: CurrentAnnotator) -> NextOut:
    state = request.app.state
    pair = state.store.next_pair(who, state.labels_per_pair, state.reservation_s)
    return NextOut(pair=pair, progress=_progress(request, who))


@tasks.post("/labels", response_model=LabelOut, summary="Submit a label (stored before this returns)")
def submit(request: Request, label: LabelIn, who: CurrentAnnotator) -> LabelOut:
    stored = request.app.state.store.submit(who, label.pair_id, label.choice, list(label.flags),
                                            label.rationale.strip())
    return LabelOut(**stored, progress=_progress(request, who))


@tasks.post("/pairs/{pair_id}/skip", response_model=SkipOut, summary="Skip a pair")
def skip(request: Request, who: CurrentAnnotator, pair_id: int = Path(ge=1, le=2**62)) -> SkipOut:
    request.app.state.store.skip(who, pair_id)
    return SkipOut(pair_id=pair_id, progress=_progress(request, who))


@tasks.post("/undo", response_model=UndoOut, summary="Undo my last label")
def undo(request: Request, who: CurrentAnnotator) -> UndoOut:
    result = request.app.state.store.undo(who)
    return UndoOut(**result, progress=_progress(request, who))


@guidelines.get("/guidelines", response_model=Guidelines, summary="The labelling guidelines")
def read_guidelines(request: Request, who: CurrentAnnotator) -> Guidelines:
    return Guidelines(**request.app.state.store.guidelines())


@guidelines.put("/guidelines", response_model=Guidelines, summary="Replace the guidelines (admins)")
def write_guidelines(request: Request, body: GuidelinesIn, who: AdminAnnotator) -> Guidelines:
    store = request.app.state.store
    current = store.guidelines()
    return Guidelines(**store.set_guidelines({"name": current.get("name"), **body.model_dump()}, who))


@admin.get("/admin/stats", summary="Progress and agreement (admins)")
def stats(request: Request, who: AdminAnnotator) -> dict:
    from heal.annotate.stats import summary

    return summary(request.app.state.store)
