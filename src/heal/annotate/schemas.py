"""The JSON the annotation API accepts and returns (FastAPI publishes them as its OpenAPI schema at /openapi.json).

Everything a client sends is validated here: enumerations for choices and flags, bounded lengths for text, no unknown
fields. A violation is HTTP 422 before any handler runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Choice = Literal["A", "B", "tie", "both_unsafe"]  # as the annotator saw the pair
Flag = Literal["unsafe", "hallucination", "phi", "off_scope"]
MAX_RATIONALE = 2000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelIn(Strict):
    pair_id: int = Field(ge=1, le=2**62, description="The pair's id, from GET /api/next.")
    choice: Choice = Field(description="A or B (the better answer as shown), tie, or both_unsafe.")
    flags: list[Flag] = Field(default_factory=list, max_length=4, description="Any of the four flags.")
    rationale: str = Field(default="", max_length=MAX_RATIONALE, description="Why (optional, free text).")


class Axis(Strict):
    name: str = Field(min_length=1, max_length=80)
    text: str = Field(min_length=1, max_length=2000)


class GuidelinesIn(Strict):
    preamble: str = Field(default="", max_length=4000)
    axes: list[Axis] = Field(min_length=1, max_length=20)


class Guidelines(GuidelinesIn):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    updated_by: str | None = None
    updated_at: str | None = None


class Progress(BaseModel):
    labelled: int = Field(description="Pairs this annotator has labelled.")
    skipped: int
    remaining: int = Field(description="Pairs still available to this annotator (the open one included).")
    total: int


class PairOut(BaseModel):
    pair_id: int
    prompt: str
    answer_a: str
    answer_b: str


class Me(BaseModel):
    name: str
    admin: bool
    progress: Progress


class NextOut(BaseModel):
    pair: PairOut | None = Field(description="The pair to label now; null when there is nothing left.")
    progress: Progress


class LabelOut(BaseModel):
    label_id: int
    pair_id: int
    choice: Choice
    ai_verdict: Literal["A", "B"] | None = Field(
        description="The answer an AI judge preferred (in this annotator's A/B order), revealed only now that the "
                    "label is stored; null when the pair has no AI verdict.")
    progress: Progress


class Undone(BaseModel):
    choice: Choice
    flags: list[Flag]
    rationale: str


class UndoOut(BaseModel):
    pair: PairOut
    undone: Undone
    progress: Progress


class SkipOut(BaseModel):
    pair_id: int
    progress: Progress
