"""openai:<model> — any OpenAI-compatible chat endpoint as the judge: OpenAI, Azure, vLLM, Ollama, llama.cpp.

    heal label ... --judge openai:gpt-4o-mini                                   # OPENAI_API_KEY from the environment
    heal label ... --judge openai:Qwen/Qwen2.5-7B-Instruct --judge_base_url http://localhost:8000/v1   # vLLM

Requests run concurrently (`concurrency` threads). Retries with exponential backoff on 429, 5xx, connection errors
and timeouts are the `openai` client's own (`max_retries`, `timeout`), not re-implemented here. Each answer is
stored in the judgment cache the moment it arrives, so a failure part-way loses nothing already paid for and a rerun
resumes. The preference is read from the log-probabilities of the letters when the server returns them, else from
the text. The PHI guard runs before the first request.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from heal.errors import HealError
from heal.feedback.constitution import VERDICT_CUE
from heal.feedback.base import Judge, JudgeItem
from heal.feedback.phi_guard import is_loopback

DEFAULT_BASE_URL = "https://api.openai.com/v1"
API_KEY_VARIABLES = ("HEAL_JUDGE_API_KEY", "OPENAI_API_KEY")


class OpenAIJudge(Judge):
    cacheable = True

    def __init__(self, spec: str, model: str, base_url: str | None = None, concurrency: int = 8,
                 timeout: float = 60.0, max_retries: int = 4, logprobs: bool = True, max_tokens: int = 512,
                 **kwargs):
        super().__init__(spec, **kwargs)
        self.model = model
        self.remote_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.concurrency = max(1, concurrency)
        self.logprobs = logprobs
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self._client = self._make_client(timeout, max_retries)

    def _make_client(self, timeout: float, max_retries: int):
        from openai import OpenAI

        api_key = next((os.environ[v] for v in API_KEY_VARIABLES if os.environ.get(v)), None)
        if api_key is None:
            if not is_loopback(self.remote_url):
                raise HealError(f"judge {self.spec}: no API key; set OPENAI_API_KEY (or HEAL_JUDGE_API_KEY) for "
                                f"{self.remote_url}")
            api_key = "EMPTY"  # local servers (vLLM, Ollama, llama.cpp) accept any key
        return OpenAI(base_url=self.remote_url, api_key=api_key, timeout=timeout, max_retries=max_retries)

    # -- one request --------------------------------------------------------------------------------------------
    def _chat(self, text: str, max_tokens: int, logprobs: bool):
        """One chat completion (greedy); the first choice."""
        import openai

        request = dict(model=self.model, messages=[{"role": "user", "content": text}], temperature=0.0,
                       max_tokens=max_tokens)
        if logprobs:
            request.update(logprobs=True, top_logprobs=5)
        try:
            return self._client.chat.completions.create(**request).choices[0]
        except openai.APIError as e:
            raise self._explain(e) from None

    def _ask(self, text: str, first: str, second: str, max_tokens: int) -> tuple[float, str]:
        choice = self._chat(text, max_tokens, self.logprobs)
        content = choice.message.content or ""
        p = _letter_prob_from_logprobs(choice, first, second)
        if p is None:
            p = _letter_prob_from_text(content, first, second)
        return p, content.strip() if self.cot else ""

    def _explain(self, error: Exception) -> HealError:
        import openai

        where = f"judge {self.spec} at {self.remote_url}"
        if isinstance(error, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return HealError(f"{where} rejected the API key (HTTP {error.status_code}); check OPENAI_API_KEY")
        if isinstance(error, openai.NotFoundError):
            return HealError(f"{where}: model '{self.model}' not found (HTTP 404); check the name after openai:")
        if isinstance(error, openai.APITimeoutError):
            return HealError(f"{where} timed out {self.max_retries + 1} times; raise --judge_timeout or check the "
                             "server (judgments so far are cached: rerun to resume)")
        if isinstance(error, openai.APIConnectionError):
            return HealError(f"{where} is unreachable; check --judge_base_url and that the server is running")
        status = getattr(error, "status_code", None)
        return HealError(f"{where} failed (HTTP {status}) after {self.max_retries} retries: "
                         f"{str(error).splitlines()[0][:200]} (judgments so far are cached: rerun to resume)")

    # -- the Judge interface ------------------------------------------------------------------------------------
    def _pairwise_text(self, item: JudgeItem) -> str:
        return self.constitution.pairwise_prompt(item.prompt, item.a, item.b, self.cot)

    def _max_tokens(self) -> int:
        return self.max_tokens if self.cot else 5

    def _first_better(self, items: list[JudgeItem]) -> list[tuple[float, str]]:
        return self._run([lambda i=i: self._ask(self._pairwise_text(i), "A", "B", self._max_tokens())
                          for i in items])

    def _first_better_and_store(self, items: list[JudgeItem], keys: list[str]) -> list[tuple[float, str]]:
        def task(item: JudgeItem, key: str) -> tuple[float, str]:
            p, rationale = self._ask(self._pairwise_text(item), "A", "B", self._max_tokens())
            self.cache.put(key, {"p_first": p, "rationale": rationale})  # stored as soon as it is paid for
            return p, rationale

        return self._run([lambda i=i, k=k: task(i, k) for i, k in zip(items, keys)])

    def score(self, items: list[JudgeItem]) -> list[float]:
        self.guard(items)
        return [p for p, _ in self._run([
            lambda i=i: self._ask(self.constitution.pointwise_prompt(i.prompt, i.a), "Yes", "No", 5)
            for i in items])]

    def complete(self, texts: list[str], max_tokens: int = 256) -> list[str]:
        """Free-text answers (greedy) to `texts`, e.g. a grading rubric; cached and PHI-guarded like judgments."""
        from heal.feedback.cache import JudgmentCache

        self.guard([])  # the caller's `credentialed` flag decides: these texts carry no record source

        def task(text: str) -> str:
            key = JudgmentCache.key(self.spec, "complete", max_tokens, text)
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                return hit["text"]
            self.calls += 1
            content = self._chat(text, max_tokens, logprobs=False).message.content or ""
            if self.cache is not None:
                self.cache.put(key, {"text": content})
            return content

        return self._run([lambda t=t: task(t) for t in texts])

    def _run(self, tasks: list) -> list:
        """Run the tasks concurrently, in order; on the first failure cancel what has not started and raise it."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(task) for task in tasks]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:
                for future in futures:
                    future.cancel()
                raise failed.exception()
            return [f.result() for f in futures]


def _letter_prob_from_logprobs(choice, first: str, second: str) -> float | None:
    """P(first) / (P(first) + P(second)) at the first generated token that is one of the two words."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    for position in content:
        if position.token.strip() not in (first, second):
            continue
        mass = {first: 0.0, second: 0.0}
        for candidate in position.top_logprobs or [position]:
            word = candidate.token.strip()
            if word in mass:
                mass[word] += math.exp(candidate.logprob)
        total = mass[first] + mass[second]
        return mass[first] / total if total > 0 else None
    return None


def _letter_prob_from_text(text: str, first: str, second: str) -> float:
    """1, 0 or ½ from the text: the word after the verdict cue if present, else the first standalone word."""
    tail = text.rsplit(VERDICT_CUE, 1)[-1]
    match = re.search(rf"\b({re.escape(first)}|{re.escape(second)})\b", tail)
    if match is None:
        return 0.5  # unparseable: no preference, rather than a guess
    return 1.0 if match.group(1) == first else 0.0
