"""heal.models: heal-tiny built offline, loading by name/path, API-model refusal, prompt formatting."""

import json

import pytest
import torch

from heal.data.pubmedqa import to_record
from heal.data.synthetic import make_pubmedqa
from heal.errors import HealError
from heal.models import loading, prompting
from heal.models.tiny import TinyConfig, build_heal_tiny, build_model, count_parameters

SMALL = TinyConfig(tiny_hidden_size=32, tiny_layers=1, tiny_heads=2, tiny_vocab_size=600)


@pytest.fixture(scope="module")
def corpus():
    records = [to_record(k, v) for k, v in make_pubmedqa(60, seed=3).items()]
    return [t for r in records for t in (r["prompt"], r["completion"])]


@pytest.fixture(scope="module")
def tiny(corpus):
    return build_heal_tiny(corpus, SMALL, seed=0)


def test_heal_tiny_tokenizer_has_distinct_pad_and_round_trips_any_text(tiny):
    _, tokenizer = tiny
    assert tokenizer.pad_token == "<pad>" and tokenizer.eos_token == "</s>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert len(tokenizer) <= 600
    text = "Does vitamin D lower HbA1c? Yes — p<0.001, ≥65 y, café, 日本語"  # bytes never seen in the corpus
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_heal_tiny_is_llama_sized_by_config_and_seeded(corpus, tiny):
    model, tokenizer = tiny
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 1
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    again = build_model(tokenizer, SMALL, seed=0)
    other = build_model(tokenizer, SMALL, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
    assert count_parameters(model) < 100_000


def test_heal_tiny_saves_and_reloads_as_a_normal_hf_folder(tmp_path, tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = tiny
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reloaded, retok = AutoModelForCausalLM.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()))
    assert retok("a b c")["input_ids"] == tokenizer("a b c")["input_ids"]
    assert retok.pad_token_id == tokenizer.pad_token_id != retok.eos_token_id
    # and through HEAL's loader, which classifies the folder as local
    model2, tok2, info = loading.load_policy(str(tmp_path))
    assert info.source == "local" and not info.adapter
    assert model2.generation_config.pad_token_id == tok2.pad_token_id


def test_tiny_config_rejects_heads_that_do_not_divide_hidden():
    with pytest.raises(HealError, match="--tiny_heads 3 must divide --tiny_hidden_size 32"):
        TinyConfig(tiny_hidden_size=32, tiny_heads=3).check()


@pytest.mark.parametrize("name", ["gpt-4", "gpt-4o", "gpt-4o-mini", "gpt-3.5-turbo", "GPT-4", "o1", "o3-mini",
                                  "claude-3-5-sonnet", "gemini-1.5-pro", "text-davinci-003"])
def test_api_only_names_are_refused_with_the_rlaif_hint(name):
    with pytest.raises(HealError, match="API models cannot be fine-tuned locally.*RLAIF judge"):
        loading.model_source(name)


@pytest.mark.parametrize("name", ["gpt2", "openai/gpt-oss-20b", "Qwen/Qwen2.5-0.5B-Instruct", "distilgpt2",
                                  "meta-llama/Llama-3.2-1B"])
def test_hub_ids_are_left_to_the_hub(name):
    assert loading.model_source(name) == "hub"


def test_missing_paths_and_non_model_folders_are_named(tmp_path):
    with pytest.raises(HealError, match="model folder does not exist"):
        loading.model_source(str(tmp_path / "nope" / "model"))
    with pytest.raises(HealError, match="model folder does not exist"):
        loading.model_source("./models/policy_model/none")
    with pytest.raises(HealError, match="no config.json"):
        loading.model_source(str(tmp_path))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(HealError, match="is a file"):
        loading.model_source(str(tmp_path / "file.txt"))


def test_hub_id_offline_fails_with_one_clear_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import; patch the constant
    with pytest.raises(HealError, match="cannot load"):
        loading.load_policy("heal-test/definitely-not-cached-model")


def test_adapter_folder_loads_merged_onto_its_base(tmp_path, tiny):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    base = tmp_path / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    peft_model = get_peft_model(build_model(tokenizer, SMALL, seed=0), LoraConfig(r=2, target_modules=["q_proj"]))
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param)  # LoRA starts as a no-op; make it change the model
    peft_model.peft_config["default"].base_model_name_or_path = str(base)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged, tok, info = loading.load_policy(str(tmp_path / "adapter"))
    assert info.adapter and info.base == str(base)
    assert type(merged).__name__ == "LlamaForCausalLM"
    q = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q, model.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(merged.model.layers[0].mlp.up_proj.weight, model.model.layers[0].mlp.up_proj.weight)


# --- prompting ------------------------------------------------------------------------------------------------------

def test_plain_template_without_chat_template(tiny):
    _, tokenizer = tiny
    prompt = prompting.format_prompt(tokenizer, "Is water wet?")
    assert prompt == "Is water wet?\n\n### Answer:\n"
    completion = prompting.format_completion(tokenizer, "Is water wet?", "Yes.")
    assert completion == "Yes.</s>"
    ids = tokenizer(prompt + completion)["input_ids"]
    assert ids[: len(tokenizer(prompt)["input_ids"])] == tokenizer(prompt)["input_ids"]  # prompt is a prefix
    assert ids[-1] == tokenizer.eos_token_id
    assert prompting.format_prompt(tokenizer, "Q", system="Be careful.") == "Be careful.\n\nQ\n\n### Answer:\n"
    assert prompting.stop_token_ids(tokenizer) == [tokenizer.eos_token_id]


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_chat_template_is_used_when_the_tokenizer_has_one(corpus):
    from heal.models.tiny import train_tokenizer

    tokenizer = train_tokenizer(corpus, 600)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    prompt = prompting.format_prompt(tokenizer, "Is water wet?", system="Be brief.")
    assert prompt == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nIs water wet?<|im_end|>\n"
                      "<|im_start|>assistant\n")
    example = prompting.format_example(tokenizer, "Is water wet?", "Yes.", system="Be brief.")
    assert example == {"prompt": prompt, "completion": "Yes.<|im_end|>"}
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert prompting.stop_token_ids(tokenizer) == [tokenizer.eos_token_id, im_end]


def test_template_bos_is_not_doubled_when_the_tokenizer_adds_one(corpus):
    from tokenizers import processors

    from heal.models.tiny import train_tokenizer

    tokenizer = train_tokenizer(corpus, 600)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tokenizer.bos_token_id)])
    tokenizer.chat_template = "{{ bos_token }}{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    prompt = prompting.format_prompt(tokenizer, "hi")
    assert prompt == "[hi]"
    assert tokenizer(prompt)["input_ids"].count(tokenizer.bos_token_id) == 1


def test_format_messages_multi_turn():
    from heal.models.prompting import format_messages, format_prompt
    from heal.models.tiny import train_tokenizer

    tokenizer = train_tokenizer(["hello there, how are you today?"] * 20, 300, 1)
    single = [{"role": "user", "content": "Is aspirin safe?"}]
    assert format_messages(tokenizer, single) == format_prompt(tokenizer, "Is aspirin safe?")
    assert format_messages(tokenizer, single, "Be brief.") == format_prompt(tokenizer, "Is aspirin safe?", "Be brief.")
    conversation = [{"role": "user", "content": "I have a headache."},
                    {"role": "assistant", "content": "Since when?"},
                    {"role": "user", "content": "Two days."}]
    plain = format_messages(tokenizer, conversation)
    assert plain.index("User: I have a headache.") < plain.index("Assistant: Since when?") < plain.index(
        "User: Two days.")
    tokenizer.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>"
                               "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")
    assert format_messages(tokenizer, conversation) == ("<user>I have a headache.</user><assistant>Since when?"
                                                         "</assistant><user>Two days.</user><assistant>")
