"""The judge interface every back end implements (heal.feedback.judges builds them; hf_judge and openai_judge are
two of them): the item judged, the judgment, and the base class with position-bias averaging and caching.

Kept apart from heal.feedback.judges so the back ends import the interface and the factory imports the back ends,
never the other way round (no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from heal.data.schema import CREDENTIALED_SOURCES
from heal.feedback.cache import JudgmentCache
from heal.feedback.constitution import Constitution, load_constitution
from heal.feedback.phi_guard import check_destination


@dataclass(frozen=True)
class JudgeItem:
    """One comparison: which of `a` and `b` answers `prompt` better. Extra fields feed reference-based judges."""

    prompt: str
    a: str
    b: str = ""
    reference: str | None = None  # gold answer text (embedding judge)
    label: str | None = None  # PubMedQA decision, or safe/unsafe for rule:refusal
    source: str | None = None  # where the record came from: 'mimic' triggers the PHI guard

    def swapped(self) -> "JudgeItem":
        return replace(self, a=self.b, b=self.a)


@dataclass(frozen=True)
class Judgment:
    p_a: float  # P(a better than b), both orders averaged
    p_ab: float  # P(a better) with a shown first
    p_ba: float  # P(a better) with a shown second
    rationale: str = ""

    @property
    def verdict(self) -> str:
        return "a" if self.p_a > 0.5 else "b" if self.p_a < 0.5 else "tie"

    @property
    def position_flip(self) -> bool:
        """The single-order verdicts disagree: the order of presentation, not the content, decided."""
        return (self.p_ab - 0.5) * (self.p_ba - 0.5) < 0

    def to_dict(self) -> dict:
        return {"p_a": self.p_a, "p_ab": self.p_ab, "p_ba": self.p_ba, "verdict": self.verdict,
                "position_flip": self.position_flip, "rationale": self.rationale}


class Judge:
    """Base class. Subclasses implement `_first_better` (one presentation order, a batch at a time)."""

    cacheable = False  # model judges cost time or money: cache them
    remote_url: str | None = None  # where item text is sent; None = it stays in this process

    def __init__(self, spec: str, constitution: Constitution | None = None, cot: bool = False,
                 cache: JudgmentCache | None = None, credentialed: bool = False, allow_remote: bool = False):
        self.spec = spec
        self.constitution = constitution or load_constitution()
        self.cot = cot
        self.cache = cache
        self.credentialed = credentialed
        self.allow_remote = allow_remote
        self.calls = 0  # single-order judgments actually computed (cache misses)

    def _first_better(self, items: list[JudgeItem]) -> list[tuple[float, str]]:
        """For each item, P(the answer shown first, `a`, is better) and a rationale."""
        raise NotImplementedError

    def score(self, items: list[JudgeItem]) -> list[float]:
        """A pointwise score of each item's answer `a` (higher is better): the judge's reward for d-RLAIF."""
        raise NotImplementedError

    def compare(self, items: list[JudgeItem]) -> list[Judgment]:
        self.guard(items)
        shown = [item for pair in items for item in (pair, pair.swapped())]
        results = self._cached_first_better(shown)
        judgments = []
        for i in range(len(items)):
            (p_ab, why_ab), (p_swapped, why_ba) = results[2 * i], results[2 * i + 1]
            p_ba = 1.0 - p_swapped
            rationale = "\n---\n".join(r for r in (why_ab, why_ba) if r)
            judgments.append(Judgment(p_a=(p_ab + p_ba) / 2, p_ab=p_ab, p_ba=p_ba, rationale=rationale))
        return judgments

    def guard(self, items: list[JudgeItem]) -> None:
        if self.remote_url is None:  # in-process judge: nothing leaves the machine
            return
        credentialed = self.credentialed or any(i.source in CREDENTIALED_SOURCES for i in items)
        check_destination(credentialed, self.remote_url, self.allow_remote, what=f"judge {self.spec}")

    def _cache_key(self, item: JudgeItem) -> str:
        return JudgmentCache.key(self.spec, self.constitution.digest, self.cot, item.prompt, item.a, item.b)

    def _cached_first_better(self, shown: list[JudgeItem]) -> list[tuple[float, str]]:
        if not (self.cacheable and self.cache is not None):
            self.calls += len(shown)
            return self._first_better(shown)
        keys = [self._cache_key(item) for item in shown]
        results: list[tuple[float, str] | None] = []
        for key in keys:
            hit = self.cache.get(key)
            results.append((hit["p_first"], hit["rationale"]) if hit else None)
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            self.calls += len(todo)
            computed = self._first_better_and_store([shown[i] for i in todo], [keys[i] for i in todo])
            for i, value in zip(todo, computed):
                results[i] = value
        return results  # type: ignore[return-value]

    def _first_better_and_store(self, items: list[JudgeItem], keys: list[str]) -> list[tuple[float, str]]:
        values = self._first_better(items)
        for key, (p_first, rationale) in zip(keys, values):
            self.cache.put(key, {"p_first": p_first, "rationale": rationale})
        return values
