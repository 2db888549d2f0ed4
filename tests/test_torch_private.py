"""The private torch calls of erc/models/torch_private.py still exist and still mean what the packed encoder relies
on; a torch upgrade that changes one fails here, naming the call and the torch version."""

import pytest
import torch

from erc.models.torch_private import softmax_backward, storage_use_count


def _changed(call: str, what: str) -> str:
    return f"torch {torch.__version__}: {call} {what}; erc/models/torch_private.py needs another way to do it"


def test_storage_use_count_counts_the_tensors_that_use_a_storage() -> None:
    """WordEmbedding reuses its buffer only at a count of 1: the storage object alone, no tensor on it."""
    call = "torch._C._storage_Use_Count"
    if not hasattr(torch._C, "_storage_Use_Count"):
        pytest.fail(_changed(call, "no longer exists"))
    storage = torch.empty(10).untyped_storage()                  # the tensor is gone: only this reference is left
    counts = [storage_use_count(storage)]
    tensor = torch.empty(0).set_(storage, 0, (10,))
    counts.append(storage_use_count(storage))
    del tensor
    counts.append(storage_use_count(storage))
    assert counts == [1, 2, 1], _changed(call, f"counted {counts} for a storage alone, with a tensor on it and "
                                               f"alone again (expected [1, 2, 1])")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_backward_is_the_gradient_autograd_computes(dtype: torch.dtype) -> None:
    call = "torch.ops.aten._softmax_backward_data"
    if not hasattr(torch.ops.aten, "_softmax_backward_data"):
        pytest.fail(_changed(call, "no longer exists"))
    torch.manual_seed(0)
    scores = torch.randn(2, 3, 5, 7, dtype=dtype, requires_grad=True)
    scores.data[1, ..., 5:] = float("-inf")                      # masked keys, as attention's padding
    probs = torch.softmax(scores, dim=-1)
    grad = torch.randn_like(probs)
    (expected,) = torch.autograd.grad(probs, scores, grad)
    try:
        computed = softmax_backward(grad, probs.detach(), -1)
    except RuntimeError as err:
        pytest.fail(_changed(call, f"fails: {err}"))
    assert computed.dtype == dtype and torch.allclose(computed, expected), \
        _changed(call, "no longer gives softmax's gradient")
