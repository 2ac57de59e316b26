import subprocess
import sys

import pytest
from helpers import HEAL_BIN, REPO, assert_one_line_error, heal

from heal.cli import VERBS

DESIGN_VERBS = ("prep", "sft", "label", "reward", "ppo", "dpo", "grpo", "eval", "redteam", "annotate", "serve",
                "pipeline", "quickstart")


def test_help_lists_every_design_verb(capsys):
    code, out, _ = heal(capsys, "--help")
    assert code == 0
    for verb in DESIGN_VERBS:
        assert f"\n  {verb} " in out


def test_help_imports_nothing_heavy():
    probe = ("import sys; from heal.cli import run; run(['--help']); "
             "heavy = [m for m in ('torch', 'transformers', 'trl', 'pandas', 'datasets') if m in sys.modules]; "
             "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out


def test_console_script_is_installed():
    out = subprocess.run([HEAL_BIN, "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("heal ")


@pytest.mark.parametrize("verb", [v for v, spec in VERBS.items() if spec.module is None])
def test_unbuilt_verbs_say_so_and_exit_2(capsys, verb):
    code, _, err = heal(capsys, verb, "--help")
    assert_one_line_error(code, err, "not built yet")


def test_unknown_verb(capsys):
    code, _, err = heal(capsys, "train")
    assert_one_line_error(code, err, "unknown verb 'train'", "prep")


def test_every_built_verb_has_make_parser_and_main():
    import importlib

    for name, verb in VERBS.items():
        if verb.module:
            module = importlib.import_module(verb.module)
            assert callable(module.make_parser) and callable(module.main), name
            assert module.make_parser().prog == f"heal {name}"


def test_bad_flag_is_one_line_exit_2(capsys, tmp_path):
    code, _, err = heal(capsys, "prep", "--dataset", "pubmedqa", "--output_path", tmp_path / "o.csv", "--bogus", "1")
    assert_one_line_error(code, err, "--bogus")


def test_unknown_dataset_is_one_line_exit_2(tmp_path):
    proc = subprocess.run([HEAL_BIN, "prep", "--dataset", "pubmedqa2", "--output_path", str(tmp_path / "o.csv")],
                          capture_output=True, text=True)
    assert_one_line_error(proc.returncode, proc.stderr, "invalid choice", "pubmedqa")


def test_config_yaml_sets_values_and_flags_override(tmp_path, capsys):
    from heal.data.prep import make_parser

    config = tmp_path / "prep.yaml"
    config.write_text("dataset: synthetic_pubmedqa\nn: 7\nseed: 3\noutput_path: a.json\n")
    (parsed,) = make_parser().parse(["--config", str(config), "--n", "9"])
    assert (parsed.dataset, parsed.n, parsed.seed, parsed.output_path) == ("synthetic_pubmedqa", 9, 3, "a.json")


def test_config_yaml_unknown_key_names_it(tmp_path, capsys):
    config = tmp_path / "prep.yaml"
    config.write_text("dataset: synthetic_pubmedqa\nn_items: 7\noutput_path: a.json\n")
    code, _, err = heal(capsys, "prep", "--config", config)
    assert_one_line_error(code, err, "n_items", str(config))


def test_config_yaml_missing_file(capsys, tmp_path):
    code, _, err = heal(capsys, "prep", "--config", tmp_path / "nope.yaml")
    assert_one_line_error(code, err, "nope.yaml", "not found")


def test_seed_entry_points_exist_and_forward():
    for script in ("src/data_preprocessing/preprocess_data.py", "src/training/sft.py", "src/training/reward_model.py",
                   "src/training/ppo.py", "src/evaluation/evaluate.py", "src/evaluation/adversarial.py"):
        assert (REPO / script).is_file(), script
        assert "heal.cli import run" in (REPO / script).read_text()


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    command = ci[-1].strip()
    assert "pytest" in command
    assert f"\n{command}\n" in readme


def test_every_shipped_prep_config_parses():
    from heal.data.prep import make_parser

    configs = sorted((REPO / "experiments" / "configs").glob("prep_*.yaml"))
    assert configs
    for path in configs:
        (config,) = make_parser().parse(["--config", str(path)])
        assert config.dataset and config.output_path, path
