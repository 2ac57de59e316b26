"""The annotation API's dependencies: who is calling (bearer token → annotator) and whether they are an admin.

Apart from the app factory (heal.annotate.app) so the routers import them without importing the factory, which
imports the routers (no import cycle).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from heal.annotate.store import Annotator

_bearer = HTTPBearer(auto_error=False, description="The annotator's token from `heal annotate add-annotator`.")


def current_annotator(request: Request,
                      credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Annotator:
    if credentials is None or not 8 <= len(credentials.credentials) <= 200:
        raise HTTPException(401, "sign in: send your token as 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    annotator = request.app.state.store.annotator_for(credentials.credentials)
    if annotator is None:
        raise HTTPException(401, "unknown token; ask your admin for a new one (heal annotate add-annotator)",
                            headers={"WWW-Authenticate": "Bearer"})
    return annotator


def admin_annotator(who: Annotated[Annotator, Depends(current_annotator)]) -> Annotator:
    if not who.is_admin:
        raise HTTPException(403, "admins only")
    return who


CurrentAnnotator = Annotated[Annotator, Depends(current_annotator)]
AdminAnnotator = Annotated[Annotator, Depends(admin_annotator)]
