"""`heal serve`: an OpenAI-compatible HTTP server for a HEAL model, so garak, promptfoo, inspect-ai or the `openai`
client can test it.

    heal serve --model_path models/policy_model/pubmedqa_sft                 # http://127.0.0.1:8000/v1
    python -c "from openai import OpenAI; c = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='-'); \
print(c.chat.completions.create(model='pubmedqa_sft', messages=[{'role': 'user', 'content': 'Hi'}]))"

Endpoints: GET /v1/models, POST /v1/chat/completions and POST /v1/completions, both with `stream: true` (server-sent
events, as OpenAI sends them). Chat messages are rendered by heal.models.prompting — the formatting the model was
trained with; /v1/completions continues the raw prompt text, as OpenAI's completions endpoint does. Decoding is
greedy unless the request sets a temperature. Requests are served one at a time (one model, one lock): for
throughput, serve the same folder with `vllm serve <model folder>`, which speaks the same API.

The server binds to loopback by default. A model trained on credentialed data (MIMIC) is never served on another
interface unless --allow_credentialed_model_on_network is passed (PhysioNet's data use agreement); an --api_key
(or HEAL_SERVE_API_KEY) makes every request present it as a Bearer token.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from heal.config import make_parser as _make_parser
from heal.errors import HealError
from heal.models.tiny import TinyConfig


@dataclass
class ServeConfig:
    model_path: str | None = field(default=None, metadata={
        "help": "Model to serve: a folder a HEAL stage wrote, a Hub id, or heal-tiny (untrained; for trying clients)."})
    host: str = field(default="127.0.0.1", metadata={
        "help": "Interface to bind: 127.0.0.1 (this machine only, the default) or 0.0.0.0 (every interface)."})
    port: int = field(default=8000, metadata={"help": "TCP port (0: any free port, printed at start)."})
    served_model_name: str | None = field(default=None, metadata={
        "help": "Model id clients send and /v1/models lists (default: the model folder's name)."})
    max_new_tokens: int = field(default=256, metadata={
        "help": "Answer length when a request gives no max_tokens; also the most a request may ask for."})
    system_prompt: str | None = field(default=None, metadata={
        "help": "System message when a chat request has none (default: the one the model was trained with)."})
    api_key: str | None = field(default=None, metadata={
        "help": "Require this Bearer token on every request (default: HEAL_SERVE_API_KEY, else no key)."})
    allow_credentialed_model_on_network: bool = field(default=False, metadata={
        "help": "Serve a model trained on MIMIC on a non-loopback --host anyway. Only for machines and users "
                "covered by the PhysioNet data use agreement."})
    seed: int = field(default=0, metadata={"help": "Seed for sampling (requests may pass their own)."})


def make_parser():
    return _make_parser("heal serve", __doc__.split("\n")[0], ServeConfig, TinyConfig)


def served_name(config: ServeConfig) -> str:
    from heal.results import slug

    return config.served_model_name or slug(config.model_path or "heal", limit=64)


def model_is_credentialed(model_path: str) -> bool:
    """The model's own records say it was trained on credentialed data (run file or model card)."""
    import json

    from heal.models.card import CREDENTIALED_WARNING

    folder = Path(model_path)
    run = folder / "heal_run.json"
    if run.is_file():
        try:
            if json.loads(run.read_text(encoding="utf-8")).get("credentialed"):
                return True
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    card = folder / "README.md"
    return card.is_file() and CREDENTIALED_WARNING in card.read_text(encoding="utf-8", errors="replace")


def host_is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(config: ServeConfig, source: str) -> None:
    if source == "local" and model_is_credentialed(config.model_path) and not host_is_loopback(config.host) \
            and not config.allow_credentialed_model_on_network:
        raise HealError(f"--host {config.host}: {config.model_path} was trained on credentialed data (MIMIC) and may "
                        "reproduce note text; serve it on 127.0.0.1, or pass --allow_credentialed_model_on_network "
                        "if everyone who can reach this host is covered by the PhysioNet data use agreement")


def main(config: ServeConfig, tiny: TinyConfig | None = None) -> None:
    import uvicorn

    from heal.models.generate import check_model_path, load_backend
    from heal.serve.app import create_app

    source = check_model_path(config.model_path)
    check_host(config, source)
    if not 0 <= config.port <= 65535 or config.max_new_tokens < 1:
        raise HealError("--port must be 0-65535 and --max_new_tokens at least 1")
    corpus = ["Hello. How can I help you today?"] if source == "heal-tiny" else None
    backend = load_backend(config.model_path, batch_size=1, system=config.system_prompt, backend="hf", corpus=corpus,
                           tiny=tiny, seed=config.seed, progress=False)
    api_key = config.api_key or os.environ.get("HEAL_SERVE_API_KEY") or None
    app = create_app(backend, served_name(config), config.max_new_tokens, api_key, aliases=(config.model_path,))
    print(f"heal serve: {served_name(config)} at http://{config.host}:{config.port}/v1 "
          f"(OpenAI-compatible; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    from heal.cli import run

    sys.exit(run(["serve", *sys.argv[1:]]))
