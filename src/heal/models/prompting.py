"""Prompt formatting, in one place, for every stage (sft, reward, ppo, eval): train and test see the same text.

    from heal.models.prompting import format_prompt, format_completion
    text = format_prompt(tokenizer, record["prompt"])          # what the model reads before it answers
    ids = tokenizer(text)["input_ids"]                         # tokenize with the tokenizer's defaults
    answer = format_completion(tokenizer, record["prompt"], record["completion"])   # the training target

With a chat template (instruct models), the prompt is one user turn rendered with the generation prompt, and the
completion is the assistant turn exactly as the template renders it, ending with its end-of-turn token. Without one
(base models, heal-tiny), the plain template below is used and the completion ends with the EOS token. Either way
`format_prompt(...) + format_completion(...)` is the full training sequence and ends where the model should stop.

Convention: tokenize `format_prompt`'s text with `tokenizer(text)` (default special tokens). A leading BOS that a
template writes and the tokenizer would add again is removed, so the sequence starts with exactly one BOS.
"""

from __future__ import annotations

PLAIN_TEMPLATE = "{prompt}\n\n### Answer:\n"  # ends on a newline: a token boundary for every BPE we know


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _messages(prompt: str, system: str | None) -> list[dict]:
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": prompt}]


def _adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("x")["input_ids"][:1] == [bos]


def _strip_bos(tokenizer, text: str) -> str:
    """Drop a template-written BOS when the tokenizer adds its own (else the sequence would start with two)."""
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and _adds_bos(tokenizer):
        return text[len(bos):]
    return text


def format_prompt(tokenizer, prompt: str, system: str | None = None) -> str:
    """The text the model reads before its answer."""
    if not has_chat_template(tokenizer):
        body = f"{system}\n\n{prompt}" if system else prompt
        return PLAIN_TEMPLATE.format(prompt=body)
    text = tokenizer.apply_chat_template(_messages(prompt, system), tokenize=False, add_generation_prompt=True)
    return _strip_bos(tokenizer, text)


def format_messages(tokenizer, messages: list[dict], system: str | None = None) -> str:
    """A whole conversation (role/content turns ending with the user's) ready for the assistant's next reply.

    A single user turn renders exactly as `format_prompt`. Without a chat template, earlier turns become
    "User: …" / "Assistant: …" paragraphs inside the plain template.
    """
    own_system = next((m["content"] for m in messages if m.get("role") == "system"), None)
    turns = [m for m in messages if m.get("role") != "system"]
    system = own_system or system
    if len(turns) == 1 and turns[0].get("role", "user") == "user":
        return format_prompt(tokenizer, turns[0]["content"], system)
    if has_chat_template(tokenizer):
        full = ([{"role": "system", "content": system}] if system else []) + turns
        return _strip_bos(tokenizer, tokenizer.apply_chat_template(full, tokenize=False, add_generation_prompt=True))
    body = "\n\n".join(f"{m.get('role', 'user').capitalize()}: {m['content']}" for m in turns)
    return PLAIN_TEMPLATE.format(prompt=f"{system}\n\n{body}" if system else body)


def format_completion(tokenizer, prompt: str, completion: str, system: str | None = None) -> str:
    """The text that follows `format_prompt(...)` in a training sequence: the answer and its end-of-turn marker."""
    eos = tokenizer.eos_token or ""
    if not has_chat_template(tokenizer):
        return completion if completion.endswith(eos) else completion + eos
    prompt_text = format_prompt(tokenizer, prompt, system)
    messages = _messages(prompt, system) + [{"role": "assistant", "content": completion}]
    full = _strip_bos(tokenizer, tokenizer.apply_chat_template(messages, tokenize=False))
    if not full.startswith(prompt_text):  # a template that renders the prompt differently once answered
        return completion + eos
    # Templates end the turn with e.g. "<|im_end|>\n"; the trailing whitespace is not part of the answer.
    return full[len(prompt_text):].rstrip()


def format_example(tokenizer, prompt: str, completion: str, system: str | None = None) -> dict[str, str]:
    """A TRL prompt-completion example: {"prompt": formatted prompt, "completion": formatted completion}."""
    return {"prompt": format_prompt(tokenizer, prompt, system),
            "completion": format_completion(tokenizer, prompt, completion, system)}


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an answer: EOS, plus the chat template's end-of-turn token when it is a single token."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if has_chat_template(tokenizer):
        marker = "HEAL_ANSWER_END"
        ending = format_completion(tokenizer, "question", marker).rsplit(marker, 1)[-1]
        tail = tokenizer(ending, add_special_tokens=False)["input_ids"] if ending else []
        if tail and tail[0] not in ids:
            ids.append(tail[0])
    return ids


def ensure_pad_token(tokenizer) -> None:
    """Give a tokenizer without a pad token one that exists in its vocabulary (unk if any, else eos).

    Padding is masked out of attention and labels, so reusing eos as pad is safe for training and generation; adding
    a new token would change the vocabulary and need resized embeddings.
    """
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
