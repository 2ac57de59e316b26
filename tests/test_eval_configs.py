"""Every shipped eval/redteam preset (experiments/configs/eval_*.yaml) parses with its verb's parser."""

import yaml
from helpers import REPO


def test_every_shipped_eval_config_parses():
    from heal.eval.evaluate import make_parser as eval_parser
    from heal.redteam.run import make_parser as redteam_parser

    configs = sorted((REPO / "experiments" / "configs").glob("eval_*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        raw = yaml.safe_load(path.read_text())
        parser = redteam_parser if "adversarial_prompts_path" in raw else eval_parser
        task, generation, _tiny = parser().parse(["--config", str(path)])
        assert generation.model_path, path
        assert getattr(task, "dataset_path", None) or getattr(task, "adversarial_prompts_path", None), path
        if hasattr(task, "modes"):
            task.modes()
            task.perturbation_names()
