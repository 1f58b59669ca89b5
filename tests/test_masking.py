"""The masking helper zeroes exactly the chosen channels, per row if asked, and always cleans up."""

from __future__ import annotations

import pytest
import torch

from critical_neurons import Channel, NeuronMasker, UsageError
from critical_neurons.evaluation.generation import generate
from critical_neurons.model.loading import load_model

SITE = "model.layers.0.mlp.down_proj"
ACT = "model.layers.1.mlp.act_fn"


@pytest.fixture(scope="module")
def llama(tiny_model_path):
    return load_model(str(tiny_model_path("llama")))


def capture(model, names):
    """Forward hooks appending every output of ``names``; registered inside a masker, they see masked outputs."""
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    modules = dict(model.named_modules())
    handles = [modules[name].register_forward_hook(lambda m, i, o, name=name: seen[name].append(o.detach().clone())) for name in names]
    return seen, handles


def run(model, tokenizer, text="The polar bear hunts seals on the sea ice."):
    ids = tokenizer([text, text + " It is large."], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**ids).logits


def test_masks_exactly_the_chosen_channels(llama):
    model, tokenizer = llama
    clean, handles = capture(model, [SITE, ACT])
    run(model, tokenizer)
    for handle in handles:
        handle.remove()
    with NeuronMasker(model, [Channel(SITE, 3), Channel(SITE, 5), Channel(ACT, 7)]):
        masked, handles = capture(model, [SITE, ACT])
        run(model, tokenizer)
    for handle in handles:
        handle.remove()
    assert torch.all(masked[SITE][0][..., [3, 5]] == 0)
    keep = [c for c in range(clean[SITE][0].shape[-1]) if c not in (3, 5)]
    # Layer 0's down_proj output depends only on its own input: the other channels are untouched.
    assert torch.equal(masked[SITE][0][..., keep], clean[SITE][0][..., keep])
    assert torch.all(masked[ACT][0][..., 7] == 0) and not torch.all(clean[ACT][0][..., 7] == 0)


def test_hooks_are_removed_after_exit_and_after_errors(llama):
    model, tokenizer = llama
    reference = run(model, tokenizer)
    with pytest.raises(RuntimeError), NeuronMasker(model, [Channel(SITE, 3)]):
        raise RuntimeError("boom")
    assert torch.equal(run(model, tokenizer), reference)
    assert not any(module._forward_hooks for module in model.modules())


def test_per_row_masks_equal_separate_runs(llama):
    model, tokenizer = llama
    ids = tokenizer("The polar bear hunts seals on the sea ice.", return_tensors="pt").input_ids
    sets = [[Channel(SITE, 1)], [], [Channel(SITE, 2), Channel(ACT, 4)]]
    with torch.no_grad(), NeuronMasker.per_row(model, sets):
        batched = model(input_ids=ids.expand(3, -1)).logits
    for row, channels in enumerate(sets):
        with torch.no_grad(), NeuronMasker(model, channels):
            single = model(input_ids=ids).logits
        torch.testing.assert_close(batched[row], single[0], rtol=1e-5, atol=1e-5)


def test_generated_tokens_are_masked_too(llama):
    model, tokenizer = llama
    with NeuronMasker(model, [Channel(SITE, 3)]):
        seen, handles = capture(model, [SITE])
        generate(model, tokenizer, ["The polar bear", "Question: What is"], max_new_tokens=4, progress=False)
    for handle in handles:
        handle.remove()
    assert len(seen[SITE]) >= 4  # prompt pass plus one call per decode step
    assert all(torch.all(output[..., 3] == 0) for output in seen[SITE])


def test_unknown_module_and_out_of_range_channel_are_errors(llama):
    model, _ = llama
    with pytest.raises(UsageError, match="not in this model"):
        NeuronMasker(model, [Channel("model.layers.9.mlp.down_proj", 0)])
    with pytest.raises(UsageError, match="out of range"):
        NeuronMasker(model, [Channel(SITE, 10_000)])


def test_out_of_range_on_a_module_without_known_width_fails_at_run_time(llama):
    model, tokenizer = llama
    with pytest.raises(UsageError, match="out of range"), NeuronMasker(model, [Channel(ACT, 10_000)]):
        run(model, tokenizer)
    assert not any(module._forward_hooks for module in model.modules())
