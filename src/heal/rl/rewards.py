"""Where an RL verb's score comes from (ppo, grpo): a reward model, an AI judge (d-RLAIF) or a verifiable rule.

    spec = parse_reward(script.reward, training.reward_model_path)        # once per run: a RewardSpec
    source = make_reward_source(spec, script, policy_tokenizer, credentialed)
    scores = source.score(batch)          # (B,) one score per response, read at its last real token

Reward model (the default): the model `heal reward` wrote, a one-output sequence classifier, normalised with the
mean/std stored in its config.json (heal.reward.scoring), so reference answers score about 0.
- Same tokenizer as the policy (the usual case: the reward model was initialised from the SFT model): the reward
  model reads the ids the policy produced — prompt ids (formatted by heal.models.prompting, as in reward training)
  followed by the response ids up to and including the stop token — and the score is read at the last real token.
- Different tokenizer (e.g. an encoder reward model): the response is decoded to text, the pair is formatted with
  the reward model's own tokenizer exactly as in reward training (heal.reward.scoring.pair_texts, which ends the
  answer with the reward tokenizer's EOS), re-tokenised and scored by the model's own pooling.

Judge (`--reward judge:<spec>`) and rule (`--reward rule:pubmedqa`, `rule:refusal`): the decoded response is scored by
heal.feedback.judges (`Judge.score`), with the record's label/reference/source columns; network judges go through
the PHI guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from heal.errors import HealError


@dataclass
class ScoringBatch:
    """What a reward source may read. P prompt tokens (left-padded), T response tokens."""

    query: torch.Tensor  # (B, P)
    query_mask: torch.Tensor  # (B, P)
    response: torch.Tensor  # (B, T), pad after the stop token
    response_mask: torch.Tensor  # (B, T), 1 up to and including the stop token
    prompts: list[str]  # the records' raw prompts
    texts: list[str]  # decoded responses (without the stop token)
    records: list[dict]


def sequence_inputs(query, query_mask, response, response_mask):
    """input_ids, attention_mask, position_ids for [left-padded prompt | response]: (B, P + T) each.

    Positions count real tokens only, so a left-padded prompt gets the positions it had unpadded."""
    input_ids = torch.cat([query, response], dim=1)
    attention_mask = torch.cat([query_mask, response_mask], dim=1).long()
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    return input_ids, attention_mask, position_ids


class RewardModelSource:
    kind = "reward model"

    def __init__(self, path: str, policy_tokenizer, batch_size: int = 64):
        from transformers import AutoModelForSequenceClassification

        from heal.models.loading import load_tokenizer, model_location
        from heal.models.classifier import freeze, same_tokenizer
        from heal.reward.scoring import normalization

        require_reward_model(path)
        self.path = path
        self.tokenizer = load_tokenizer(path)
        try:
            self.model = freeze(AutoModelForSequenceClassification.from_pretrained(model_location(path)))
        except (OSError, ValueError) as e:
            raise HealError(f"--reward_model_path {path}: not a sequence classifier "
                            f"({str(e).splitlines()[0][:200]}); train one with `heal reward`") from None
        self.mean, self.std = normalization(self.model.config)
        self.same_tokens = same_tokenizer(self.tokenizer, policy_tokenizer) and _has_score_head(self.model)
        self.batch_size = batch_size

    def to(self, device) -> "RewardModelSource":
        self.model.to(device)
        return self

    @torch.no_grad()
    def score(self, batch: ScoringBatch) -> torch.Tensor:
        if self.same_tokens:
            raw = self._score_tokens(batch)
        else:
            from heal.reward.scoring import pair_texts, raw_scores

            raw = torch.tensor(raw_scores(self.model, self.tokenizer, pair_texts(self.tokenizer, batch.prompts,
                                                                                 batch.texts), self.batch_size))
        return ((raw - self.mean) / self.std).to(batch.response.device)

    def _score_tokens(self, batch: ScoringBatch) -> torch.Tensor:
        from heal.models.classifier import token_scores

        input_ids, attention_mask, position_ids = sequence_inputs(batch.query, batch.query_mask, batch.response,
                                                                  batch.response_mask)
        width = batch.response.shape[1]
        scores = token_scores(self.model, input_ids, attention_mask, position_ids, keep=width)  # (B, T)
        # the response mask is 1 from the first response token up to and including the stop token
        last = (batch.response_mask.sum(dim=1) - 1).clamp(min=0)
        return scores[torch.arange(scores.shape[0], device=scores.device), last].float().cpu()


def require_reward_model(path: str) -> None:
    """A one-output sequence classifier, checked on its config before loading (a causal LM would load with a new,
    random head and a long load report)."""
    from transformers import AutoConfig

    from heal.models.loading import model_location

    location = model_location(path, "--reward_model_path")
    try:
        config = AutoConfig.from_pretrained(location)
    except (OSError, ValueError) as e:
        raise HealError(f"--reward_model_path {path}: cannot read its config.json ({str(e).splitlines()[0][:200]})") \
            from None
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise HealError(f"--reward_model_path {path}: not a sequence classifier (config.json architectures: "
                        f"{', '.join(architectures) or 'none'}); train a reward model with `heal reward` (a causal LM "
                        "is a policy: --model_name, or an AI judge: --reward judge:hf:<path>)")
    if config.num_labels != 1:
        raise HealError(f"--reward_model_path {path}: has {config.num_labels} outputs; a reward model has one "
                        "(train it with `heal reward`)")


def _has_score_head(model) -> bool:
    return getattr(model, "score", None) is not None and hasattr(model, getattr(model, "base_model_prefix", ""))


class JudgeSource:
    kind = "judge"

    def __init__(self, spec: str, base_url: str | None, credentialed: bool, allow_remote: bool,
                 constitution: str | None = None):
        from heal.feedback.judges import make_judge

        self.spec = spec
        self.judge = make_judge(spec, base_url=base_url, constitution=constitution, credentialed=credentialed,
                                allow_remote=allow_remote)

    def to(self, device) -> "JudgeSource":
        return self

    def score(self, batch: ScoringBatch) -> torch.Tensor:
        from heal.feedback.judges import JudgeItem

        items = [JudgeItem(prompt=p, a=text, reference=_text(r.get("reference")), label=_text(r.get("label")),
                           source=_text(r.get("source"))) for p, text, r in zip(batch.prompts, batch.texts,
                                                                                 batch.records)]
        self.judge.guard(items)
        return torch.tensor(self.judge.score(items), dtype=torch.float32, device=batch.response.device)


def _text(value) -> str | None:
    return None if value is None or value == "" else str(value)


@dataclass(frozen=True)
class RewardSpec:
    """What --reward and --reward_model_path ask for, parsed once (parse_reward)."""

    kind: Literal["model", "judge", "rule"]
    target: str  # model: the reward model folder; judge and rule: the heal.feedback judge spec (hf:…, rule:pubmedqa)
    flag: str | None = None  # --reward as given (None: the reward model at --reward_model_path)

    @property
    def reward_model_path(self) -> str | None:
        return self.target if self.kind == "model" else None

    @property
    def judge_spec(self) -> str | None:
        return None if self.kind == "model" else self.target

    def fingerprint(self) -> str:
        """What names this reward in a run's fingerprint: --reward, or the reward model's path."""
        return self.flag or self.target

    def describe(self) -> str:
        """For model cards and summaries."""
        if self.kind == "model":
            return f"the reward model `{self.target}`"
        why = " (an AI judge's score: d-RLAIF)" if self.kind == "judge" else " (a verifiable rule)"
        return f"`{self.flag}`{why}"


def parse_reward(reward: str | None, reward_model_path: str | None) -> RewardSpec:
    """The RewardSpec --reward and --reward_model_path ask for; a one-line HealError for a bad value."""
    if reward is None or reward in ("", "model", "reward_model"):
        if not reward_model_path:
            raise HealError("no reward: pass --reward_model_path <heal reward output>, or --reward judge:<spec> / "
                            "--reward rule:pubmedqa")
        return RewardSpec("model", reward_model_path)
    if reward.startswith("judge:"):
        spec = reward[len("judge:"):]
    elif reward.startswith("rule:"):
        spec = reward
    else:
        raise HealError(f"--reward {reward}: use judge:<spec> (e.g. judge:hf:models/judge), rule:pubmedqa, "
                        "rule:refusal, or leave it unset to use --reward_model_path")
    from heal.feedback.judges import parse_spec

    try:
        kind, _ = parse_spec(spec)
    except HealError as e:
        raise HealError(f"--reward {reward}: {str(e).split(': ', 1)[-1]}") from None
    return RewardSpec("rule" if kind == "rule" else "judge", spec, reward)


def make_reward_source(spec: RewardSpec, script, policy_tokenizer, credentialed: bool, batch_size: int = 64):
    """The scorer of `spec`: a RewardModelSource or a JudgeSource (`script` gives the judge's URL and the
    credentialed-data override)."""
    if spec.kind == "model":
        return RewardModelSource(spec.target, policy_tokenizer, batch_size)
    return JudgeSource(spec.target, script.judge_base_url, credentialed,
                       script.allow_credentialed_data_to_remote_endpoint, script.constitution)
