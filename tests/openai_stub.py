"""A small OpenAI-compatible chat server for tests: a real (tiny) causal LM behind /v1/chat/completions, with knobs
to fail (HTTP 500), to be slow, to demand an API key and to count requests. Runs on loopback only."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class Behaviour:
    def __init__(self, fail_first: int = 0, fail_after: int | None = None, delay: float = 0.0,
                 api_key: str | None = None, model_name: str = "tiny-judge"):
        self.fail_first, self.fail_after, self.delay = fail_first, fail_after, delay
        self.api_key, self.model_name = api_key, model_name
        self.requests = 0  # every request that reached the endpoint
        self.answered = 0  # requests answered with a completion
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()


def make_app(model_dir: str, behaviour: Behaviour) -> FastAPI:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from heal.models.prompting import format_prompt

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    model_lock = threading.Lock()
    app = FastAPI()

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": "test", "code": status}}, status_code=status)

    @app.post("/v1/chat/completions")
    def chat(body: dict, request: Request):
        b = behaviour
        with b.lock:
            b.requests += 1
            n = b.requests
            b.in_flight += 1
            b.max_in_flight = max(b.max_in_flight, b.in_flight)
        try:
            if b.api_key and request.headers.get("authorization") != f"Bearer {b.api_key}":
                return error(401, "invalid api key")
            if body.get("model") != b.model_name:
                return error(404, f"model {body.get('model')} not found")
            if n <= b.fail_first or (b.fail_after is not None and n > b.fail_after):
                return error(500, "internal error")
            time.sleep(b.delay)
            text = format_prompt(tokenizer, body["messages"][-1]["content"])
            ids = tokenizer(text, return_tensors="pt")
            with model_lock, torch.no_grad():
                logits = model(**ids).logits[0, -1].float()
            log_probs = torch.log_softmax(logits, -1)
            # Like a judge served with guided decoding: the answer is the likelier of the two letters, and the
            # top log-probabilities list both (the model's real values).
            letters = {x: tokenizer(x, add_special_tokens=False)["input_ids"][0] for x in ("A", "B")}
            ranked = sorted(((log_probs[i].item(), x) for x, i in letters.items()), reverse=True)
            tokens = [x for _, x in ranked]
            first = {"token": tokens[0], "logprob": ranked[0][0], "bytes": None,
                     "top_logprobs": [{"token": x, "logprob": v, "bytes": None} for v, x in ranked]}
            with b.lock:
                b.answered += 1
            return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                    "model": b.model_name,
                    "choices": [{"index": 0, "finish_reason": "length",
                                 "message": {"role": "assistant", "content": tokens[0]},
                                 "logprobs": {"content": [first]} if body.get("logprobs") else None}],
                    "usage": {"prompt_tokens": ids["input_ids"].shape[1], "completion_tokens": 1,
                              "total_tokens": ids["input_ids"].shape[1] + 1}}
        finally:
            with b.lock:
                b.in_flight -= 1

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app: FastAPI):
    """Run `app` on 127.0.0.1 in a thread; yield its base URL (…/v1)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
