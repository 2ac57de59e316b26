"""`heal ppo --share_backbone`: the value head on the policy's own trunk (no separate value model).

What must hold: the value loss's gradients reach both the head and the trunk, PPO updates train
the head, a checkpoint saves and restores it, the run says which value model it used, and a separate value model
cannot be asked for at the same time.
"""

import pytest
from helpers import assert_one_line_error, heal

from heal.data import io


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(sft_tiny_run, tmp_path, *extra):
    from heal.ppo import setup
    from heal.ppo.train import make_parser
    from heal.rl.prompts import load_prompts
    from heal.rl.rewards import parse_reward

    prompts = load_prompts(str(sft_tiny_run["data"]["train"]))[:32]
    script, training, model_args = make_parser().parse([
        "--model_name", str(sft_tiny_run["dir"]), "--reward", "rule:pubmedqa", "--output_dir", str(tmp_path / "out"),
        "--response_length", "6", "--per_device_train_batch_size", "8", "--max_steps", "3", "--share_backbone",
        "true", *extra])
    reward = parse_reward(script.reward, training.reward_model_path)
    return setup.build_run(script, training, model_args, reward, prompts, setup.batch_sizes(training, 1, len(prompts)),
                           credentialed=False, trackers=[])


def test_value_loss_reaches_the_head_and_the_trunk_and_updates_train_the_head(sft_tiny_run, tmp_path):
    import torch

    from heal.ppo.models import SharedTrunkPolicyAndValue
    from heal.ppo.setup import SHARED_VALUE_INIT
    from heal.ppo.train import ppo_update
    from heal.rl.rewards import sequence_inputs
    from heal.rl.sampling import encode_prompts, left_pad

    run = _run(sft_tiny_run, tmp_path)
    model = run.unwrapped
    assert isinstance(model, SharedTrunkPolicyAndValue) and not hasattr(model, "value_model")
    assert run.value_init == SHARED_VALUE_INIT and "--share_backbone" in run.value_init  # the card's "value model from"
    assert float(model.value_head.weight.detach().abs().sum()) == 0.0  # V ≡ 0 at the start
    # One PPO update trains the head away from zero.
    torch.manual_seed(0)
    ppo_update(run)
    assert float(model.value_head.weight.detach().abs().sum()) > 0.0
    # The value loss alone: gradients on the head and on the trunk's first layer.
    records = io.read_records(sft_tiny_run["data"]["dev"])[:4]
    query, query_mask = left_pad(encode_prompts(run.tokenizer, records, None, 64), run.tokenizer.pad_token_id)
    response = torch.randint(5, 100, (4, 5))
    inputs = sequence_inputs(query, query_mask, response, torch.ones_like(response))
    run.optimizer.zero_grad()
    _, values = model(*inputs, 5)
    assert values.shape == (4, 5)
    ((values - 1.0) ** 2).mean().backward()
    trunk = model.policy.model.layers[0].mlp.down_proj.weight
    assert model.value_head.weight.grad.abs().sum() > 0 and trunk.grad.abs().sum() > 0


def test_a_checkpoint_saves_and_restores_the_value_head(sft_tiny_run, tmp_path):
    import torch

    from heal.ppo import setup
    from heal.ppo.train import ppo_update

    run = _run(sft_tiny_run, tmp_path)
    torch.manual_seed(0)
    ppo_update(run)
    run.step += 1
    (tmp_path / "out").mkdir(exist_ok=True)
    setup.save_checkpoint(run, tmp_path / "out")
    trained = run.unwrapped.value_head.weight.detach().clone()
    fresh = _run(sft_tiny_run, tmp_path)
    assert not torch.equal(fresh.unwrapped.value_head.weight, trained)
    setup.load_checkpoint(fresh, str(tmp_path / "out" / "checkpoint-1"))
    assert torch.equal(fresh.unwrapped.value_head.weight, trained) and fresh.step == 1


def test_share_backbone_with_a_value_model_path_is_one_line_and_exit_2(sft_tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = heal(capsys, "ppo", "--model_name", str(sft_tiny_run["dir"]), "--reward", "rule:pubmedqa",
                        "--dataset_path", str(sft_tiny_run["data"]["train"]), "--share_backbone", "true",
                        "--value_model_path", str(sft_tiny_run["dir"]), "--output_dir", str(out))
    assert_one_line_error(code, err, "--share_backbone", "--value_model_path", "exclusive")
    assert not out.exists() or not any(out.iterdir())


def test_the_shared_trunk_reads_the_normed_last_layer_at_the_response_positions(sft_tiny_run, tmp_path):
    """The trimmed last layer (heal.models.trunk) gives the logits and the value-head input that the full forward
    gives (the final norm's output, which the LM head reads), eager and compiled alike."""
    import torch

    from heal.rl.rewards import sequence_inputs
    from heal.rl.sampling import encode_prompts, left_pad

    run = _run(sft_tiny_run, tmp_path, "--torch_compile", "true", "--torch_compile_backend", "eager")
    model = run.unwrapped
    torch.manual_seed(0)
    torch.nn.init.normal_(model.value_head.weight)  # non-zero values, so the comparison means something
    records = io.read_records(sft_tiny_run["data"]["dev"])[:4]
    rows = encode_prompts(run.tokenizer, records, None, 64)
    query, query_mask = left_pad([row[-(20 + 6 * i):] for i, row in enumerate(rows)], run.tokenizer.pad_token_id)
    response = torch.randint(5, 100, (4, 5))
    inputs = sequence_inputs(query, query_mask, response, torch.ones_like(response))
    with torch.no_grad():
        out = model.policy(*inputs, use_cache=False, output_hidden_states=True)
        expected = (out.logits[:, -6:-1], model.value_head(out.hidden_states[-1][:, -6:-1]).squeeze(-1))
        compiled = model(*inputs, 5)
        calls = model.__dict__.pop("_compiled")
        eager = model(*inputs, 5)
        model.__dict__["_compiled"] = calls
    for got in (compiled, eager):
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, expected))
