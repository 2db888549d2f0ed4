"""CoMPM: the batched, cached model equals a plain per-utterance computation that follows the reference
algorithm step by step (prefix string, right truncation, one PM call per earlier same-speaker utterance,
a GRU over them), and its input construction keeps the details that matter."""

from __future__ import annotations

import pytest
import torch

from erc.data import Dialogue, Utterance, load_benchmark
from erc.models.compm import CoMPM
from erc.models.context import speaker_numbers


def dialogue(turns: list[tuple[str, str, str]], did: str = "d") -> Dialogue:
    return Dialogue(id=did, utterances=[Utterance(*turn) for turn in turns], benchmark="meld", split="train")


TOY = [
    dialogue([("Ross", "Hi Rachel, how are you?", "neutral"), ("Rachel", "Oh my God! Ross!", "surprise"),
              ("Ross", "I missed you so much...", "sadness"), ("Monica", "Guys, dinner's ready.", "neutral"),
              ("Rachel", "Great, I'm starving!", "joy"), ("Ross", "Me too.  ", "joy"),
              ("Rachel", "  Wait, what?", "surprise")], "toy1"),
    dialogue([("Joey", "How you doin'?", "joy"), ("Joey", "Hello?", "neutral"), ("Chandler", "No.", "anger"),
              ("Joey", "Fine!", "anger")], "toy2"),
]


@pytest.fixture(scope="module")
def model() -> CoMPM:
    torch.manual_seed(0)
    return CoMPM("meld", backbone="tiny").eval()


def reference_logits(model: CoMPM, d: Dialogue, t: int, max_length: int = 512) -> torch.Tensor:
    """The reference algorithm for one target utterance, written out plainly."""
    tok = model.tokenizer
    order: list[str] = []
    for u in d.utterances:
        if u.speaker not in order:
            order.append(u.speaker)
    prefix = ""
    for u in d.utterances[: t + 1]:
        prefix += f"<s{order.index(u.speaker) + 1}> " + u.text + " "
    tokens = tok.tokenize(prefix.strip())[-(max_length - 1):]
    ids = [tok.cls_token_id, *tok.convert_tokens_to_ids(tokens)]
    context = model.context_model(torch.tensor([ids])).last_hidden_state[:, 0]
    speaker = d.utterances[t].speaker
    cls_vectors = []
    for u in d.utterances[:t]:
        if u.speaker == speaker:
            pm_ids = [tok.cls_token_id, *tok.convert_tokens_to_ids(tok.tokenize(u.text)[-(max_length - 1):])]
            cls_vectors.append(model.pm(torch.tensor([pm_ids])).last_hidden_state[:, 0])
    if cls_vectors:
        hidden = model.gru.hidden_size
        h0 = torch.zeros(2, 1, hidden)
        steps = torch.stack(cls_vectors, 0)                              # (seq, 1, hidden): sequence-first
        seq_first = torch.nn.GRU(hidden, hidden, num_layers=2)
        seq_first.load_state_dict(model.gru.state_dict())
        seq_first.eval()
        gru_out, _ = seq_first(steps, h0)
        track = gru_out[-1]
    else:
        track = torch.zeros(1, context.shape[-1])
    return model.head(context + track)[0]


@torch.no_grad()
def test_batched_equals_per_utterance_reference(model: CoMPM, benchmark_data) -> None:
    real = load_benchmark("meld", "dev", benchmark_data)[:6]
    dialogues = TOY + real
    samples = model.encode(dialogues)
    batched = torch.cat([model(model.collate(samples[i:i + 13])) for i in range(0, len(samples), 13)])
    reference = torch.stack([reference_logits(model, d, t) for d in dialogues for t in range(len(d))])
    assert batched.shape == reference.shape == (sum(len(d) for d in dialogues), 7)
    torch.testing.assert_close(batched, reference, atol=1e-5, rtol=1e-4)
    # The check has teeth: logits differ across targets, and the speaker memory changes them.
    assert batched.std(0).min() > 1e-4
    ids = model.collate(samples[:7])
    without_memory = model.head(model.context_model(input_ids=ids["input_ids"], attention_mask=ids[
        "attention_mask"]).last_hidden_state[:, 0])
    assert (without_memory - batched[:7]).abs().max() > 1e-4


@torch.no_grad()
def test_batch_of_one_equals_large_batch(model: CoMPM) -> None:
    samples = model.encode(TOY)
    one = torch.cat([model(model.collate([s])) for s in samples])
    many = model(model.collate(samples[::-1])).flip(0)
    torch.testing.assert_close(one, many, atol=1e-5, rtol=1e-4)


def test_prefix_ids_equal_whole_string_tokenization(model: CoMPM, benchmark_data) -> None:
    tricky = dialogue([("A", "", "neutral"), ("B", "  leading and trailing  ", "joy"), ("A", "<mask> it's ok?!", "joy"),
                       ("C", "Y'know... 'cause", "fear"), ("B", "end with space ", "joy"), ("A", "\ttab", "neutral")])
    dialogues = load_benchmark("meld", "train", benchmark_data)[:150] + TOY + [tricky]
    tok = model.tokenizer
    for s in model.encode(dialogues):
        d = dialogues[[x.id for x in dialogues].index(s.dialogue.id)]
        order = speaker_numbers([u.speaker for u in d.utterances])
        text = "".join(f"<s{order[i] + 1}> {u.text} " for i, u in enumerate(d.utterances[: s.target + 1])).strip()
        expected = [tok.cls_token_id, *tok.convert_tokens_to_ids(tok.tokenize(text))[-511:]]
        assert model.context_ids(s) == expected, (d.id, s.target, text)


def test_truncation_keeps_the_tail_and_adds_only_cls(model: CoMPM) -> None:
    long_turns = [("A" if i % 2 else "B", f"utterance number {i} " + "word " * 40, "neutral") for i in range(20)]
    samples = model.encode([dialogue(long_turns)])
    last = samples[-1]
    ids = model.context_ids(last)
    assert len(ids) == 512 and last.length == 512
    assert ids[0] == model.tokenizer.cls_token_id and model.tokenizer.eos_token_id not in ids
    decoded = model.tokenizer.decode(ids[1:])
    assert decoded.endswith("<s2> utterance number 19 " + ("word " * 40).strip())
    assert "utterance number 0 " not in decoded            # the oldest context is what gets dropped
    short = samples[0]
    assert model.tokenizer.decode(model.context_ids(short)[1:]) == "<s1> " + long_turns[0][1].strip()


def test_speakers_numbered_by_first_appearance(model: CoMPM) -> None:
    assert speaker_numbers(["Ross", "Rachel", "Ross", "Monica", "Rachel"]) == [0, 1, 0, 2, 1]
    d = dialogue([("Zed", "a", "neutral"), ("Amy", "b", "neutral"), ("Zed", "c", "neutral"), ("Bob", "d", "joy")])
    text = model.tokenizer.decode(model.context_ids(model.encode([d])[-1])[1:])
    assert text == "<s1> a <s2> b <s1> c <s3> d"


@torch.no_grad()
def test_zero_track_vector_for_a_first_utterance(model: CoMPM) -> None:
    samples = model.encode(TOY[:1])
    batch = model.collate(samples)
    context = model.context_model(input_ids=batch["input_ids"],
                                  attention_mask=batch["attention_mask"]).last_hidden_state[:, 0]
    track = model.track_vectors(batch, context)
    first = [t for t, s in enumerate(samples) if s.target == min(
        j for j in range(len(TOY[0])) if TOY[0].utterances[j].speaker == TOY[0].utterances[s.target].speaker)]
    assert first == [0, 1, 3]                               # Ross, Rachel, Monica speak for the first time
    assert torch.all(track[first] == 0)
    later = [t for t in range(len(samples)) if t not in first]
    assert torch.all(track[later].abs().sum(-1) > 0)


def test_variants(benchmark_data) -> None:
    frozen = CoMPM("meld", backbone="tiny", pm="frozen")
    assert not any(p.requires_grad for p in frozen.pm.parameters())
    assert all(p.requires_grad for p in frozen.context_model.parameters())
    batch = frozen.collate(frozen.encode(TOY))
    frozen.train()
    frozen.loss(batch, frozen(batch)).backward()
    assert frozen.gru.weight_ih_l0.grad is not None and all(p.grad is None for p in frozen.pm.parameters())
    with pytest.raises(ValueError, match="pm="):
        CoMPM("meld", backbone="tiny", pm="wrong")


@torch.no_grad()
def test_cls_vectors_equal_the_full_encoder_output_with_padding() -> None:
    from erc.models.backbone import build_encoder, cls_vectors

    torch.manual_seed(1)
    encoder = build_encoder("tiny", overrides={"num_hidden_layers": 3}).eval()
    ids = torch.randint(5, 1000, (3, 40))
    mask = torch.ones_like(ids)
    mask[1, 12:], mask[2, 3:] = 0, 0
    ids[mask == 0] = 1
    full = encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    torch.testing.assert_close(cls_vectors(encoder, ids, mask), full, atol=1e-5, rtol=1e-4)
