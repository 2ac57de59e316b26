"""vLLM generation for `heal eval` / `heal redteam` / `heal serve` (used by `--backend auto` when vLLM and a GPU are present).

    heal eval --model_path models/policy_model/pubmedqa_sft --dataset_path pqa_test.csv --backend vllm

Same interface as heal.eval.generate.HFBackend: `render`, `generate`, `choice_loglikelihoods`. Prompts are rendered
with the HF tokenizer by heal.models.prompting (the same text SFT trained on) and sent to vLLM as token ids, so vLLM's
own chat templating never changes them. Log-likelihoods come from vLLM's prompt log-probabilities of
prompt + choice. CI has no GPU, so this module is exercised only where vLLM is installed; docs/eval.md says how.
"""

from __future__ import annotations

from typing import Sequence

from heal.eval.generate import Generation, render


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_path: str, system: str | None = None, max_model_len: int | None = None):
        from transformers import AutoTokenizer
        from vllm import LLM

        from heal.models.loading import ensure_pad_token
        from heal.models.prompting import stop_token_ids

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        ensure_pad_token(self.tokenizer)
        self.llm = LLM(model=model_path, tokenizer=model_path, max_model_len=max_model_len, seed=0)
        self.system = system
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.truncated = 0
        self.batch_size = None  # vLLM schedules its own batches

    def render(self, conversation: str | list[dict]) -> str:
        return render(self.tokenizer, conversation, self.system)

    def _prompts(self, texts: list[str]) -> list[dict]:
        return [{"prompt_token_ids": ids} for ids in self.tokenizer(texts)["input_ids"]]

    def generate(self, texts: list[str], max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
                 stop: Sequence[str] = (), desc: str = "generating") -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                max_tokens=max_new_tokens, stop=list(stop) or None, stop_token_ids=self.stop_ids)
        outputs = self.llm.generate(self._prompts(texts), params, use_tqdm=True)
        return [Generation(o.outputs[0].text, len(o.prompt_token_ids), len(o.outputs[0].token_ids),
                           "stop" if o.outputs[0].finish_reason == "stop" else "length") for o in outputs]

    def choice_loglikelihoods(self, texts: list[str], choices: Sequence[str],
                              desc: str = "scoring") -> list[list[float]]:
        from vllm import SamplingParams

        prompt_ids = self.tokenizer(texts)["input_ids"]
        choice_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        requests = [{"prompt_token_ids": p + c} for p in prompt_ids for c in choice_ids]
        params = SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        outputs = self.llm.generate(requests, params, use_tqdm=True)
        scores, k = [], len(choices)
        for i, prompt in enumerate(prompt_ids):
            row = []
            for j, choice in enumerate(choice_ids):
                logprobs = outputs[i * k + j].prompt_logprobs  # one {token_id: Logprob} per prompt position
                start = len(prompt)
                row.append(sum(logprobs[start + n][t].logprob for n, t in enumerate(choice)))
            scores.append(row)
        return scores
