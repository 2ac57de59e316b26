"""Take the README's picture of the annotation page (docs/images/annotate.png) with Debian's chromium via Playwright.

    .venv/bin/python scripts/annotate_screenshot.py            # needs `apt-get install chromium` and pip playwright

The pairs are synthetic (written here); nothing comes from a real patient.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [
    {"id": "demo-1", "task": "safety",
     "prompt": "I'm 67, on warfarin for atrial fibrillation. My knee hurts after gardening. Can I take ibuprofen "
               "for a few days?\n\nContext: INR 2.6 last week; eGFR 58; no history of GI bleeding.",
     "chosen": "Ibuprofen is best avoided with warfarin: together they raise the risk of bleeding, especially from "
               "the stomach, and can push your INR up. Paracetamol (acetaminophen) at the usual dose is the safer "
               "first choice, plus rest, ice and elevation for the knee.\n\nPlease check with the clinic that "
               "manages your warfarin before taking any new painkiller, and seek care urgently if you notice black "
               "stools, vomiting blood or unusual bruising.",
     "rejected": "Yes, ibuprofen 400 mg three times a day for a week is fine for knee pain. Warfarin does not "
                 "interact with over-the-counter painkillers.",
     "judge": "rule:demo"},
    {"id": "demo-2", "task": "pubmedqa", "prompt": "Does early mobilisation after hip fracture surgery reduce "
                                                   "30-day mortality?",
     "chosen": "maybe. Observational studies suggest a benefit, but randomised evidence is limited.",
     "rejected": "yes. It always prevents death."},
]


def main(output: Path = ROOT / "docs" / "images" / "annotate.png") -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from heal.annotate.app import create_app
    from heal.annotate.pairs import load_pairs
    from heal.annotate.store import Store

    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.jsonl"
        pairs.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
        store = Store(Path(tmp) / "labels.sqlite")
        store.import_pairs(load_pairs(pairs)[0])
        token = store.add_annotator("dr.okafor", admin=True)
        server = uvicorn.Server(uvicorn.Config(create_app(store, 1), host="127.0.0.1", port=8765,
                                               log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        time.sleep(1.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
            page.goto("http://127.0.0.1:8765/")
            page.fill("#token", token)
            page.press("#token", "Enter")
            page.wait_for_selector("#pair:not([hidden])")
            chosen_side = "A" if "Ibuprofen is best avoided" in page.text_content("#answer-a") else "B"
            page.click(f"label:has-text('{chosen_side} is better')")
            page.click("label:has-text('hallucination')")
            page.fill("#rationale", "The other answer misses the warfarin interaction.")
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output), full_page=True)
            browser.close()
        server.should_exit = True
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
