"""Rewrite src/heal/help/<verb>.txt from each verb's parser (run it after changing a flag or its help text).

    .venv/bin/python scripts/update_help.py
"""

from heal.cli import HELP_DIR, VERBS, render_help

if __name__ == "__main__":
    HELP_DIR.mkdir(exist_ok=True)
    for name, verb in VERBS.items():
        if verb.module:
            (HELP_DIR / f"{name}.txt").write_text(render_help(name), encoding="utf-8")
            print(f"{HELP_DIR / name}.txt")
