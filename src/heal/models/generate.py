"""Batched generation and log-likelihood scoring for eval, redteam and serve.

    from heal.models.generate import load_backend
    backend = load_backend("models/policy_model/pubmedqa_sft", batch_size=16)
    outs = backend.generate([backend.render("Question: …")], max_new_tokens=64)     # greedy by default
    scores = backend.choice_loglikelihoods([backend.render("Question: …")], ["Yes.", "No.", "Maybe."])

Prompts are rendered by heal.models.prompting, the same formatter SFT, reward and PPO use, so eval sees exactly the
text the model was trained on. Generation is left-padded and batched (prompts sorted by length, so a batch wastes
little padding), greedy unless a temperature is given, and stops at the tokens `stop_token_ids` names. When vLLM is
installed and a GPU is present, `--backend auto` generates with vLLM instead (VLLMBackend, below).

Log-likelihood scoring (PubMedQA's yes/no/maybe, as lm-evaluation-harness scores multiple choice) runs the prompt
once and scores every choice from the shared prefix: the prompt's key/value cache is repeated once per choice, so
scoring K choices costs one prompt pass plus K short continuations rather than K full passes. `generate_and_score`
does both from that one pass (eval's two PubMedQA modes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from heal.errors import HealError


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (a stop token or string ended it) | "length" (max_new_tokens reached)


def render(tokenizer, conversation: str | list[dict], system: str | None = None) -> str:
    """The text the model reads: a prompt string, or a conversation (list of role/content messages)."""
    from heal.models import prompting

    if isinstance(conversation, str):
        return prompting.format_prompt(tokenizer, conversation, system)
    return prompting.format_messages(tokenizer, conversation, system)


def _cut_at_stop_strings(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cuts = [text.index(s) for s in stop if s and s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)


def _batches(order: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(order), size):
        yield order[start:start + size]


class HFBackend:
    """A transformers causal LM and its tokenizer, ready for batched generation and scoring."""

    name = "hf"

    def __init__(self, model, tokenizer, batch_size: int = 16, system: str | None = None, progress: bool = True):
        from heal.models.prompting import stop_token_ids

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"  # generation continues from the last real token of every row
        self.batch_size = max(1, batch_size)
        self.system = system
        self.progress = progress
        self.stop_ids = stop_token_ids(tokenizer)
        self.max_length = getattr(model.config, "max_position_embeddings", None) or 1_000_000
        self.truncated = 0  # prompts cut from the left to fit the context window

    @property
    def device(self):
        return self.model.device

    def render(self, conversation: str | list[dict]) -> str:
        return render(self.tokenizer, conversation, self.system)

    def _encode(self, texts: list[str], room: int) -> list[list[int]]:
        """Token ids per text (tokenizer defaults, as heal.models.prompting prescribes), left-truncated to fit."""
        limit = max(1, self.max_length - room)
        encoded = []
        for ids in self.tokenizer(texts)["input_ids"]:
            if len(ids) > limit:
                self.truncated += 1
                ids = ids[-limit:]  # keep the end: the question and the answer cue
            encoded.append(ids)
        return encoded

    def _pad_left(self, rows: list[list[int]]):
        import torch

        width = max(map(len, rows))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        return ids, mask

    def _progress(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="prompt", disable=not self.progress, leave=False)

    def generate(self, texts: list[str], max_new_tokens: int = 128, temperature: float = 0.0, top_p: float = 1.0,
                 stop: Sequence[str] = (), desc: str = "generating") -> list[Generation]:
        """One Generation per rendered prompt, in input order."""
        import torch

        encoded = self._encode(texts, max_new_tokens)
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        results: list[Generation | None] = [None] * len(texts)
        from heal.models.sampling import only_this_config, sampling_config

        # One explicit config (greedy, or temperature/top-p sampling): the model's own generation_config is set aside
        config = sampling_config(temperature, max_new_tokens, self.stop_ids, self.tokenizer.pad_token_id, top_p)
        with self._progress(len(texts), desc) as bar, torch.inference_mode(), only_this_config(self.model):
            for batch in _batches(order, self.batch_size):
                ids, mask = self._pad_left([encoded[i] for i in batch])
                out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
                for row, i in enumerate(batch):
                    results[i] = self._decode(out[row, ids.shape[1]:].tolist(), len(encoded[i]), stop)
                bar.update(len(batch))
        return results  # type: ignore[return-value]

    def generate_and_score(self, texts: list[str], choices: Sequence[str], max_new_tokens: int = 128,
                           temperature: float = 0.0, top_p: float = 1.0, stop: Sequence[str] = (),
                           desc: str = "generating + scoring") -> tuple[list[Generation], list[list[float]]]:
        """`generate(texts, …)` and `choice_loglikelihoods(texts, choices)` from one pass over every prompt.

        Each batch's prompts (all but their last token) run once into a key/value cache; a copy of it scores every
        choice (the last prompt token, then the choice), and generation continues from the original, so a prompt of
        T tokens costs one T-token pass instead of two. Same results as the two calls apart (tests check)."""
        import copy

        import torch

        from heal.models.sampling import only_this_config, sampling_config

        choice_ids = self._choice_ids(choices)
        encoded = self._encode(texts, max(max_new_tokens, max(map(len, choice_ids))))
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        results: list[Generation | None] = [None] * len(texts)
        scores: list[list[float] | None] = [None] * len(texts)
        config = sampling_config(temperature, max_new_tokens, self.stop_ids, self.tokenizer.pad_token_id, top_p)
        with self._progress(len(texts), desc) as bar, torch.inference_mode(), only_this_config(self.model):
            for batch in _batches(order, self.batch_size):
                ids, mask = self._pad_left([encoded[i] for i in batch])
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                if ids.shape[1] > 1:
                    cache = self.model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
                                       position_ids=positions[:, :-1], use_cache=True, logits_to_keep=1).past_key_values
                    scored = self._continuation_logprobs(copy.deepcopy(cache), mask[:, :-1], choice_ids,
                                                         lead=ids[:, -1])
                else:  # a one-token prompt: nothing to share
                    cache, scored = None, torch.tensor(self._score_batch([encoded[i] for i in batch], choice_ids))
                out = self.model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache,
                                          generation_config=config)
                for row, i in enumerate(batch):
                    results[i] = self._decode(out[row, ids.shape[1]:].tolist(), len(encoded[i]), stop)
                    scores[i] = scored[row].tolist()
                bar.update(len(batch))
        return results, scores  # type: ignore[return-value]

    def _decode(self, new_ids: list[int], prompt_tokens: int, stop: Sequence[str]) -> Generation:
        end = next((j for j, t in enumerate(new_ids) if t in self.stop_ids), None)
        kept = new_ids if end is None else new_ids[:end]
        kept = [t for t in kept if t != self.tokenizer.pad_token_id or t in self.stop_ids]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        text, cut = _cut_at_stop_strings(text, stop)
        finish = "stop" if end is not None or cut else "length"
        return Generation(text, prompt_tokens, len(kept) + (0 if end is None else 1), finish)

    # --- log-likelihood -------------------------------------------------------------------------------------------

    def choice_loglikelihoods(self, texts: list[str], choices: Sequence[str],
                              desc: str = "scoring") -> list[list[float]]:
        """log P(choice | prompt) summed over the choice's tokens, for every prompt × choice: shape (N, K)."""
        choice_ids = self._choice_ids(choices)
        encoded = self._encode(texts, max(map(len, choice_ids)))
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        scores: list[list[float] | None] = [None] * len(texts)
        with self._progress(len(texts), desc) as bar:
            for batch in _batches(order, self.batch_size):
                rows = self._score_batch([encoded[i] for i in batch], choice_ids)
                for row, i in zip(rows, batch):
                    scores[i] = row
                bar.update(len(batch))
        return scores  # type: ignore[return-value]

    def _choice_ids(self, choices: Sequence[str]) -> list[list[int]]:
        choice_ids = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c in choices]
        if any(not ids for ids in choice_ids):
            raise ValueError("every choice must tokenize to at least one token")
        return choice_ids

    def _score_batch(self, prompts: list[list[int]], choice_ids: list[list[int]]) -> list[list[float]]:
        """Shared-prefix scoring: one pass over the prompts, then every choice continues from the cached prefix."""
        import torch

        k, width = len(choice_ids), max(map(len, choice_ids))
        with torch.inference_mode():
            ids, mask = self._pad_left(prompts)  # (B, T)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                             logits_to_keep=1)
            first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V): the next-token distribution
            first_ids = torch.tensor([c[0] for c in choice_ids], device=self.device)
            total = first[:, first_ids]  # (B, K)
            if width > 1:
                total = total + self._continuation_logprobs(out.past_key_values, mask, choice_ids)
        return total.tolist()

    def _continuation_logprobs(self, cache, mask, choice_ids: list[list[int]], lead=None):
        """Every prompt × choice, (B, K), continuing from the cached prompt (attention `mask`): without `lead`,
        log P(choice tokens 2..L | prompt, choice token 1); with `lead` (B,), the prompt's last token, not yet
        cached, log P(whole choice | prompt + lead)."""
        import torch

        b, k = mask.shape[0], len(choice_ids)
        pad = self.tokenizer.pad_token_id
        rows = [c if lead is None else [pad] + c for c in choice_ids]  # the lead's slot is filled in per prompt
        width = max(map(len, rows))
        cont = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)  # (K, W)
        cont_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        cache.batch_repeat_interleave(k)  # (B*K, …): prompt 0's cache K times, then prompt 1's, …
        cont, cont_mask = cont.repeat(b, 1), cont_mask.repeat(b, 1)  # (B*K, W), same row order
        if lead is not None:
            cont[:, 0] = lead.repeat_interleave(k)
        full_mask = torch.cat([mask.repeat_interleave(k, dim=0), cont_mask], dim=1)
        start = mask.sum(-1).repeat_interleave(k)  # first position after the cached tokens
        positions = start[:, None] + torch.arange(width, device=self.device)[None, :]
        logits = self.model(input_ids=cont, attention_mask=full_mask, position_ids=positions,
                            past_key_values=cache, use_cache=True).logits.float()  # (B*K, W, V)
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # position j predicts token j+1
        target = cont[:, 1:]
        picked = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * cont_mask[:, 1:]
        return picked.sum(-1).view(b, k)

    def score_full(self, text: str, choice: str) -> float:
        """Reference implementation: log P(choice | text) from one pass over the whole sequence (for tests)."""
        import torch

        prompt = self._encode([text], 0)[0]
        target = self.tokenizer(choice, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + target], device=self.device)
        with torch.inference_mode():
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        picks = [logp[len(prompt) - 1 + j, t].item() for j, t in enumerate(target)]
        return float(sum(picks))


# --- loading -------------------------------------------------------------------------------------------------------

def model_system_prompt(model_path: str) -> str | None:
    """The system prompt the model was trained with, from the resolved config its stage saved (if any)."""
    import yaml

    config = Path(model_path) / "resolved_config.yaml"
    if not config.is_file():
        return None
    try:
        value = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("system_prompt")
    except (yaml.YAMLError, AttributeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) and value.strip() else None


def check_model_path(model_path: str | None) -> str:
    """Fail fast (before data or output folders are touched) on a model that cannot be loaded."""
    from heal.models.loading import model_source

    if not model_path:
        raise HealError("--model_path is required: a model folder a HEAL stage wrote, a Hub id, or heal-tiny")
    return model_source(model_path, "--model_path")


def load_model(model_path: str, corpus: Sequence[str] | None = None, tiny=None, seed: int = 0):
    """(model, tokenizer, info) on the best device; heal-tiny is built from `corpus` (untrained: a baseline)."""
    import torch

    from heal.models.loading import load_policy

    source = check_model_path(model_path)
    kwargs = {}
    if torch.cuda.is_available() and source != "heal-tiny":
        kwargs["dtype"] = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    model, tokenizer, info = load_policy(model_path, corpus=corpus, tiny=tiny, seed=seed, **kwargs)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer, info


# vLLM: the same interface (`render`, `generate`, `choice_loglikelihoods`). Prompts are rendered with the HF
# tokenizer by heal.models.prompting (the text SFT trained on) and sent as token ids, so vLLM's own chat templating
# never changes them; log-likelihoods come from vLLM's prompt log-probabilities. Exercised only where vLLM and a GPU
# are present (docs/eval.md says how).
class VLLMBackend:
    name = "vllm"

    def __init__(self, model_path: str, system: str | None = None, max_model_len: int | None = None):
        from transformers import AutoTokenizer
        from vllm import LLM

        from heal.models.loading import ensure_pad_token, model_location
        from heal.models.prompting import stop_token_ids

        model_path = model_location(model_path, "--model_path")
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


def load_backend(model_path: str, batch_size: int = 16, system: str | None = None, backend: str = "auto",
                 corpus: Sequence[str] | None = None, tiny=None, seed: int = 0, progress: bool = True,
                 max_model_len: int | None = None):
    """An HFBackend, or a VLLMBackend when `backend` is vllm (or auto with vLLM installed and a GPU present)."""
    started = time.perf_counter()
    source = check_model_path(model_path)
    if system is None and source == "local":
        system = model_system_prompt(model_path)
    if _use_vllm(backend, source):
        result = VLLMBackend(model_path, system=system, max_model_len=max_model_len)
    else:
        model, tokenizer, _ = load_model(model_path, corpus, tiny, seed)
        result = HFBackend(model, tokenizer, batch_size, system, progress)
    result.load_seconds = time.perf_counter() - started
    return result


def _use_vllm(backend: str, source: str) -> bool:
    import importlib.util

    if backend == "hf":
        return False
    installed = importlib.util.find_spec("vllm") is not None
    if backend == "vllm":
        if not installed:
            raise HealError("--backend vllm: vLLM is not installed; pip install vllm (needs a GPU), or use --backend hf")
        if source == "heal-tiny":
            raise HealError("--backend vllm: heal-tiny is built in memory; save it first or use --backend hf")
        return True
    if not installed or source == "heal-tiny":
        return False
    import torch

    return torch.cuda.is_available()
