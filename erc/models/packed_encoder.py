"""The fast path of :func:`erc.models.backbone.cls_vectors`: a BERT-layout encoder's first-token vectors for less work.

It computes what ``encoder(input_ids, attention_mask).last_hidden_state[:, 0]`` computes for ``RobertaModel`` and
``BertModel`` (transformers 5.x: ``embeddings``, ``encoder.layer[i]`` with ``attention.self.{query, key, value}``,
``attention.output``, ``intermediate``, ``output``), with savings that leave the result the same. It runs where
``classifier.fast_path`` says (:func:`erc.models.backbone.uses_packed_path`; by default on the CPU only, where it was
built and measured):

1. **Packed tokens.** The embeddings and every linear layer, dropout and layer norm run on the real tokens only,
   packed into one (tokens, hidden) matrix; only attention sees a padded (samples, heads, length, length) layout,
   where padded keys are masked out. Padding is never read by a real token, so its rows are never computed (ERC
   batches are largely padding: utterances of different lengths, prefixes cut at different turns).
   **On the CPU, attention runs in length groups:** the samples sorted by length and cut where padding them to one
   length would cost more than another round of small operations (:func:`length_groups`, exact), each group padded
   only to its own longest, so attention, too, computes little padding. Elsewhere attention keeps one group: on a
   GPU each group's extra kernel launches weigh more against faster kernels, and grouping was never tried there.
2. **The last layer at the first token.** Keys and values everywhere, but queries, attention output and feed-forward
   for the first token alone: the only position the classifiers read.
3. **The word-embedding gradient in one buffer kept between steps, on the CPU.** The dense gradient of the word
   embeddings (vocabulary x hidden: tens of MB) is otherwise a fresh allocation every backward pass, which the
   allocator takes from the kernel page by page, faulting each page in again on every step.
   :class:`WordEmbedding` writes it into a zeroed buffer it keeps for the weight (see there when it takes a fresh one).
4. **Dropout without torch's Bernoulli sampler on the CPU.** ``bernoulli_`` is slow for each draw, and attention's
   probabilities take many draws. :func:`keep_mask` compares uniform 32-bit integers, drawn eight bytes at a time,
   with a threshold: drop probability ``round(p * 2**32) / 2**32`` (0.1 ± 1e-10) and survivors scaled by
   the exact inverse keep rate, so every dropout keeps its expectation as ``nn.Dropout`` does, from torch's default
   generator (seeded, checkpointed, resumed as before). :class:`DropoutAttention` is attention with that dropout on
   the probabilities and a hand-written backward, where PyTorch's CPU ``scaled_dot_product_attention`` falls back to
   its unfused math path (about ten passes over the probabilities) as soon as dropout is on.

On a GPU, in half precision, or without dropout, attention is ``scaled_dot_product_attention`` (fused kernels) and
dropout is ``nn.functional.dropout``. Masks are different draws from those of the plain forward: the same
distribution, not the same numbers (eval mode gives the same numbers, to float rounding).
"""

from __future__ import annotations

import math
import weakref
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from erc.models.torch_private import softmax_backward, storage_use_count

_TWO_32 = 2**32


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """(bool keep mask of ``shape``, the survivors' scale): each element dropped with probability
    ``round(p * 2**32) / 2**32``, independently, and the scale ``1 / (1 - that)``, so ``x * mask * scale`` has the
    expectation ``x``. Drawn from torch's default generator of ``device``, as ``nn.Dropout`` is."""
    n = math.prod(shape)
    words = torch.empty((n + 1) // 2, dtype=torch.int64, device=device).random_(-(2**63), None)
    bits = words.view(torch.int32)[:n].view(shape)              # uniform over the 2**32 int32 values
    dropped = round(p * _TWO_32)
    return bits >= dropped - 2**31, _TWO_32 / (_TWO_32 - dropped)


class WordEmbedding(torch.autograd.Function):
    """``embedding(ids)`` of an ``nn.Embedding`` whose backward writes the weight's dense gradient into a buffer
    kept for that weight between steps, zeroed each time (a memset of resident memory instead of a fresh allocation
    that faults in every page). The gradient is the same as ``nn.Embedding``'s, ``padding_idx`` rows zero; autograd
    receives it as usual (hooks, accumulation and DDP see an ordinary gradient, which ``.grad`` then holds).

    The buffer is reused only when nothing else holds it: after ``zero_grad(set_to_none=True)`` (Lightning's and
    torch's default) the previous step's ``.grad`` is gone; while ``.grad`` or anyone else still has it (gradient
    accumulation, ``set_to_none=False``, a kept copy), a fresh buffer is made and the old one is left to its holder."""

    # id(weight) -> (a weak reference to the weight, its buffer); an entry goes when its weight does. (Not a
    # WeakKeyDictionary: it compares keys with ==, which tensors compute element by element.)
    _buffers: ClassVar[dict[int, tuple[weakref.ref, torch.UntypedStorage]]] = {}

    @staticmethod
    def forward(ctx, ids: torch.Tensor, weight: torch.Tensor, padding_idx: int | None) -> torch.Tensor:
        ctx.save_for_backward(ids, weight)
        ctx.padding_idx = padding_idx
        return F.embedding(ids, weight, padding_idx)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        ids, weight = ctx.saved_tensors
        rows, values = ids.flatten(), grad.reshape(-1, weight.shape[1])
        if ctx.padding_idx is not None:
            real = rows != ctx.padding_idx
            rows, values = rows[real], values[real]
        return None, WordEmbedding._zeroed_gradient(weight).index_add_(0, rows, values.to(weight.dtype)), None

    @staticmethod
    def _zeroed_gradient(weight: torch.Tensor) -> torch.Tensor:
        """A zero tensor shaped like ``weight`` on the weight's buffer when no other tensor uses it, else a new
        buffer. Only the storage is kept here (not a tensor), so the tensor returned is autograd's alone and becomes
        ``.grad`` without a copy."""
        buffers, key = WordEmbedding._buffers, id(weight)
        owner, storage = buffers.get(key, (None, None))
        # A storage's use count is 1 when only this table refers to it.
        if owner is None or owner() is not weight or storage.nbytes() != weight.numel() * weight.element_size() \
                or storage.device != weight.device or storage_use_count(storage) > 1:
            storage = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device).untyped_storage()
            buffers[key] = (weakref.ref(weight, lambda _, key=key: buffers.pop(key, None)), storage)
        return torch.empty(0, dtype=weight.dtype, device=weight.device).set_(storage, 0, weight.shape).zero_()


def word_embeddings(table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """``table(ids)``, through :class:`WordEmbedding` when its weight is trained on the CPU in training mode (where a
    fresh gradient costs page faults; a GPU's caching allocator reuses memory) and ``table`` has no option that
    changes the lookup or its gradient (``max_norm``, ``scale_grad_by_freq``, ``sparse``)."""
    weight = table.weight
    if not (table.training and torch.is_grad_enabled() and weight.requires_grad and weight.device.type == "cpu") \
            or table.max_norm is not None or table.scale_grad_by_freq or table.sparse:
        return table(ids)
    return WordEmbedding.apply(ids, weight, table.padding_idx)


def _uses_fast_dropout(x: torch.Tensor, p: float, training: bool) -> bool:
    return training and p > 0 and x.device.type == "cpu" and x.dtype == torch.float32 \
        and not torch.is_autocast_enabled("cpu")


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``nn.functional.dropout(x, p, training)``, by :func:`keep_mask` on float32 CPU tensors."""
    if not _uses_fast_dropout(x, p, training):
        return F.dropout(x, p, training)
    keep, scale = keep_mask(x.shape, p, x.device)
    return x * keep.to(x.dtype).mul_(scale)


class DropoutAttention(torch.autograd.Function):
    """``softmax(q k^T * scale + bias) -> dropout(p) -> @ v`` with the backward written out: it saves the softmax
    output and the dropout factor (0 or the survivors' scale) and recomputes the dropped probabilities, so dropout
    costs one multiply each way, and the softmax backward is one fused pass (:func:`softmax_backward`).
    q, k, v: (batch, heads, length, head size); bias: additive, 0 at keys to attend, -inf at padding, broadcastable to
    the scores."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, p: float,
                scale: float) -> torch.Tensor:
        scores = torch.matmul(q * scale, k.transpose(-1, -2))
        scores += bias
        probs = torch.softmax(scores, dim=-1)
        keep, survivors = keep_mask(probs.shape, p, probs.device)
        factor = keep.to(probs.dtype).mul_(survivors)                  # 0 or 1 / (1 - p): one multiply per use
        ctx.save_for_backward(q, k, v, probs, factor)
        ctx.scale = scale
        return torch.matmul(probs * factor, v)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v, probs, factor = ctx.saved_tensors
        grad = grad.contiguous()
        grad_v = torch.matmul((probs * factor).transpose(-1, -2), grad)
        grad_probs = torch.matmul(grad, v.transpose(-1, -2))
        grad_probs *= factor
        grad_scores = softmax_backward(grad_probs, probs, -1)
        grad_q = torch.matmul(grad_scores, k) * ctx.scale
        grad_k = torch.matmul(grad_scores.transpose(-1, -2), q * ctx.scale)
        return grad_q, grad_k, grad_v, None, None, None


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, p: float, scale: float,
              training: bool) -> torch.Tensor:
    """Scaled dot-product attention with the additive key mask ``bias`` (0 or -inf, broadcastable to the scores) and
    dropout ``p`` on the probabilities in training: :class:`DropoutAttention` where :func:`dropout` would take the
    fast path, else ``scaled_dot_product_attention``."""
    if _uses_fast_dropout(q, p, training):
        return DropoutAttention.apply(q, k, v, bias, p, scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p if training else 0.0, scale=scale)


# What one more length group costs, in elements of attention's (samples x heads x length x (length + head size))
# work: about 40 more small operations a layer, forward and backward. The optimum is flat (docs/performance.md,
# length groups), so this is a round value inside it.
_GROUP_COST = 30_000


def length_groups(extents: list[int], heads: int, head_size: int, group_cost: float) -> list[int]:
    """Where to cut ``extents`` (ascending: each sample's last real token + 1) into groups that attention pads to
    their own longest, minimising ``sum over groups(group_cost + samples * heads * length * (length + head_size))``:
    the groups' exclusive ends, the last ``len(extents)``. Exact, by dynamic programming over the distinct extents
    (a cut between equal extents saves nothing)."""
    ends = [i + 1 for i in range(len(extents)) if i + 1 == len(extents) or extents[i + 1] != extents[i]]
    best, cut = [0.0], [0]
    for j, end in enumerate(ends, 1):
        length = extents[end - 1]
        width = heads * length * (length + head_size)
        cost, i = min((best[i] + group_cost + (end - (ends[i - 1] if i else 0)) * width, i) for i in range(j))
        best.append(cost)
        cut.append(i)
    bounds, j = [], len(ends)
    while j:
        bounds.append(ends[j - 1])
        j = cut[j]
    return bounds[::-1]


class _Group:
    """Samples ``begin:end`` (in packing order) that attention runs on together, padded to the group's longest:
    their packed rows ``start:stop``, the padded length, those rows' positions in the (samples * length) padded
    layout (None when none of it is padding) and the additive key mask (0 at real keys, -inf at padding)."""

    def __init__(self, keep: torch.Tensor, begin: int, start: int, dtype: torch.dtype):
        self.samples, self.length = keep.shape
        self.begin, self.end, self.start = begin, begin + self.samples, start
        real = keep.flatten()
        self.stop = start + int(real.sum())
        self.positions = None if self.stop - start == real.numel() else real.nonzero().squeeze(1)
        self.bias = torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill_(~keep, float("-inf"))[
            :, None, None, :]

    def heads(self, packed: torch.Tensor, heads: int) -> torch.Tensor:
        """This group's rows of (real tokens, hidden) -> (samples, heads, length, head size), zeros at padding."""
        part = packed[self.start:self.stop]
        if self.positions is not None:
            part = part.new_zeros(self.samples * self.length, part.shape[-1]).index_copy_(0, self.positions, part)
        return part.view(self.samples, self.length, heads, -1).transpose(1, 2)

    def rows(self, context: torch.Tensor) -> torch.Tensor:
        """(samples, heads, length, head size) attention output -> this group's packed rows (real tokens, hidden)."""
        context = context.transpose(1, 2).reshape(self.samples * self.length, -1)
        return context if self.positions is None else context.index_select(0, self.positions)


class _Packing:
    """Where a (batch, length) layout's real tokens sit when packed into the rows of one matrix, and the length
    groups attention runs in: on the CPU those of :func:`length_groups` (samples sorted by length, then packed in
    that order, so that a group's rows are consecutive), elsewhere one group, the batch as it is."""

    def __init__(self, attention_mask: torch.Tensor, dtype: torch.dtype, heads: int, head_size: int):
        self.batch, self.length = attention_mask.shape
        keep = attention_mask.bool()
        self.order, ends, padded_to = None, [self.batch], [self.length]      # one group: the batch as it is
        if keep.device.type == "cpu":
            extents = (keep * torch.arange(1, self.length + 1)).amax(1).tolist()    # last real token + 1
            order = sorted(range(self.batch), key=extents.__getitem__)
            grouped = length_groups([extents[i] for i in order], heads, head_size, _GROUP_COST)
            if len(grouped) > 1:
                self.order = torch.tensor(order)
                ends, padded_to = grouped, [extents[order[end - 1]] for end in grouped]
        keep = keep if self.order is None else keep.index_select(0, self.order)
        self.groups: list[_Group] = []
        begin = start = 0
        for end, length in zip(ends, padded_to, strict=True):
            self.groups.append(_Group(keep[begin:end, :length], begin, start, dtype))
            begin, start = end, self.groups[-1].stop
        flat = keep.flatten().nonzero().squeeze(1)                     # each row's position in the sorted layout
        sample = flat // self.length if self.order is None else self.order[flat // self.length]
        self.rows = sample * self.length + flat % self.length             # packed row -> flat position in the batch
        lengths = keep.sum(1)
        self.first = torch.cumsum(lengths, 0) - lengths                  # packed row of each sample's token 0

    def pack(self, padded: torch.Tensor) -> torch.Tensor:
        """(batch, length, ...) -> (real tokens, ...)."""
        return padded.flatten(0, 1).index_select(0, self.rows)

    def unsort(self, per_sample: torch.Tensor) -> torch.Tensor:
        """A row per sample in packing order -> in the batch's order."""
        if self.order is None:
            return per_sample
        return per_sample.index_select(0, torch.argsort(self.order))


def _residual(block: nn.Module, update: torch.Tensor, residual: torch.Tensor, training: bool) -> torch.Tensor:
    """``BertSelfOutput`` / ``BertOutput``: dense, dropout, layer norm of the sum with the residual."""
    hidden = dropout(block.dense(update), block.dropout.p, training)
    return block.LayerNorm(hidden + residual)


def _feed_forward(layer: nn.Module, x: torch.Tensor, training: bool) -> torch.Tensor:
    intermediate = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(x))
    return _residual(layer.output, intermediate, x, training)


def _layer(layer: nn.Module, x: torch.Tensor, packing: _Packing, training: bool, last: bool = False) -> torch.Tensor:
    """One encoder layer on packed tokens ``x``, attention group by group; the ``last`` layer at each sample's first
    token only (a row per sample, in packing order)."""
    self_attention = layer.attention.self
    heads, p = self_attention.num_attention_heads, self_attention.dropout.p
    keys, values = self_attention.key(x), self_attention.value(x)
    if last:
        x = x.index_select(0, packing.first)
    queries = self_attention.query(x)
    contexts = []
    for group in packing.groups:
        if last:
            q = queries[group.begin:group.end].view(group.samples, 1, heads, -1).transpose(1, 2)
        else:
            q = group.heads(queries, heads)
        context = attention(q, group.heads(keys, heads), group.heads(values, heads), group.bias, p,
                            self_attention.scaling, training)
        contexts.append(context.transpose(1, 2).reshape(group.samples, -1) if last else group.rows(context))
    context = contexts[0] if len(contexts) == 1 else torch.cat(contexts)
    return _feed_forward(layer, _residual(layer.attention.output, context, x, training), training)


def _position_ids(embeddings: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """The position ids ``embeddings`` gives ``input_ids`` by default: RoBERTa's count the real tokens from
    ``padding_idx + 1`` (``create_position_ids_from_input_ids``), BERT's are the indices."""
    if hasattr(embeddings, "create_position_ids_from_input_ids"):
        return embeddings.create_position_ids_from_input_ids(input_ids, embeddings.padding_idx)
    return embeddings.position_ids[:, :input_ids.shape[1]].expand_as(input_ids)


def first_token_vectors(encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The last layer's first-token vectors of ``input_ids`` (every sample's token 0 is real), as the plain
    forward's ``last_hidden_state[:, 0]``; see the module docstring."""
    training = encoder.training
    embeddings, config = encoder.embeddings, encoder.config
    dtype = embeddings.word_embeddings.weight.dtype
    packing = _Packing(attention_mask, dtype, config.num_attention_heads,
                       config.hidden_size // config.num_attention_heads)
    # The embeddings (lookups, their sum, layer norm, dropout) of the real tokens alone, as one sequence: each token
    # with the position id the module gives it in the batch's layout.
    ids, positions = packing.pack(input_ids)[None], packing.pack(_position_ids(embeddings, input_ids))[None]
    x = embeddings(position_ids=positions, inputs_embeds=word_embeddings(embeddings.word_embeddings, ids))[0]
    *lower, last = encoder.encoder.layer
    for layer in lower:
        x = _layer(layer, x, packing, training)
    return packing.unsort(_layer(last, x, packing, training, last=True))
