"""CoMPM's work per step as the released code (rungjoo/CoMPM) does it, for the benchmarks that compare it with the
batched path (``train_throughput.py``, ``gpu_check.py``): one target per step; build the prefix string and tokenize
it; one CoM call; tokenize the speaker's earlier utterances, pad them without a mask and encode them in one PM call;
run the GRU over them; a zero track when there are none. Its own work per sample (the PM re-encoding every earlier
utterance for every target) is not the model's, so it has no MFU.
"""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F


def clipped_step(model, optimizer, loss) -> None:
    """One optimizer step on ``loss``, the gradient clipped at norm 10 (the reference's and the default schedule's)."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def reference_samples(data: list) -> list[tuple[Any, int]]:
    """(dialogue, target turn) of every utterance, shuffled: the released code's one target per step."""
    samples = [(d, t) for d in data for t in range(len(d))]
    random.Random(0).shuffle(samples)
    return samples


def reference_steps(model, samples: list[tuple[Any, int]], optimizer, device: str | torch.device) -> None:
    """CoMPM one target per step as the released code computes it (see the module docstring)."""
    tok = model.tokenizer
    labels = {name: i for i, name in enumerate(model.labels)}
    h0 = torch.zeros(2, 1, model.gru.hidden_size, device=device)

    def encode_right_truncated(text: str) -> list[int]:
        return [tok.cls_token_id, *tok.convert_tokens_to_ids(tok.tokenize(text)[-511:])]

    for d, t in samples:
        speakers: list[str] = []
        prefix, memory = "", []
        for j, u in enumerate(d.utterances[: t + 1]):
            if u.speaker not in speakers:
                speakers.append(u.speaker)
            prefix += f"<s{speakers.index(u.speaker) + 1}> " + u.text + " "
            if j < t and u.speaker == d.utterances[t].speaker:
                memory.append(encode_right_truncated(u.text))
        ids = torch.tensor([encode_right_truncated(prefix.strip())], device=device)
        context = model.context_model(ids).last_hidden_state[:, 0]
        if memory:
            width = max(len(m) for m in memory)
            padded = torch.tensor([m + [tok.pad_token_id] * (width - len(m)) for m in memory], device=device)
            cls = model.pm(padded).last_hidden_state[:, 0].unsqueeze(1)           # no attention mask
            track = _seq_first_gru(model.gru, cls, h0)[-1]                           # (steps, 1, hidden)
        else:
            track = torch.zeros(1, context.shape[-1], device=device)
        logits = model.head(context + track)
        target = torch.tensor([labels[d.utterances[t].label]], device=device)
        clipped_step(model, optimizer, F.cross_entropy(logits.float(), target))


def _seq_first_gru(gru, inputs, h0):
    """Our GRU is batch-first; a (steps, 1, hidden) sequence is the same sequence as (1, steps, hidden)."""
    out, _ = gru(inputs.transpose(0, 1), h0)
    return out.transpose(0, 1)
