"""hf:<path> — a local causal LM as the judge; its preference is read from the probabilities of the answer letters.

For one presentation order, the judge reads the constitution's pairwise prompt (formatted like every other prompt,
heal.models.prompting) and we take the next-token distribution restricted to the two letters:

    P(first ≻ second) = Σ_{t ∈ A-tokens} p(t) / Σ_{t ∈ A- or B-tokens} p(t)

where the A-tokens are the tokenizations of "A" and " A" (likewise B). With chain of thought the judge first
generates a short rationale, then the same distribution is read after "Better answer:". Nothing leaves the process,
so the PHI guard has nothing to check.
"""

from __future__ import annotations

from heal.feedback.constitution import VERDICT_CUE
from heal.feedback.base import Judge, JudgeItem


class HFJudge(Judge):
    cacheable = True

    def __init__(self, spec: str, model_path: str, batch_size: int = 8, max_length: int = 2048,
                 max_rationale_tokens: int = 128, **kwargs):
        super().__init__(spec, **kwargs)
        from heal.models.loading import load_policy

        self.model, self.tokenizer, _ = load_policy(model_path)
        self.model.eval()
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_rationale_tokens = max_rationale_tokens
        self._letters = {letter: self._token_ids(letter) for letter in ("A", "B", "Yes", "No")}

    def _token_ids(self, word: str) -> list[int]:
        ids = set()
        for text in (word, " " + word):
            tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if tokens:
                ids.add(tokens[0])
        return sorted(ids)

    def _first_better(self, items: list[JudgeItem]) -> list[tuple[float, str]]:
        from heal.models.prompting import format_prompt

        texts = [format_prompt(self.tokenizer, self.constitution.pairwise_prompt(i.prompt, i.a, i.b, self.cot))
                 for i in items]
        rationales = [""] * len(texts)
        if self.cot:
            rationales = self._generate(texts)
            texts = [t + r.strip() + f"\n{VERDICT_CUE} " for t, r in zip(texts, rationales)]
        probs = self._choice_probs(texts, "A", "B")
        return [(p, r.strip()) for p, r in zip(probs, rationales)]

    def score(self, items: list[JudgeItem]) -> list[float]:
        """P(Yes) to "does this answer follow the principles?" — a reward in [0, 1] for d-RLAIF."""
        from heal.models.prompting import format_prompt

        self.guard(items)
        texts = [format_prompt(self.tokenizer, self.constitution.pointwise_prompt(i.prompt, i.a)) for i in items]
        return self._choice_probs(texts, "Yes", "No")

    def _batches(self, texts: list[str]):
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            self.tokenizer.padding_side = "left"  # the next-token position is the last column for every row
            yield self.tokenizer(batch, return_tensors="pt", padding=True, truncation=True,
                                 max_length=self.max_length)

    def _choice_probs(self, texts: list[str], first: str, second: str) -> list[float]:
        import torch

        out: list[float] = []
        ids_1, ids_2 = self._letters[first], self._letters[second]
        with torch.no_grad():
            for encoded in self._batches(texts):
                logits = self.model(**encoded).logits[:, -1, :].float()  # (B, V)
                log_probs = torch.log_softmax(logits, dim=-1)
                score_1 = torch.logsumexp(log_probs[:, ids_1], dim=-1)
                score_2 = torch.logsumexp(log_probs[:, ids_2], dim=-1)
                out.extend(torch.sigmoid(score_1 - score_2).tolist())  # = p1 / (p1 + p2)
        return out

    def _generate(self, texts: list[str]) -> list[str]:
        import torch

        rationales: list[str] = []
        with torch.no_grad():
            for encoded in self._batches(texts):
                output = self.model.generate(**encoded, max_new_tokens=self.max_rationale_tokens, do_sample=False,
                                             pad_token_id=self.tokenizer.pad_token_id)
                new = output[:, encoded["input_ids"].shape[1]:]
                decoded = self.tokenizer.batch_decode(new, skip_special_tokens=True)
                rationales.extend(text.split(VERDICT_CUE)[0] for text in decoded)
        return rationales
