"""Built-in sample data: real source formats, deterministic, and learnable from the context."""

import json
from collections import Counter

from helpers import heal

from heal.data import io
from heal.data.pubmedqa import load_pqal, prepare
from heal.data.synthetic import make_pubmedqa


def test_cli_writes_ori_pqal_format_deterministically(tmp_path, capsys):
    paths = []
    for name, seed in (("a.json", "4"), ("b.json", "4"), ("c.json", "5")):
        code, _, _ = heal(capsys, "prep", "--dataset", "synthetic_pubmedqa", "--n", "50", "--seed", seed,
                          "--output_path", tmp_path / name)
        assert code == 0
        paths.append(tmp_path / name)
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    data = load_pqal(paths[0])  # validates the ori_pqal.json schema
    item = next(iter(data.values()))
    assert set(item) == {"QUESTION", "CONTEXTS", "LABELS", "MESHES", "YEAR", "reasoning_required_pred",
                         "reasoning_free_pred", "final_decision", "LONG_ANSWER"}
    assert all(len(pmid) == 8 and pmid.isdigit() for pmid in data)


def test_label_mix_follows_pqa_l(tmp_path):
    counts = Counter(item["final_decision"] for item in make_pubmedqa(2000, seed=0).values())
    assert 0.50 < counts["yes"] / 2000 < 0.60 and 0.29 < counts["no"] / 2000 < 0.39
    assert 0.08 < counts["maybe"] / 2000 < 0.14


def test_decision_is_learnable_from_the_context():
    """A bag-of-words classifier on the context alone predicts held-out decisions almost perfectly."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    items = list(make_pubmedqa(900, seed=1).values())
    texts = [" ".join(i["CONTEXTS"]) for i in items]
    labels = [i["final_decision"] for i in items]
    vectoriser = CountVectorizer(ngram_range=(1, 2), min_df=2)
    x = vectoriser.fit_transform(texts)
    model = LogisticRegression(max_iter=2000).fit(x[:600], labels[:600])
    assert model.score(x[600:], labels[600:]) > 0.95
    # ...while the question alone says nothing: the model must read the context
    q = vectoriser.transform([i["QUESTION"] for i in items])
    q_model = LogisticRegression(max_iter=2000).fit(q[:600], labels[:600])
    assert q_model.score(q[600:], labels[600:]) < 0.7


def test_label_noise_replaces_that_share_of_decisions():
    clean = make_pubmedqa(1000, seed=3)
    noisy = make_pubmedqa(1000, seed=3, label_noise=0.3)
    assert list(clean) == list(noisy)
    flipped = sum(1 for pmid in clean if clean[pmid]["final_decision"] != noisy[pmid]["final_decision"])
    assert 250 < flipped < 350
    changed = next(p for p in clean if clean[p]["final_decision"] != noisy[p]["final_decision"])
    assert noisy[changed]["LONG_ANSWER"] != clean[changed]["LONG_ANSWER"]  # the conclusion follows the noisy label


def test_synthetic_folds_file_drives_the_split(tmp_path, capsys):
    code, _, _ = heal(capsys, "prep", "--dataset", "synthetic_pubmedqa", "--n", "100", "--output_path",
                      tmp_path / "s.json", "--folds_path", tmp_path / "folds.json")
    assert code == 0
    folds = json.loads((tmp_path / "folds.json").read_text())["folds"]
    assert len(folds) == 10 and sum(len(f["dev"]) for f in folds.values()) == 100
    train, _ = prepare(tmp_path / "s.json", fold=2, part="train", folds_path=tmp_path / "folds.json")
    dev, _ = prepare(tmp_path / "s.json", fold=2, part="dev", folds_path=tmp_path / "folds.json")
    assert len(train) == 90 and len(dev) == 10
