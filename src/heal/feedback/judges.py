"""AI judges behind one interface: compare two answers (RLAIF labels) or score one (d-RLAIF rewards).

    judge = make_judge("hf:models/judge")                           # a local causal LM
    judge = make_judge("openai:gpt-4o-mini")                        # any OpenAI-compatible endpoint
    judge = make_judge("openai:qwen2.5-7b", base_url="http://localhost:8000/v1")   # vLLM / Ollama / llama.cpp
    judge = make_judge("embedding")                                 # similarity to the reference answer
    judge = make_judge("rule:pubmedqa")                             # decision matches the gold label
    judge = make_judge("safety:combined")                           # declines harmful / answers benign requests
    judgments = judge.compare([JudgeItem(prompt, answer_a, answer_b, reference=..., label=...)])

Position bias (Lee et al. 2023, "RLAIF"): every pair is judged in both orders and the two preferences are averaged,
    P(a ≻ b) = ½ · [P(first ≻ second | a, b) + (1 − P(first ≻ second | b, a))],
so a judge that always prefers the first answer ends up at ½ (a tie) rather than at a wrong verdict. A pair whose
two single-order verdicts disagree counts as a position flip.

Model judges (hf:, openai:) go through the judgment cache, so a rerun makes no new calls; network judges go through
the PHI guard before any request.
"""

from __future__ import annotations

import math

from heal.errors import HealError
from heal.feedback.base import Judge, JudgeItem, Judgment  # noqa: F401  (the interface, re-exported)
from heal.feedback.cache import JudgmentCache
from heal.feedback.constitution import Constitution, load_constitution

JUDGE_KINDS = ("hf", "openai", "embedding", "rule", "safety")
SAFETY_GRADERS = ("rules", "learned", "combined")
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class _ScoringJudge(Judge):
    """A judge that scores answers one at a time; its preference is a comparison of the two scores."""

    temperature = 0.0  # 0: a hard 1/0/½ preference; > 0: logistic in the score difference

    def _scores(self, items: list[JudgeItem]) -> list[float]:
        """`score`, each distinct (prompt, answer, label, reference) once per judge: comparing in both orders (and an
        answer that is in several pairs) would otherwise score the same text up to four times. Scores are
        deterministic, so remembering them changes no verdict."""
        memo = self.__dict__.setdefault("_memo", {})
        keys = [(i.prompt, i.a, i.label, i.reference) for i in items]
        todo = {k: i for k, i in zip(keys, items) if k not in memo}
        if todo:
            memo.update(zip(todo, self.score(list(todo.values()))))
        return [memo[k] for k in keys]

    def _first_better(self, items: list[JudgeItem]) -> list[tuple[float, str]]:
        firsts = self._scores(items)
        seconds = self._scores([item.swapped() for item in items])
        out = []
        for s1, s2 in zip(firsts, seconds):
            if self.temperature > 0:
                p = 1.0 / (1.0 + math.exp(-(s1 - s2) / self.temperature))
            else:
                p = 1.0 if s1 > s2 else 0.0 if s1 < s2 else 0.5
            out.append((p, f"scores {s1:.3f} vs {s2:.3f}"))
        return out


class PubMedQARuleJudge(_ScoringJudge):
    """rule:pubmedqa — 1 if the answer's decision (first yes/no/maybe) matches the gold label, else 0."""

    def score(self, items: list[JudgeItem]) -> list[float]:
        from heal.data.pubmedqa import parse_decision

        if any(not item.label for item in items):
            raise HealError("judge rule:pubmedqa needs the gold decision: records must have a 'label' column "
                            "(yes/no/maybe), as `heal prep --dataset pubmedqa` writes")
        return [float(parse_decision(item.a) == str(item.label).strip().lower()) for item in items]


class SafetyJudge(_ScoringJudge):
    """safety:<grader> — the red-team's four-outcome grader (heal.redteam.judging: rules, learned or combined) read
    under the constitution's safety and scope principles: a harmful prompt (label unsafe or none) should be declined,
    a benign one (label safe) answered, each outcome rewarded by the constitution's `outcome_scores`
    (heal.feedback.constitution.SAFETY_SCORES unless the file changes them). A non-answer (empty, degenerate,
    off-topic) earns nothing on a harmful prompt and is penalised on a benign one, so stopping at once or babbling
    cannot collect the safety reward. `rule:refusal` is `safety:rules`. The learned grader is MiniLM + logistic
    regression fitted on human labels, so `safety:combined` is the strongest judge that runs offline; an LLM judge
    (hf:, openai:) also weighs the constitution's accuracy, uncertainty and referral principles."""

    def __init__(self, spec: str, grader: str = "rules", **kwargs):
        super().__init__(spec, **kwargs)
        self.grader = grader

    def score(self, items: list[JudgeItem]) -> list[float]:
        from heal.redteam.judging import judge_outcomes

        outcomes = judge_outcomes([(item.prompt, item.a) for item in items], [self.grader])[self.grader]
        return [self.constitution.safety_score(outcome.label, str(item.label or "").strip().lower() == "safe")
                for item, outcome in zip(items, outcomes)]


class EmbeddingJudge(_ScoringJudge):
    """embedding[:<model>] — cosine similarity of the answer to the reference answer (sentence-transformers)."""

    temperature = 0.02  # similarity differences are small; this maps a 0.05 gap to P ≈ 0.92

    def __init__(self, spec: str, model_name: str | None = None, **kwargs):
        super().__init__(spec, **kwargs)
        self.model_name = model_name or DEFAULT_EMBEDDING_MODEL
        self._model = None

    def _load(self):
        if self._model is None:
            from heal.feedback.embeddings import load_sentence_model

            self._model = load_sentence_model(self.model_name)
        return self._model

    def score(self, items: list[JudgeItem]) -> list[float]:
        if any(not item.reference for item in items):
            raise HealError(f"judge {self.spec} needs a reference answer: records must have a 'reference' column")
        model = self._load()
        answers = model.encode([i.a for i in items], convert_to_tensor=True, normalize_embeddings=True)
        references = model.encode([i.reference for i in items], convert_to_tensor=True, normalize_embeddings=True)
        return (answers * references).sum(-1).tolist()


def parse_spec(spec: str) -> tuple[str, str | None]:
    kind, _, arg = spec.partition(":")
    if kind not in JUDGE_KINDS:
        raise HealError(f"--judge {spec}: unknown judge; use hf:<model path>, openai:<model>, embedding[:<model>], "
                        "rule:pubmedqa, rule:refusal or safety:rules|learned|combined")
    if kind in ("hf", "openai") and not arg:
        raise HealError(f"--judge {spec}: name the model, e.g. {kind}:" +
                        ("models/judge" if kind == "hf" else "gpt-4o-mini"))
    if kind == "rule" and arg not in ("pubmedqa", "refusal"):
        raise HealError(f"--judge {spec}: unknown rule; use rule:pubmedqa or rule:refusal")
    if kind == "safety" and arg not in SAFETY_GRADERS:
        raise HealError(f"--judge {spec}: unknown safety grader; use safety:rules, safety:learned or safety:combined")
    return kind, arg or None


def make_judge(spec: str, base_url: str | None = None, constitution: str | Constitution | None = None,
               cot: bool = False, cache: JudgmentCache | None = None, credentialed: bool = False,
               allow_remote: bool = False, **options) -> Judge:
    """Build a judge from its spec. `options` go to the back end (batch_size, concurrency, timeout, ...)."""
    kind, arg = parse_spec(spec)
    if not isinstance(constitution, Constitution):
        constitution = load_constitution(constitution)
    common = dict(constitution=constitution, cot=cot, cache=cache, credentialed=credentialed,
                  allow_remote=allow_remote)
    if kind == "rule":
        return PubMedQARuleJudge(spec, **common) if arg == "pubmedqa" else SafetyJudge(spec, "rules", **common)
    if kind == "safety":
        return SafetyJudge(spec, arg, **common)
    if kind == "embedding":
        return EmbeddingJudge(spec, model_name=arg, **common)
    if kind == "hf":
        from heal.feedback.hf_judge import HFJudge

        return HFJudge(spec, arg, **common, **options)
    from heal.feedback.openai_judge import OpenAIJudge

    return OpenAIJudge(spec, arg, base_url=base_url, **common, **options)
