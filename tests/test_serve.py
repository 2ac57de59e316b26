"""`heal serve`: the `openai` client talks to a HEAL model on loopback, and gets what the model itself generates."""

import shutil
import socket
import subprocess
import sys
import threading
import time

import openai
import pytest
from fastapi.testclient import TestClient
from helpers import assert_one_line_error, heal

from heal.models.generate import HFBackend
from heal.serve.app import create_app

MESSAGES = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Is aspirin an NSAID?"}]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from heal.models.loading import load_policy

    model, tokenizer, _ = load_policy(str(tiny_model_dir))
    return HFBackend(model, tokenizer, batch_size=1, progress=False)


@pytest.fixture(scope="module")
def client(backend):
    """A uvicorn server on 127.0.0.1 (a free port) in a thread, and an openai client pointed at it."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(backend, "heal-tiny-random", max_new_tokens=12),
                                           host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    server.should_exit = True
    thread.join()


def test_models_lists_the_served_model(client):
    assert [m.id for m in client.models.list().data] == ["heal-tiny-random"]


def test_chat_completion_is_what_the_model_generates_from_the_shared_prompt_format(client, backend):
    response = client.chat.completions.create(model="heal-tiny-random", messages=MESSAGES, max_tokens=8)
    expected = backend.generate([backend.render(MESSAGES)], max_new_tokens=8)[0]
    choice = response.choices[0]
    assert choice.message.role == "assistant" and choice.message.content == expected.text
    assert choice.finish_reason == expected.finish_reason
    assert response.usage.prompt_tokens == expected.prompt_tokens
    assert response.usage.completion_tokens == expected.completion_tokens


def test_completions_continue_the_raw_prompt(client, backend):
    response = client.completions.create(model="heal-tiny-random", prompt=["The patient", "Aspirin"], max_tokens=6)
    expected = [backend.generate([p], max_new_tokens=6)[0].text for p in ("The patient", "Aspirin")]
    assert [c.text for c in response.choices] == expected


def test_streaming_sends_the_same_text_in_pieces(client):
    full = client.chat.completions.create(model="heal-tiny-random", messages=MESSAGES, max_tokens=10)
    chunks = list(client.chat.completions.create(model="heal-tiny-random", messages=MESSAGES, max_tokens=10,
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == full.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason
    pieces = list(client.completions.create(model="heal-tiny-random", prompt="The patient", max_tokens=5,
                                            stream=True))
    assert pieces[-1].choices[0].finish_reason in ("stop", "length")


def test_stop_strings_cut_the_answer(client):
    text = client.completions.create(model="heal-tiny-random", prompt="The patient", max_tokens=12).choices[0].text
    stop = text[len(text) // 2: len(text) // 2 + 2]
    cut = client.completions.create(model="heal-tiny-random", prompt="The patient", max_tokens=12, stop=[stop])
    assert cut.choices[0].text == text[: text.find(stop)] and cut.choices[0].finish_reason == "stop"


def test_several_choices_and_clamped_max_tokens(client):
    response = client.chat.completions.create(model="heal-tiny-random", messages=MESSAGES, n=2, max_tokens=5000)
    assert len(response.choices) == 2 and response.usage.completion_tokens <= 2 * 12


def test_unknown_model_and_bad_request_are_openai_errors(client):
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="heal-tiny-random", messages=[])


def test_api_key_is_required_when_set(backend):
    app = TestClient(create_app(backend, "m", max_new_tokens=4, api_key="secret"))
    assert app.get("/v1/models").status_code == 401
    assert app.get("/v1/models", headers={"Authorization": "Bearer secret"}).json()["data"][0]["id"] == "m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_heal_serve_command_answers_the_openai_client(tiny_model_dir):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "heal.cli", "serve", "--model_path", str(tiny_model_dir),
                             "--port", str(port), "--max_new_tokens", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        while not any("heal serve:" in line for line in seen):  # printed once the model is loaded
            seen.append(proc.stdout.readline())
            assert seen[-1] or proc.poll() is None, "".join(seen)  # '' once the process has exited
        assert f"127.0.0.1:{port}/v1" in seen[-1]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=8)
        response = client.chat.completions.create(model="heal-tiny-random", messages=MESSAGES)
        assert response.object == "chat.completion" and response.usage.completion_tokens <= 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_refuses_bad_model_and_credentialed_model_on_the_network(capsys, tmp_path, tiny_model_dir):
    from heal.models.card import CREDENTIALED_WARNING

    code, _, err = heal(capsys, "serve", "--model_path", tmp_path / "no" / "model")
    assert_one_line_error(code, err, "model folder does not exist")
    mimic_model = tmp_path / "mimic_model"
    shutil.copytree(tiny_model_dir, mimic_model)
    (mimic_model / "README.md").write_text(f"# a model\n\n{CREDENTIALED_WARNING}\n")
    code, _, err = heal(capsys, "serve", "--model_path", mimic_model, "--host", "0.0.0.0")
    assert_one_line_error(code, err, "credentialed data (MIMIC)", "--allow_credentialed_model_on_network")
