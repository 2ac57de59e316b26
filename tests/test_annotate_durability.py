"""`kill -9` of `heal annotate serve` loses no acknowledged label, and a restart continues where each annotator was."""

from __future__ import annotations

import signal

import httpx
from annotate_fixtures import free_port, serve_process, wait_until_up, write_pairs

from heal.annotate.store import Store


def test_kill_9_loses_no_acknowledged_label_and_restart_continues(tmp_path):
    db, pairs = tmp_path / "labels.sqlite", write_pairs(tmp_path / "pairs.jsonl", n=12)
    store = Store(db)
    tokens = {name: store.add_annotator(name) for name in ("ann", "ben")}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve_process(db, pairs, port)
    acknowledged: dict[str, list[int]] = {"ann": [], "ben": []}
    try:
        wait_until_up(url, process=server)
        clients = {n: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {t}"}) for n, t in tokens.items()}
        for _ in range(4):
            for name, client in clients.items():
                pair = client.get("/api/next").json()["pair"]["pair_id"]
                response = client.post("/api/labels", json={"pair_id": pair, "choice": "B", "rationale": "ok"})
                assert response.status_code == 200
                acknowledged[name].append(pair)
        open_pair = {name: client.get("/api/next").json()["pair"]["pair_id"] for name, client in clients.items()}
        server.send_signal(signal.SIGKILL)  # no shutdown hook runs, no checkpoint is taken
        server.wait(timeout=10)
        _, stderr = server.communicate()
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == -signal.SIGKILL
    assert "Question" not in stderr and "paracetamol" not in stderr  # no prompt or answer text in the logs

    server = serve_process(db, None, port)  # the same database, no pairs file: it continues
    try:
        wait_until_up(url, process=server)
        for name, token in tokens.items():
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
            me = client.get("/api/me").json()
            assert me["progress"]["labelled"] == 4
            assert client.get("/api/next").json()["pair"]["pair_id"] == open_pair[name]  # where they were
        rows = Store(db).read("SELECT a.name, l.pair_id, l.choice, l.rationale FROM labels l JOIN annotators a "
                              "ON a.id = l.annotator_id ORDER BY l.id")
        assert {(r["name"], r["pair_id"]) for r in rows} == {(n, p) for n, ps in acknowledged.items() for p in ps}
        assert len(rows) == 8 and {r["rationale"] for r in rows} == {"ok"}
    finally:
        server.kill()
        server.wait(timeout=10)
