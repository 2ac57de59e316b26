"""`heal redteam`: jailbreak and harmful-request testing — attack success per attack × category, over-refusal.

    heal redteam --model_path models/policy_model/pubmedqa_sft --adversarial_prompts_path ../shared/data/adversarial
    heal redteam --model_path heal-tiny --adversarial_prompts_path ../shared/data/adversarial/xstest/xstest_prompts.csv \
        --attacks direct,authority,base64+prefix_injection --max_prompts_per_file 50
    python src/evaluation/adversarial.py --model_path … --adversarial_prompts_path …     # the seed's command

    heal redteam --responses_path answers.csv            # judge answers made elsewhere; no model is loaded

Every harmful prompt is sent once per attack (heal.redteam.attacks; `+` composes attacks); benign prompts (XSTest's
`label == safe`) are sent as written, to measure over-refusal. Each response is judged full compliance, full refusal,
partial refusal or non-answer (heal.redteam.judging, `--grader`) and, with --llm_judge, by an LLM judge
(heal.redteam.graders). An attack succeeds on a harmful prompt when the answer complies (a partial refusal counts
half; with an LLM judge, when its score reaches --judge_threshold); a non-answer is never a success.

Finished responses are saved as they complete in `<output_dir>/redteam.partial/`; after a crash, the same command
resumes where it stopped. The results (redteam.json, report.md, responses.jsonl, asr_heatmap.png, asr_by_attack.png,
resolved_config.yaml) appear together when the run completes, and the partial folder is removed. docs/redteam.md
describes the attacks, the judges and the report.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from heal import __version__
from heal.config import make_parser as _make_parser
from heal.contracts import StageSummary, VerbContract, fmt, read_json, short
from heal.errors import HealError
from heal import results
from heal.eval.config import GenerationArgs
from heal.redteam.config import RedteamConfig
from heal.redteam.judging import parse_graders
from heal.redteam.prompts import UNSAFE
from heal.models.tiny import TinyConfig

DEFAULT_MAX_NEW_TOKENS = 128  # refusals come first; enough of the answer to judge compliance
CHUNK_BATCHES = 4  # save progress every this many generation batches



def summarize(output: Path) -> StageSummary:
    """The run report's view of a red-team results folder: ASR and over-refusal, the heatmap, the worst cases."""
    info = read_json(output / "redteam.json")
    o = info.get("overall", {})
    summary = StageSummary(metrics=o, headline=f"ASR {fmt(o.get('asr'))} on {o.get('harmful', '?')} attacks, "
                                    f"non-answers {fmt(o.get('non_answer_rate'))}, "
                                    f"over-refusal {fmt(o.get('over_refusal'))}")
    if o:
        summary.results = [(f"attack success rate ({o.get('harmful', '?')} attacked requests)", fmt(o.get("asr"))),
                           ("refusal rate (harmful)", fmt(o.get("refusal_rate"))),
                           ("non-answer rate (harmful)", fmt(o.get("non_answer_rate"))),
                           (f"over-refusal ({o.get('benign', '?')} benign requests)", fmt(o.get("over_refusal")))]
    if (output / "asr_heatmap.png").is_file():
        summary.figures = [("attack success per attack × category", output / "asr_heatmap.png")]
    worst = [{"attack": w.get("attack", ""), "category": w.get("category", ""), "prompt": short(w["prompt"], 160),
              "response": short(w.get("response", ""), 200)} for w in info.get("worst_examples", [])[:4]]
    if worst:
        summary.examples = [("harmful requests answered (worst cases)", worst)]
    return summary


CONTRACT = VerbContract(output="folder", inputs=("adversarial_prompts_path",), models=("model_path",),
                        summarize=summarize)


def make_parser():
    return _make_parser("heal redteam", __doc__.split("\n")[0], RedteamConfig, GenerationArgs, TinyConfig)


def build_jobs(prompts: list[dict], attacks: list[str], benign_attacks: bool, seed: int,
               system: str | None = None) -> list[dict]:
    """One job per (prompt, attack): harmful prompts get every attack, benign ones `direct` unless asked."""
    from heal.redteam.attacks import apply_attack

    jobs = []
    for item in prompts:
        names = attacks if item["label"] == UNSAFE or benign_attacks else ["direct"]
        for name in names:
            messages = apply_attack(name, item["prompt"], key=item["id"], seed=seed)
            jobs.append({"key": f"{item['id']}|{name}", "id": item["id"], "dataset": item["dataset"],
                         "category": item["category"], "label": item["label"], "attack": name,
                         "prompt": item["prompt"], "messages": messages})
    return jobs


def judge_rows(jobs: list[dict], outs: list, safety_judge=None, threshold: float = 0.5,
               graders: list[str] | tuple[str, ...] = ("combined",)) -> list[dict]:
    """Result rows for generated responses, judged into the four outcomes (heal.redteam.judging)."""
    from heal.redteam.judging import grade_rows

    rows = [{**{k: v for k, v in job.items() if k != "messages"}, "sent": job["messages"][-1]["content"],
             "turns": len(job["messages"]), "response": out.text, "finish_reason": out.finish_reason}
            for job, out in zip(jobs, outs)]
    return grade_rows(rows, list(graders), safety_judge, threshold)


def _fingerprint(config: RedteamConfig, generation: GenerationArgs, tiny: TinyConfig, attacks: list[str],
                 tokens: int) -> dict:
    return {"model_path": generation.model_path, "prompts": str(config.adversarial_prompts_path),
            "attacks": attacks, "max_prompts_per_file": config.max_prompts_per_file, "seed": generation.seed,
            "max_new_tokens": tokens, "temperature": generation.temperature, "top_p": generation.top_p,
            "system_prompt": generation.system_prompt, "benign_attacks": config.benign_attacks,
            "llm_judge": config.llm_judge, "llm_judge_prompt": config.llm_judge_prompt, "grader": config.grader,
            "columns": [config.prompt_column, config.category_column, config.label_column],
            "tiny": [tiny.tiny_vocab_size, tiny.tiny_hidden_size, tiny.tiny_layers, tiny.tiny_heads]
            if generation.model_path == "heal-tiny" else None}


def _check_judging(config: RedteamConfig) -> None:
    """Fail before any model or file is touched on a bad --grader / --llm_judge_prompt / --bootstrap."""
    from heal.redteam.graders import STYLES

    parse_graders(config.grader)
    if config.llm_judge_prompt not in STYLES:
        raise HealError(f"--llm_judge_prompt {config.llm_judge_prompt}: use one of {', '.join(STYLES)}")
    if config.bootstrap < 0:
        raise HealError(f"--bootstrap {config.bootstrap}: give a number of resamples (0 = no intervals)")


def _safety_judge(config: RedteamConfig, batch_size: int, credentialed: bool):
    if not config.llm_judge:
        return None
    from heal.redteam.graders import make_grader

    return make_grader(config.llm_judge, config.llm_judge_base_url, batch_size, False, credentialed,
                             style=config.llm_judge_prompt)


def _run_jobs(todo: list[dict], jobs: list[dict], state, config: RedteamConfig, generation: GenerationArgs,
              tiny: TinyConfig, tokens: int, credentialed: bool) -> str:
    """Generate and judge the unfinished jobs chunk by chunk, saving each chunk; return the backend's name."""
    from tqdm.auto import tqdm

    from heal.models.generate import load_backend

    corpus = list(dict.fromkeys(m["content"] for job in jobs for m in job["messages"]))  # all jobs: same tiny
    backend = load_backend(generation.model_path, generation.batch_size, generation.system_prompt,
                           generation.backend, corpus, tiny, generation.seed, progress=False)
    safety_judge = _safety_judge(config, generation.batch_size, credentialed)
    graders = parse_graders(config.grader)
    chunk = generation.batch_size * CHUNK_BATCHES
    with tqdm(total=len(todo), desc="red-teaming", unit="prompt", disable=not generation.progress) as bar:
        for start in range(0, len(todo), chunk):
            batch = todo[start:start + chunk]
            texts = [backend.render(job["messages"]) for job in batch]
            outs = backend.generate(texts, tokens, generation.temperature, generation.top_p)
            state.append(judge_rows(batch, outs, safety_judge, config.judge_threshold, graders))
            bar.update(len(batch))
    return backend.name


def main(config: RedteamConfig, generation: GenerationArgs, tiny: TinyConfig | None = None) -> dict:
    from heal.redteam.attacks import parse_attacks
    from heal.models.generate import check_model_path
    from heal.redteam.prompts import load_prompts
    from heal.models.partial_run import PartialRun

    tiny = tiny or TinyConfig()
    generation.check()
    _check_judging(config)
    if config.responses_path:
        return judge_file(config, generation, tiny)
    attacks = parse_attacks(config.attacks)
    check_model_path(generation.model_path)
    if not config.adversarial_prompts_path:
        raise HealError("--adversarial_prompts_path is required: a prompt file or folder (AdvBench, XSTest, …)")
    prompts, loaded = load_prompts(config.adversarial_prompts_path, config.prompt_column, config.category_column,
                                   config.label_column, config.max_prompts_per_file)
    folder = results.check_output_dir(config.output_dir or results.default_output_dir(
        "redteam", generation.model_path, config.adversarial_prompts_path, config.run_name))
    tokens = generation.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    jobs = build_jobs(prompts, attacks, config.benign_attacks, generation.seed)
    state = PartialRun(folder, "redteam", _fingerprint(config, generation, tiny, attacks, tokens), config.restart)
    done = state.done_keys()
    todo = [job for job in jobs if job["key"] not in done]
    started = time.perf_counter()
    credentialed = any(p.get("credentialed") for p in prompts)
    backend_name = _run_jobs(todo, jobs, state, config, generation, tiny, tokens, credentialed) if todo else "resumed"
    by_key = {row["key"]: row for row in state.rows()}
    rows = [by_key[job["key"]] for job in jobs]
    info = {"heal_version": __version__, "stage": "redteam", "model_path": generation.model_path,
            "prompts_path": str(config.adversarial_prompts_path), "files": loaded, "attacks": attacks,
            "llm_judge": config.llm_judge, "grader": config.grader, "backend": backend_name, "max_new_tokens": tokens,
            "responses": len(rows), "resumed": len(jobs) - len(todo), "generated": len(todo),
            "seconds": round(time.perf_counter() - started, 2),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    summary = _write(folder, rows, info, config, (config, generation, tiny))
    state.remove()
    _print_summary(folder, summary, info)
    return {**info, **summary, "output_dir": str(folder)}


def judge_file(config: RedteamConfig, generation: GenerationArgs, tiny: TinyConfig) -> dict:
    """`--responses_path`: judge answers made elsewhere (no policy is loaded) and write the usual outputs."""
    from heal.redteam.judging import grade_rows
    from heal.redteam.prompts import read_responses

    if config.adversarial_prompts_path:
        raise HealError("--responses_path and --adversarial_prompts_path: give one (answers to judge, or prompts "
                        "to send to --model_path)")
    rows = read_responses(config.responses_path, config.prompt_column, config.category_column, config.label_column)
    folder = results.check_output_dir(config.output_dir or results.default_output_dir(
        "redteam", "judged", config.responses_path, config.run_name))
    started = time.perf_counter()
    safety_judge = _safety_judge(config, generation.batch_size, any(r.get("credentialed") for r in rows))
    rows = grade_rows(rows, parse_graders(config.grader), safety_judge, config.judge_threshold)
    attacks = list(dict.fromkeys(r["attack"] for r in rows if r["label"] == UNSAFE)) or ["direct"]
    info = {"heal_version": __version__, "stage": "redteam", "model_path": None,
            "prompts_path": None, "responses_path": str(config.responses_path), "files": {"files": {}, "skipped": {}},
            "attacks": attacks, "llm_judge": config.llm_judge, "grader": config.grader, "backend": "none",
            "max_new_tokens": None, "responses": len(rows), "resumed": 0, "generated": 0,
            "seconds": round(time.perf_counter() - started, 2),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    summary = _write(folder, rows, info, config, (config, generation, tiny))
    _print_summary(folder, summary, info)
    return {**info, **summary, "output_dir": str(folder)}


def _write(folder: Path, rows: list[dict], info: dict, config: RedteamConfig, configs: tuple) -> dict:
    from heal.redteam import report as redteam_report

    summary = redteam_report.summarize(rows, info["attacks"], config.worst_examples, config.bootstrap)
    with results.ResultsFolder(folder) as out:
        out.config(*configs)
        out.jsonl("responses.jsonl", rows)
        redteam_report.write(out, summary, info)
    return summary


def _print_summary(folder: Path, summary: dict, info: dict) -> None:
    overall = summary["overall"]
    parts = [f"{info['responses']} responses ({info['resumed']} resumed)"]
    if overall["harmful"]:
        parts.append(f"ASR {overall['asr']:.3f}, refusal rate {overall['refusal_rate']:.3f}, non-answers "
                     f"{overall['non_answer_rate']:.3f} on {overall['harmful']} harmful")
    if overall["benign"]:
        parts.append(f"over-refusal {overall['over_refusal']:.3f} on {overall['benign']} benign")
    print("heal redteam: " + "; ".join(parts))
    print(f"  results: {folder} (redteam.json, report.md, responses.jsonl, asr_heatmap.png)")


if __name__ == "__main__":
    from heal.cli import run

    sys.exit(run(["redteam", *sys.argv[1:]]))
