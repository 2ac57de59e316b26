"""`heal annotate` in a real browser (Debian's chromium driven by Playwright): sign in, label with the mouse and the
keyboard, see the AI verdict only after voting, undo, skip, use the admin view, and check what the export holds."""

from __future__ import annotations

import os
import shutil

import pytest
from annotate_fixtures import server_thread, write_pairs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# skipped only outside CI: in CI (.ci/run sets CI) scripts/install.sh installs chromium and this test must run
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (apt-get install -y chromium; scripts/install.sh does it in CI)")


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright (in .[dev])")
    with sync_api.sync_playwright() as p:
        # the system browser, no download; --no-sandbox because CI runs as root
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def test_sign_in_label_with_mouse_and_keyboard_undo_skip_and_export(tmp_path, browser):
    from heal.annotate.app import create_app
    from heal.annotate.export import build_records
    from heal.annotate.pairs import load_pairs
    from heal.annotate.store import Store

    store = Store(tmp_path / "labels.sqlite")
    store.import_pairs(load_pairs(write_pairs(tmp_path / "pairs.jsonl", n=4, judged=True, long_prompt=True))[0])
    token = store.add_annotator("alice", admin=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    shown = {}  # pair id → (answer A text, answer B text) as this annotator saw them

    def current() -> int:
        pair_id = int(page.text_content("#pair-id").lstrip("#"))
        shown[pair_id] = (page.text_content("#answer-a"), page.text_content("#answer-b"))
        return pair_id

    def wait_for_pair(previous: int | None) -> int:
        page.wait_for_function("(p) => document.querySelector('#pair-id').textContent !== '#' + p",
                               arg=str(previous))
        return current()

    with server_thread(create_app(store, labels_per_pair=1)) as url:
        page.goto(url)
        page.fill("#token", "wrong-token-123")
        page.press("#token", "Enter")
        page.wait_for_selector("#login-error:has-text('unknown token')")
        page.fill("#token", token)
        page.click("button:has-text('Sign in')")
        page.wait_for_selector("#pair:not([hidden])")
        first = current()
        assert "<script>alert(1)</script>" in page.text_content("#prompt")  # shown as text, never run
        assert page.eval_on_selector("#prompt", "e => e.scrollHeight > e.clientHeight")  # long context scrolls
        assert "accuracy" in page.text_content("#axes")  # the constitution's axes beside the task
        assert page.is_hidden("#reveal")  # no AI verdict before the vote

        # pair 1 with the mouse: A, flag hallucination, a rationale
        page.click("label:has-text('A is better')")
        page.click("label:has-text('hallucination')")
        page.fill("#rationale", "A gives a safe dose")
        page.click("#submit")
        page.wait_for_selector("#reveal:not([hidden])")
        assert "AI judge preferred answer" in page.text_content("#reveal-text")
        page.click("#next")
        second = wait_for_pair(first)

        # pair 2 with the keyboard: B, flag unsafe, submit, next
        page.focus("body")
        for key in ("2", "u", "Enter"):
            page.keyboard.press(key)
        page.wait_for_selector("#reveal:not([hidden])")
        page.keyboard.press("Enter")
        third = wait_for_pair(second)

        # pair 3: tie … then undo it and choose A instead
        for key in ("3", "Enter"):
            page.keyboard.press(key)
        page.wait_for_selector("#reveal:not([hidden])")
        page.keyboard.press("Enter")
        fourth = wait_for_pair(third)
        page.keyboard.press("z")
        wait_for_pair(fourth)
        assert int(page.text_content("#pair-id").lstrip("#")) == third
        assert page.is_checked("input[name=choice][value=tie]")  # the withdrawn label, ready to change
        for key in ("1", "Enter"):
            page.keyboard.press(key)
        page.wait_for_selector("#reveal:not([hidden])")
        page.keyboard.press("Enter")
        assert wait_for_pair(third) == fourth

        # pair 4: skip → nothing left
        page.keyboard.press("s")
        page.wait_for_selector("#done:not([hidden])")
        assert page.text_content("#progress-text").startswith("3 / 3 labelled")

        # the admin view: progress per annotator, then an edit of the guidelines everyone sees
        page.click("#admin-toggle")
        page.wait_for_selector("#stats-table tbody tr")
        cells = page.eval_on_selector_all("#stats-table tbody td", "tds => tds.map(td => td.textContent)")
        assert cells[:4] == ["alice (admin)", "3", "1", "0"]
        assert "Fleiss' kappa" in page.text_content("#agreement")
        page.fill("#g-axes", "safety: Prefer the answer that cannot hurt the patient.")
        page.click("#guidelines-form button[type=submit]")
        page.wait_for_selector("#g-status:has-text('saved')")
        assert page.text_content("#axes") == "safety: Prefer the answer that cannot hurt the patient."
    assert dialogs == []

    records, outcomes = build_records(store)
    by_pair = {r["pair_id"]: r for r in records}
    assert set(by_pair) == {first, second, third} and outcomes == {"exported": 3, "unlabelled": 1}
    assert by_pair[first]["chosen"] == shown[first][0] and by_pair[first]["flag_hallucination"] == 1
    assert by_pair[first]["rationales"] == ["A gives a safe dose"]
    assert by_pair[second]["chosen"] == shown[second][1] and by_pair[second]["flag_unsafe"] == 1
    assert by_pair[third]["chosen"] == shown[third][0] and by_pair[third]["votes_tie"] == 0
