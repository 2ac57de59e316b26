"""`heal-tiny`: a tokenizer and a small Llama-architecture model built locally, with no download.

    from heal.models.tiny import TinyConfig, build_heal_tiny
    model, tokenizer = build_heal_tiny(texts, TinyConfig(tiny_hidden_size=64, tiny_layers=2))
    model.save_pretrained("out"); tokenizer.save_pretrained("out")   # a normal HF folder from then on

The tokenizer is a byte-level BPE (GPT-2 style: any UTF-8 text round-trips, no unknown tokens) trained with
`tokenizers` on the run's own corpus: the stage passes its training texts (prompts and completions of the training
split), so the vocabulary fits the data at hand. Its pad token `<pad>` is distinct from the end-of-sequence token
`</s>`, so padding can never be mistaken for the end of an answer. No BOS is added automatically and there is no
chat template: prompts use HEAL's plain template (heal.models.prompting).

The model is randomly initialised (seeded): SFT on heal-tiny trains it from scratch, which is why its default
learning rate is higher (see heal.sft.config). The default size (≈1 M parameters with the synthetic data's
vocabulary) trains at about 360 steps a minute (batch 8) on 2 CPU cores; every dimension is a flag, so tests can go
smaller and a GPU can go bigger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

NAME = "heal-tiny"
PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, BOS, EOS)  # ids 0, 1, 2


@dataclass
class TinyConfig:
    """Size of the built-in model; used only when the model name is `heal-tiny`."""

    tiny_vocab_size: int = field(default=4096, metadata={
        "help": "heal-tiny: BPE vocabulary size (an upper bound; a small corpus gives fewer merges)."})
    tiny_hidden_size: int = field(default=128, metadata={"help": "heal-tiny: hidden size."})
    tiny_layers: int = field(default=4, metadata={"help": "heal-tiny: number of transformer layers."})
    tiny_heads: int = field(default=4, metadata={"help": "heal-tiny: attention heads (must divide the hidden size)."})
    tiny_intermediate_size: int | None = field(default=None, metadata={
        "help": "heal-tiny: MLP width (default: 8/3 of the hidden size, rounded up to a multiple of 32, as in Llama)."})
    tiny_max_position_embeddings: int = field(default=1024, metadata={
        "help": "heal-tiny: longest sequence the model can read (caps the stage's max_length)."})
    tiny_min_frequency: int = field(default=2, metadata={
        "help": "heal-tiny: a BPE merge must occur at least this often in the corpus."})

    def intermediate_size(self) -> int:
        if self.tiny_intermediate_size:
            return self.tiny_intermediate_size
        return -(-int(self.tiny_hidden_size * 8 / 3) // 32) * 32

    def check(self) -> None:
        from heal.errors import HealError

        if self.tiny_hidden_size % self.tiny_heads:
            raise HealError(f"--tiny_heads {self.tiny_heads} must divide --tiny_hidden_size {self.tiny_hidden_size}")
        if min(self.tiny_vocab_size, self.tiny_hidden_size, self.tiny_layers, self.tiny_max_position_embeddings) < 1:
            raise HealError("heal-tiny sizes (--tiny_*) must be positive")
        if self.tiny_vocab_size < 300:
            raise HealError(f"--tiny_vocab_size {self.tiny_vocab_size}: must be at least 300 "
                            "(256 byte tokens + specials + some merges)")


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, min_frequency: int = 2):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte is a token: nothing is ever unknown
        show_progress=False,
    )
    tokenizer.train_from_iterator((t for t in texts if t), trainer=trainer)
    return wrap_tokenizer(tokenizer.to_str())


def wrap_tokenizer(tokenizer_json: str):
    """A transformers tokenizer from a `tokenizers` JSON string (how ranks share one trained tokenizer)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(tokenizer_json),
        pad_token=PAD, bos_token=BOS, eos_token=EOS,
        padding_side="right",  # training pads right; generation code switches to left itself
        model_max_length=1_000_000,  # the model's max_position_embeddings is the real limit
        clean_up_tokenization_spaces=False,
    )


def build_model(tokenizer, config: TinyConfig, seed: int = 0):
    """A randomly initialised (seeded) LlamaForCausalLM sized by `config`, sharing `tokenizer`'s special ids."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config.check()
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.tiny_hidden_size,
        intermediate_size=config.intermediate_size(),
        num_hidden_layers=config.tiny_layers,
        num_attention_heads=config.tiny_heads,
        num_key_value_heads=config.tiny_heads,
        max_position_embeddings=config.tiny_max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,  # at this size the embedding is most of the model; tying halves it
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(model_config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.config.name_or_path = NAME
    return model


def build_heal_tiny(texts: Iterable[str], config: TinyConfig | None = None, seed: int = 0):
    """(model, tokenizer): the tokenizer trained on `texts`, the model sized by `config`."""
    config = config or TinyConfig()
    config.check()
    tokenizer = train_tokenizer(texts, config.tiny_vocab_size, config.tiny_min_frequency)
    return build_model(tokenizer, config, seed), tokenizer


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
