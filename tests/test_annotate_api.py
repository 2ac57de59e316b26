"""The annotation API against a throwaway database: authentication, assignment, validation, undo/skip, the AI verdict
shown only after the vote, guidelines, and the admin statistics."""

from __future__ import annotations

import sqlite3

import pytest
from annotate_fixtures import write_pairs
from fastapi.testclient import TestClient

from heal.annotate.app import create_app
from heal.annotate.pairs import load_pairs
from heal.annotate.store import Store


@pytest.fixture
def team(tmp_path):
    """A database with 6 judged pairs, admin alice and annotators bob and carol; a client per person."""
    store = Store(tmp_path / "labels.sqlite")
    store.import_pairs(load_pairs(write_pairs(tmp_path / "pairs.jsonl", n=6, judged=True))[0])
    app = create_app(store, labels_per_pair=2)
    tokens = {"alice": store.add_annotator("alice", admin=True), "bob": store.add_annotator("bob"),
              "carol": store.add_annotator("carol")}
    clients = {name: TestClient(app, headers={"Authorization": f"Bearer {t}"}) for name, t in tokens.items()}
    return store, app, tokens, clients


def label_all(client: TestClient, choice: str = "A") -> list[int]:
    """Label every pair this client is given; returns the pair ids in order."""
    done = []
    while (pair := client.get("/api/next").json()["pair"]) is not None:
        assert client.post("/api/labels", json={"pair_id": pair["pair_id"], "choice": choice}).status_code == 200
        done.append(pair["pair_id"])
    return done


def test_every_api_route_needs_a_valid_token(team):
    _, app, _, _ = team
    anonymous, wrong = TestClient(app), TestClient(app, headers={"Authorization": "Bearer not-a-real-token"})
    routes = [(method.upper(), path.replace("{pair_id}", "1")) for path, methods in app.openapi()["paths"].items()
              for method in methods]
    assert all(path.startswith("/api/") for _, path in routes)
    assert len(routes) == 8
    for method, path in routes:
        for client in (anonymous, wrong):
            assert client.request(method, path, json={}).status_code == 401, (method, path)
    assert anonymous.get("/").status_code == 200 and anonymous.get("/openapi.json").status_code == 200


def test_tokens_are_stored_only_as_hashes(team, tmp_path):
    store, _, tokens, _ = team
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("labels.sqlite*"))
    assert all(t.encode() not in blob for t in tokens.values())
    import hashlib

    hashes = {row[0] for row in store.read("SELECT token_sha256 FROM annotators")}
    assert hashes == {hashlib.sha256(t.encode()).hexdigest() for t in tokens.values()}


def test_each_pair_goes_to_labels_per_pair_different_annotators_once(team):
    store, _, _, clients = team
    seen = {name: label_all(client) for name, client in clients.items()}
    for name, pairs in seen.items():
        assert len(pairs) == len(set(pairs)), f"{name} saw a pair twice"
    # 6 pairs × 2 labels = 12 labels, each pair by exactly two different people
    rows = store.read("SELECT pair_id, COUNT(DISTINCT annotator_id) FROM labels GROUP BY pair_id")
    assert sorted(tuple(r) for r in rows) == [(p, 2) for p in range(1, 7)]
    assert sum(map(len, seen.values())) == 12
    assert clients["bob"].get("/api/me").json()["progress"]["remaining"] == 0


def test_an_annotator_cannot_read_or_write_anothers_pairs(team):
    _, _, _, clients = team
    alice, bob, carol = clients["alice"], clients["bob"], clients["carol"]
    first = alice.get("/api/next").json()["pair"]["pair_id"]
    assert bob.get("/api/next").json()["pair"]["pair_id"] == first  # second slot of the same pair
    assert carol.get("/api/next").json()["pair"]["pair_id"] != first  # both slots taken
    response = carol.post("/api/labels", json={"pair_id": first, "choice": "A"})
    assert response.status_code == 403 and "not assigned to you" in response.json()["detail"]
    assert carol.post(f"/api/pairs/{first}/skip").status_code == 403
    assert carol.post("/api/labels", json={"pair_id": 999, "choice": "A"}).status_code == 403  # no id probing
    assert alice.post("/api/labels", json={"pair_id": first, "choice": "B"}).status_code == 200
    assert bob.post("/api/undo").status_code == 409  # bob has no label; alice's is not his to undo
    assert alice.get("/api/me").json()["progress"]["labelled"] == 1


@pytest.mark.parametrize("body", [
    {"pair_id": 1, "choice": "C"}, {"pair_id": 1, "choice": "a"}, {"pair_id": 0, "choice": "A"},
    {"pair_id": 1, "choice": "A", "flags": ["rude"]}, {"pair_id": 1, "choice": "A", "rationale": "x" * 2001},
    {"pair_id": 1, "choice": "A", "annotator": "bob"}, {"choice": "A"}, {"pair_id": "one", "choice": "A"},
])
def test_invalid_labels_are_rejected_with_422(team, body):
    _, _, _, clients = team
    clients["alice"].get("/api/next")
    assert clients["alice"].post("/api/labels", json=body).status_code == 422
    assert clients["alice"].get("/api/me").json()["progress"]["labelled"] == 0


def test_ai_verdict_only_after_the_vote_and_in_the_annotators_order(team):
    store, _, _, clients = team
    orders = []
    for client in clients.values():
        while (pair := client.get("/api/next").json()["pair"]) is not None:
            assert set(pair) == {"pair_id", "prompt", "answer_a", "answer_b"}  # no verdict, judge or model names
            chosen = store.read("SELECT answer_1 FROM pairs WHERE id = ?", (pair["pair_id"],))[0][0]
            result = client.post("/api/labels", json={"pair_id": pair["pair_id"], "choice": "tie"}).json()
            judge_letter = "A" if pair["answer_a"] == chosen else "B"  # the judge chose the file's `chosen`
            assert result["ai_verdict"] == judge_letter
            orders.append(judge_letter)
    assert set(orders) == {"A", "B"}  # the A/B order is drawn per annotator, not the file's


def test_retry_is_idempotent_and_a_changed_label_needs_undo(team):
    store, _, _, clients = team
    alice = clients["alice"]
    pair = alice.get("/api/next").json()["pair"]["pair_id"]
    body = {"pair_id": pair, "choice": "B", "flags": ["unsafe", "phi"], "rationale": "  b is safer "}
    first, again = alice.post("/api/labels", json=body).json(), alice.post("/api/labels", json=body).json()
    assert first["label_id"] == again["label_id"]
    assert store.count("SELECT COUNT(*) FROM labels") == 1
    assert alice.post("/api/labels", json={**body, "choice": "A"}).status_code == 409
    undone = alice.post("/api/undo").json()
    assert undone["pair"]["pair_id"] == pair
    assert undone["undone"] == {"choice": "B", "flags": ["phi", "unsafe"], "rationale": "b is safer"}
    assert store.count("SELECT COUNT(*) FROM labels") == 0
    assert alice.get("/api/next").json()["pair"]["pair_id"] == pair  # back to the withdrawn pair
    assert alice.post("/api/labels", json={**body, "choice": "A"}).status_code == 200
    assert store.read("SELECT choice FROM labels")[0][0] in ("answer_1", "answer_2")
    assert alice.post("/api/undo").status_code == 200 and alice.post("/api/undo").status_code == 409


def test_skip_hands_the_pair_to_someone_else(team):
    _, _, _, clients = team
    alice, bob, carol = clients["alice"], clients["bob"], clients["carol"]
    first = alice.get("/api/next").json()["pair"]["pair_id"]
    assert bob.get("/api/next").json()["pair"]["pair_id"] == first
    assert alice.post(f"/api/pairs/{first}/skip").json()["progress"]["skipped"] == 1
    assert alice.post("/api/labels", json={"pair_id": first, "choice": "A"}).status_code == 409
    assert alice.get("/api/next").json()["pair"]["pair_id"] != first  # never shown again
    assert carol.get("/api/next").json()["pair"]["pair_id"] == first  # the freed slot


def test_guidelines_are_the_constitution_and_only_admins_edit_them(team):
    store, app, _, clients = team
    axes = [a["name"] for a in clients["bob"].get("/api/guidelines").json()["axes"]]
    assert axes == ["accuracy", "safety", "calibrated uncertainty", "scope", "referral"]
    new = {"preamble": "Prefer the safer answer.", "axes": [{"name": "safety", "text": "Never harmful."}]}
    assert clients["bob"].put("/api/guidelines", json=new).status_code == 403
    assert clients["alice"].put("/api/guidelines", json={"axes": []}).status_code == 422
    saved = clients["alice"].put("/api/guidelines", json=new).json()
    assert saved["updated_by"] == "alice"
    reopened = TestClient(create_app(Store(store.path), 2), headers=clients["bob"].headers)
    assert reopened.get("/api/guidelines").json()["axes"] == new["axes"]  # kept in the database


def test_admin_stats_agreement_and_judge_agreement(team):
    _, _, _, clients = team
    assert clients["bob"].get("/api/admin/stats").status_code == 403
    label_all(clients["alice"], "A")
    label_all(clients["bob"], "A")
    label_all(clients["carol"], "tie")
    stats = clients["alice"].get("/api/admin/stats").json()
    assert stats["labels"] == 12 and stats["pairs_complete"] == 6
    assert {a["name"]: a["labelled"] for a in stats["annotators"]} == {"alice": 6, "bob": 6, "carol": 0}
    # alice and bob each pressed A on the same 6 pairs; the A/B order is their own, so their stored choices agree
    # exactly where both saw the same order — percent agreement is a share, kappa is defined only with 2+ categories
    pair = stats["agreement"]["cohen"][0]
    assert pair["annotators"] == ["alice", "bob"] and pair["pairs"] == 6
    assert stats["agreement"]["fleiss"]["pairs"] == 6 and stats["agreement"]["fleiss"]["raters_per_pair"] == 2
    assert stats["judge"]["labels"] == 12 and stats["judge"]["decisive_labels"] == 12


def test_wal_and_full_sync(team):
    store, _, _, _ = team
    assert store.read("PRAGMA journal_mode")[0][0] == "wal"
    assert store.read("PRAGMA synchronous")[0][0] == 2  # FULL
    with pytest.raises(sqlite3.IntegrityError):  # one label per annotator and pair, enforced by the schema too
        with store.write() as conn:
            for _ in range(2):
                conn.execute("INSERT INTO labels (pair_id, annotator_id, choice, flags, rationale, created_at) "
                             "VALUES (1, 1, 'tie', '[]', '', 'now')")
