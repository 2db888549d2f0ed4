"""The packed fast path in training: its dropout keeps nn.Dropout's distribution and expectation, its attention's
hand-written backward is the gradient of what it computes, and with dropout off it trains exactly as the plain
forward does (same outputs, same parameter gradients)."""

import itertools

import pytest
import torch

from erc.models import packed_encoder
from erc.models.backbone import build_encoder, cls_vectors
from erc.models.packed_encoder import (
    DropoutAttention,
    dropout,
    first_token_vectors,
    keep_mask,
    length_groups,
    word_embeddings,
)


def test_keep_mask_drops_at_rate_p_and_scales_survivors_to_the_same_expectation() -> None:
    torch.manual_seed(0)
    keep, scale = keep_mask((1000, 1000), 0.1, torch.device("cpu"))
    assert keep.dtype == torch.bool
    assert abs(1 - keep.float().mean().item() - 0.1) < 0.0015        # 5 standard deviations of 1e6 draws
    assert scale == pytest.approx(1 / 0.9, abs=1e-9)
    assert keep_mask((10,), 0.0, torch.device("cpu"))[0].all()


def test_keep_mask_comes_from_torchs_generator_so_a_seeded_run_repeats() -> None:
    torch.manual_seed(5)
    first = keep_mask((64, 64), 0.3, torch.device("cpu"))[0]
    torch.manual_seed(5)
    assert torch.equal(first, keep_mask((64, 64), 0.3, torch.device("cpu"))[0])
    assert not torch.equal(first, keep_mask((64, 64), 0.3, torch.device("cpu"))[0])


def test_dropout_zeroes_or_scales_each_element_and_is_the_identity_in_eval() -> None:
    torch.manual_seed(1)
    x = torch.rand(500, 400) + 1
    out = dropout(x, 0.25, training=True)
    kept = out != 0
    torch.testing.assert_close(out[kept], x[kept] / 0.75)
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    assert abs(out.mean().item() / x.mean().item() - 1) < 0.01
    assert dropout(x, 0.25, training=False) is x


def _math_attention(q, k, v, bias, keep, scale, survivors):
    probs = torch.softmax(q @ k.transpose(-1, -2) * scale + bias, dim=-1)
    return (probs * keep * survivors) @ v


def test_dropout_attention_computes_the_math_path_with_the_same_mask_and_its_gradient() -> None:
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 3, 7, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    bias = torch.zeros(2, 1, 1, 7, dtype=torch.float64)
    bias[1, ..., 5:] = float("-inf")                                      # two padded keys in the second sample

    def seeded(q, k, v):
        torch.manual_seed(9)                                              # the same mask on every call
        return DropoutAttention.apply(q, k, v, bias, 0.3, 0.5)

    torch.manual_seed(9)
    keep, survivors = keep_mask((2, 3, 7, 7), 0.3, torch.device("cpu"))
    torch.testing.assert_close(seeded(q, k, v), _math_attention(q, k, v, bias, keep, 0.5, survivors))
    assert torch.autograd.gradcheck(seeded, (q, k, v))


def _batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    ids = torch.randint(5, vocab, (4, 30))
    mask = torch.ones_like(ids)
    mask[1, 11:], mask[2, 4:], mask[3, 20:] = 0, 0, 0
    ids[mask == 0] = 1
    return ids, mask


@pytest.mark.parametrize("grouped", [False, True], ids=["one group", "a group per length"])
@pytest.mark.parametrize("backbone", ["tiny", "minilm"])
def test_without_dropout_training_on_the_packed_path_equals_the_plain_forward(
        backbone: str, grouped: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outputs and every parameter's gradient: the packed layout, the gathers and scatters, the length groups (the
    batch sorted by length, attention per group, the rows put back in the batch's order) and the last layer at the
    first token change the work, not the function."""
    monkeypatch.setattr(packed_encoder, "_GROUP_COST", 0 if grouped else 10**12)
    encoder = build_encoder(backbone, overrides={"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0})
    encoder.train()
    ids, mask = _batch(encoder.config.vocab_size)
    weights = torch.randn(encoder.config.hidden_size)

    def gradients(vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        encoder.zero_grad()
        (vectors @ weights).sum().backward()
        return {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}

    fast = first_token_vectors(encoder, ids, mask)
    plain = encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    torch.testing.assert_close(fast, plain, atol=2e-5, rtol=1e-4)
    fast_grads, plain_grads = gradients(fast), gradients(plain)
    # The last layer's query, attention output and feed-forward see only token 0 on both paths (the plain forward's
    # other positions get no gradient), so every parameter that gets a gradient gets the same one.
    assert fast_grads.keys() == plain_grads.keys()
    for name, plain_grad in plain_grads.items():                          # float rounding of sums over tokens
        torch.testing.assert_close(fast_grads[name], plain_grad, rtol=1e-3, atol=1e-6 * (1 + plain_grad.abs().max()),
                                   msg=name)


def test_length_groups_find_the_cheapest_cut_of_all() -> None:
    """Against every way to cut a sorted list into consecutive groups (2 ** (n - 1) of them)."""
    def cost(groups: list[list[int]], cost_per_group: float) -> float:
        return sum(cost_per_group + len(g) * 2 * g[-1] * (g[-1] + 8) for g in groups)

    generator = torch.Generator().manual_seed(5)
    for _ in range(200):
        n = int(torch.randint(1, 9, (), generator=generator))
        extents = sorted(torch.randint(1, 40, (n,), generator=generator).tolist())
        cost_per_group = float(torch.randint(0, 20_000, (), generator=generator))
        ends = length_groups(extents, 2, 8, cost_per_group)
        assert ends[-1] == n and ends == sorted(set(ends))
        found = cost([extents[a:b] for a, b in zip([0, *ends], ends)], cost_per_group)
        cheapest = min(cost([extents[a:b] for a, b in zip((0, *cuts), (*cuts, n))], cost_per_group)
                       for k in range(n) for cuts in itertools.combinations(range(1, n), k))
        assert found == pytest.approx(cheapest)


def test_a_batch_with_a_long_outlier_is_split_and_a_uniform_one_is_not() -> None:
    """At the default group cost: one 60-token utterance among 3-token ones gets its own group, so attention does not
    pad the short ones to 60; equal lengths stay one group in the batch's order."""
    outlier = torch.ones(16, 60, dtype=torch.long)
    outlier[1:, 3:] = 0
    split = packed_encoder._Packing(outlier, torch.float32, heads=12, head_size=32)
    assert [(g.samples, g.length) for g in split.groups] == [(15, 3), (1, 60)]
    uniform = packed_encoder._Packing(torch.ones(16, 60, dtype=torch.long), torch.float32, heads=12, head_size=32)
    assert len(uniform.groups) == 1 and uniform.order is None


def _grad_fns(tensor: torch.Tensor) -> set[str]:
    """The class names of every node of ``tensor``'s autograd graph."""
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return {type(node).__name__ for node in seen}


def test_cpu_training_with_dropout_takes_the_hand_written_attention_and_a_seed_repeats_it() -> None:
    encoder = build_encoder("tiny").train()
    ids, mask = _batch(encoder.config.vocab_size)
    torch.manual_seed(4)
    first = cls_vectors(encoder, ids, mask)
    torch.manual_seed(4)
    again = cls_vectors(encoder, ids, mask)
    other = cls_vectors(encoder, ids, mask)
    assert "DropoutAttentionBackward" in _grad_fns(first)
    assert torch.equal(first, again) and not torch.equal(first, other)
    with torch.no_grad():
        assert "DropoutAttentionBackward" not in _grad_fns(cls_vectors(encoder.eval(), ids, mask).requires_grad_())


def _embedding_steps(table: torch.nn.Embedding, batches: list[torch.Tensor], lookup) -> list[torch.Tensor]:
    """The weight gradient after each batch, with a fresh ``.grad`` per step as ``zero_grad(set_to_none=True)``
    leaves it; the lookup's output is weighted so that every row's gradient differs."""
    grads = []
    for ids in batches:
        table.weight.grad = None
        out = lookup(table, ids)
        (out * torch.arange(out.numel(), dtype=out.dtype).view_as(out).sin()).sum().backward()
        grads.append(table.weight.grad)
    return grads


def test_word_embedding_gradient_is_nn_embeddings_and_its_buffer_is_reused_once_released() -> None:
    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 8, padding_idx=1).train()
    batches = [torch.randint(0, 50, (4, 7)) for _ in range(3)]
    batches[0][:, -2:] = 1                                                  # padding: its row gets no gradient
    expected = _embedding_steps(table, batches, lambda t, ids: t(ids))
    got = _embedding_steps(table, batches, word_embeddings)
    for step, want in enumerate(expected):
        torch.testing.assert_close(got[step], want)
    assert not got[0][1].any()
    # Each step's .grad was dropped before the next backward, but the test kept them: no buffer was reused, and
    # the kept gradients were not zeroed under the test's feet (asserted above).
    assert len({g.data_ptr() for g in got}) == 3
    # Released (neither .grad nor anyone else holds the last one): the next step writes into the same memory,
    # zeroed first.
    pointer = got[-1].data_ptr()
    del got
    table.weight.grad = None
    again = _embedding_steps(table, batches[:2], word_embeddings)
    assert again[0].data_ptr() == pointer
    torch.testing.assert_close(again[0], expected[0])


def test_word_embedding_gradients_accumulate_when_grad_is_kept() -> None:
    torch.manual_seed(1)
    table = torch.nn.Embedding(30, 4).train()
    first, second = torch.randint(0, 30, (3, 5)), torch.randint(0, 30, (3, 5))
    word_embeddings(table, first).pow(2).sum().backward()
    word_embeddings(table, second).pow(2).sum().backward()                 # accumulation: .grad is still there
    expected = torch.zeros_like(table.weight)
    for ids in (first, second):
        weight = table.weight.detach().requires_grad_()
        torch.nn.functional.embedding(ids, weight).pow(2).sum().backward()
        expected += weight.grad
    torch.testing.assert_close(table.weight.grad, expected)
