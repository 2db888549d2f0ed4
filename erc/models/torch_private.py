"""The private torch calls ``erc.models`` depends on, in one place, so a torch upgrade that changes one breaks here
(and in ``tests/test_torch_private.py``, which names the call and the torch version) instead of deep in a training
step.

Each is used only where no public API does the same; the packed encoder (:mod:`erc.models.packed_encoder`) is the only
caller, and only on its CPU training path.
"""

from __future__ import annotations

import torch


def storage_use_count(storage: torch.UntypedStorage) -> int:
    """How many references the C++ side holds to ``storage`` (1 when only the caller's own reference exists).

    :class:`erc.models.packed_encoder.WordEmbedding` reuses a gradient buffer only when nothing else (a ``.grad``
    kept by gradient accumulation, a copy) still uses it; torch has no public accessor for a storage's use count
    (``torch._C._storage_Use_Count``)."""
    return torch._C._storage_Use_Count(storage._cdata)


def softmax_backward(grad_output: torch.Tensor, output: torch.Tensor, dim: int) -> torch.Tensor:
    """The gradient of ``softmax(x, dim)`` w.r.t. ``x`` from its ``output`` and the gradient of that output: one fused
    pass (``aten._softmax_backward_data``), where the public formula ``output * (grad - (grad * output).sum(dim))``
    takes three passes and two temporaries the size of the attention probabilities.
    :class:`erc.models.packed_encoder.DropoutAttention`'s hand-written backward calls it."""
    return torch.ops.aten._softmax_backward_data(grad_output, output, dim, output.dtype)
