"""The OpenAI-compatible judge against real HTTP servers on loopback running a real tiny model."""

import pytest
from openai_stub import Behaviour, free_port, make_app, serve

from heal.errors import HealError
from heal.feedback.cache import JudgmentCache
from heal.feedback.judges import JudgeItem, make_judge

ITEMS = [JudgeItem(f"Is drug {i} safe in pregnancy?", f"Answer one {i}", f"Answer two {i}") for i in range(3)]


@pytest.fixture(scope="module")
def judge_model(tmp_path_factory):
    """An (untrained) heal-tiny saved as a normal HF folder: real logits, instantly."""
    from heal.feedback.constitution import load_constitution
    from heal.models.tiny import TinyConfig, build_heal_tiny

    corpus = [load_constitution().pairwise_prompt(i.prompt, i.a, i.b) for i in ITEMS] * 5
    model, tokenizer = build_heal_tiny(corpus, TinyConfig(tiny_hidden_size=32, tiny_layers=1, tiny_heads=2))
    folder = tmp_path_factory.mktemp("judge_model")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(autouse=True)
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("HEAL_JUDGE_API_KEY", raising=False)


def judge_for(url, tmp_path, **options):
    return make_judge("openai:tiny-judge", base_url=url, cache=JudgmentCache(tmp_path / "cache.sqlite"), **options)


def test_judges_through_a_real_server_then_reruns_for_free(judge_model, tmp_path):
    behaviour = Behaviour()
    with serve(make_app(judge_model, behaviour)) as url:
        judgments = judge_for(url, tmp_path).compare(ITEMS)
        assert behaviour.answered == 6  # 3 pairs × 2 orders
        assert all(0.0 < j.p_ab < 1.0 and 0.0 < j.p_ba < 1.0 for j in judgments)  # from logprobs, not text
        rerun = judge_for(url, tmp_path)
        assert rerun.compare(ITEMS) == judgments
        assert behaviour.requests == 6 and rerun.calls == 0


def test_requests_run_concurrently(judge_model, tmp_path):
    behaviour = Behaviour(delay=0.3)
    with serve(make_app(judge_model, behaviour)) as url:
        judge_for(url, tmp_path, concurrency=4).compare(ITEMS)
    assert behaviour.max_in_flight >= 2


def test_retries_through_transient_500s(judge_model, tmp_path):
    behaviour = Behaviour(fail_first=2)
    with serve(make_app(judge_model, behaviour)) as url:
        judge_for(url, tmp_path, concurrency=1, max_retries=3).compare(ITEMS[:1])
    assert behaviour.answered == 2 and behaviour.requests == 4


def test_persistent_500s_fail_clearly_and_a_rerun_resumes(judge_model, tmp_path):
    behaviour = Behaviour(fail_after=3)  # three answers, then the server breaks
    with serve(make_app(judge_model, behaviour)) as url:
        with pytest.raises(HealError, match=r"HTTP 500.*rerun to resume"):
            judge_for(url, tmp_path, concurrency=1, max_retries=1).compare(ITEMS)
    assert behaviour.answered == 3
    healthy = Behaviour()
    with serve(make_app(judge_model, healthy)) as url:
        judge_for(url, tmp_path, concurrency=1).compare(ITEMS)
    assert healthy.requests == 3  # only the 6 − 3 judgments not paid for before


def test_timeout_is_a_clear_error(judge_model, tmp_path):
    behaviour = Behaviour(delay=3.0)
    with serve(make_app(judge_model, behaviour)) as url:
        with pytest.raises(HealError, match="timed out"):
            judge_for(url, tmp_path, timeout=0.5, max_retries=0).compare(ITEMS[:1])


def test_auth_failure(judge_model, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    behaviour = Behaviour(api_key="right")
    with serve(make_app(judge_model, behaviour)) as url:
        with pytest.raises(HealError, match="rejected the API key"):
            judge_for(url, tmp_path).compare(ITEMS[:1])
        monkeypatch.setenv("OPENAI_API_KEY", "right")
        assert len(judge_for(url, tmp_path).compare(ITEMS[:1])) == 1


def test_unknown_judge_model(judge_model, tmp_path):
    with serve(make_app(judge_model, Behaviour())) as url:
        judge = make_judge("openai:no-such-model", base_url=url, cache=JudgmentCache(tmp_path / "c.sqlite"))
        with pytest.raises(HealError, match="not found"):
            judge.compare(ITEMS[:1])


def test_unreachable_url(tmp_path):
    judge = judge_for(f"http://127.0.0.1:{free_port()}/v1", tmp_path, max_retries=0)
    with pytest.raises(HealError, match="unreachable"):
        judge.compare(ITEMS[:1])


def test_mimic_records_may_go_to_a_loopback_judge(judge_model, tmp_path):
    behaviour = Behaviour()
    with serve(make_app(judge_model, behaviour)) as url:
        judge_for(url, tmp_path).compare([JudgeItem("Discharge note ___", "a", "b", source="mimic")])
    assert behaviour.answered == 2


def test_free_text_completion_for_rubric_judges_is_cached_and_guarded(judge_model, tmp_path, monkeypatch):
    behaviour = Behaviour()
    with serve(make_app(judge_model, behaviour)) as url:
        judge = judge_for(url, tmp_path)
        texts = ["Grade this answer: ...", "Grade that answer: ..."]
        first = judge.complete(texts, max_tokens=8)
        assert len(first) == 2 and all(isinstance(t, str) and t for t in first)
        assert judge_for(url, tmp_path).complete(texts, max_tokens=8) == first
        assert behaviour.requests == 2
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    guarded = make_judge("openai:tiny-judge", base_url="https://judge.invalid/v1", credentialed=True)
    with pytest.raises(HealError, match="PhysioNet"):
        guarded.complete(["note ___"])
