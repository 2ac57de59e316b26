"""The FastAPI app behind `heal serve`: an app factory around one generation backend (heal.models.generate).

    app = create_app(backend, "pubmedqa_sft", max_new_tokens=256)      # then uvicorn.run(app, …), or TestClient(app)
"""

from __future__ import annotations

import json
import threading
import time
from typing import Iterator

from heal.serve import schema

SSE_DONE = "data: [DONE]\n\n"


def _sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class Engine:
    """Serialises access to the backend (one model, one request at a time) and applies request settings."""

    def __init__(self, backend, max_new_tokens: int):
        self.backend = backend
        self.max_new_tokens = max_new_tokens
        self.lock = threading.Lock()

    def limit(self, requested: int | None) -> int:
        return min(requested or self.max_new_tokens, self.max_new_tokens)  # big client defaults are clamped

    def _seed(self, request: schema._Sampling) -> None:
        if request.seed is not None and (request.temperature or 0) > 0:
            import torch

            torch.manual_seed(request.seed)

    def generate(self, text: str, request: schema._Sampling) -> tuple[list, int]:
        with self.lock:
            self._seed(request)
            outs = self.backend.generate([text] * request.n, self.limit(request.token_limit()),
                                         request.temperature or 0.0, request.top_p or 1.0, request.stops(),
                                         desc="serving")
        return outs, outs[0].prompt_tokens

    def stream(self, text: str, request: schema._Sampling) -> Iterator[tuple[str, str | None]]:
        """(text delta, None) pieces as tokens arrive, then ("", finish_reason)."""
        from transformers import TextIteratorStreamer

        backend, stops = self.backend, request.stops()
        tokens = self.limit(request.token_limit())
        with self.lock:
            self._seed(request)
            ids, mask = backend._pad_left(backend._encode([text], tokens))
            streamer = TextIteratorStreamer(backend.tokenizer, skip_prompt=True, skip_special_tokens=True)
            result: dict = {}
            sampling = {"do_sample": True, "temperature": request.temperature, "top_p": request.top_p or 1.0} \
                if (request.temperature or 0) > 0 else {"do_sample": False, "temperature": None, "top_p": None,
                                                        "top_k": None}
            kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=tokens, streamer=streamer,
                          eos_token_id=backend.stop_ids or None, pad_token_id=backend.tokenizer.pad_token_id,
                          **sampling)
            if stops:
                kwargs.update(stop_strings=stops, tokenizer=backend.tokenizer)
            worker = threading.Thread(target=lambda: result.update(out=backend.model.generate(**kwargs)))
            worker.start()
            yield from _stop_aware(streamer, stops)
            worker.join()
            generated = result["out"].shape[1] - ids.shape[1] if "out" in result else tokens
            yield "", "stop" if generated < tokens or stops and _hit_stop(result, backend, ids, stops) else "length"


def _hit_stop(result: dict, backend, ids, stops: list[str]) -> bool:
    text = backend.tokenizer.decode(result["out"][0, ids.shape[1]:], skip_special_tokens=True)
    return any(s in text for s in stops)


def _stop_aware(pieces: Iterator[str], stops: list[str]) -> Iterator[tuple[str, None]]:
    """Pass text through, holding back just enough to never emit the start of a stop string; end at a stop string."""
    hold = max((len(s) for s in stops), default=1) - 1
    buffer, sent = "", 0
    for piece in pieces:
        buffer += piece
        cut = min((buffer.find(s) for s in stops if s in buffer), default=-1)
        if cut >= 0:
            if cut > sent:
                yield buffer[sent:cut], None
            for _ in pieces:  # drain: generation stops on its own stop_strings criterion
                pass
            return
        safe = len(buffer) - hold
        if safe > sent:
            yield buffer[sent:safe], None
            sent = safe
    if len(buffer) > sent:
        yield buffer[sent:], None


def create_app(backend, model_name: str, max_new_tokens: int = 256, api_key: str | None = None,
               aliases: tuple[str, ...] = ()):
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse

    engine = Engine(backend, max_new_tokens)
    app = FastAPI(title="HEAL model server", version="1")
    names = {model_name, *aliases}

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):  # OpenAI answers 400, not FastAPI's 422
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:])
        return JSONResponse(schema.error(f"{where}: {first.get('msg', 'invalid request')}", param=where or None),
                            status_code=400)

    @app.middleware("http")
    async def check_key(request: Request, call_next):
        if api_key and request.headers.get("authorization", "") != f"Bearer {api_key}":
            return JSONResponse(schema.error("invalid API key", "authentication_error", code="invalid_api_key"),
                                status_code=401)
        return await call_next(request)

    def unknown_model(name: str):
        if name in names:
            return None
        return JSONResponse(schema.error(f"model '{name}' is not served here; use '{model_name}'", param="model",
                                         code="model_not_found"), status_code=404)

    @app.get("/v1/models")
    def models():
        return schema.models_list(model_name)

    @app.post("/v1/chat/completions")
    def chat(request: schema.ChatRequest):
        if (response := unknown_model(request.model)) is not None:
            return response
        text = backend.render(request.conversation())
        if request.stream:
            return StreamingResponse(_chat_events(engine, text, request, model_name), media_type="text/event-stream")
        outs, prompt_tokens = engine.generate(text, request)
        return schema.chat_response(model_name, outs, prompt_tokens)

    @app.post("/v1/completions")
    def completions(request: schema.CompletionRequest):
        if (response := unknown_model(request.model)) is not None:
            return response
        prompts = request.prompts()
        if request.stream:
            if len(prompts) != 1 or request.n != 1:
                return JSONResponse(schema.error("streaming takes one prompt and n = 1", param="stream"), 400)
            return StreamingResponse(_completion_events(engine, prompts[0], request, model_name),
                                     media_type="text/event-stream")
        choices, prompt_tokens = [], 0
        for prompt in prompts:
            outs, tokens = engine.generate(prompt, request)
            choices.extend(outs)
            prompt_tokens += tokens
        return schema.completion_response(model_name, choices, prompt_tokens)

    return app


def _chat_events(engine: Engine, text: str, request, model: str) -> Iterator[str]:
    ident, created = schema.new_id("chatcmpl"), int(time.time())
    yield _sse(schema.chat_chunk(ident, model, created, {"role": "assistant", "content": ""}))
    for delta, finish in engine.stream(text, request):
        if finish is not None:
            yield _sse(schema.chat_chunk(ident, model, created, {}, finish))
        elif delta:
            yield _sse(schema.chat_chunk(ident, model, created, {"content": delta}))
    yield SSE_DONE


def _completion_events(engine: Engine, prompt: str, request, model: str) -> Iterator[str]:
    ident, created = schema.new_id("cmpl"), int(time.time())
    for delta, finish in engine.stream(prompt, request):
        if finish is not None or delta:
            yield _sse(schema.completion_chunk(ident, model, created, delta, finish))
    yield SSE_DONE
