"""TODKAT: batching cannot change a dialogue's logits (the released code's bug T1), the topic model
learns, the knowledge cache round-trips, and the classifier trains through the runner."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from transformers import RobertaConfig, RobertaModel

from erc.data import DataError
from erc.models.knowledge.attention import KnowledgeAttention
from erc.models.knowledge.cache import KnowledgeCache, default_cache_path, knowledge_sentences
from erc.models.todkat_net import TodkatNet
from erc.models.topic import NeuralTopicModel, bag_of_words

from helpers.config import compose_config

VOCAB = 300
PAD = 1


def tiny_encoder(seed: int = 0) -> RobertaModel:
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=PAD)
    return RobertaModel(config, add_pooling_layer=False)


def topic_words() -> torch.Tensor:
    mask = torch.ones(VOCAB, dtype=torch.bool)
    mask[:4] = False  # <s>, <pad>, </s>, <unk>
    return mask


def utterances(lengths: list[int], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``<s> ... </s>`` rows of the given lengths."""
    longest = max(lengths)
    ids = torch.full((len(lengths), longest), PAD)
    mask = torch.zeros(len(lengths), longest, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(4, VOCAB, (n,), generator=generator)
        ids[row, 0], ids[row, n - 1] = 0, 2
        mask[row, :n] = 1
    return ids, mask


def pad_to(x: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return F.pad(x, (0, width - x.shape[1]), value=value)


@pytest.mark.parametrize("topic,knowledge", [(False, False), (True, True)])
def test_dialogue_logits_do_not_depend_on_its_batch_partner(topic, knowledge):
    net = TodkatNet(tiny_encoder(), 7, topic_words=topic_words() if topic else None, num_topics=8,
                    topic_hidden=16, knowledge=knowledge, dim_feedforward=64).eval()
    g = torch.Generator().manual_seed(1)
    a_ids, a_mask = utterances([5, 9, 4], g)              # dialogue A: 3 turns
    b_ids, b_mask = utterances([12, 3, 7, 7, 6, 11], g)   # dialogue B: 6 turns, longer utterances
    k_ids, k_mask = utterances([6, 4, 8, 5], g)           # 4 distinct knowledge sentences
    a_know = torch.tensor([[0, 1, -1], [2, -1, -1], [-1, -1, -1]])
    b_know = torch.tensor([[3, 0, 2]] * 6)
    kwargs = {"knowledge_ids": k_ids, "knowledge_attention_mask": k_mask} if knowledge else {}
    with torch.no_grad():
        alone = net(a_ids, a_mask, torch.ones(1, 3, dtype=torch.bool),
                    knowledge_index=a_know if knowledge else None, **kwargs).logits
        width = max(a_ids.shape[1], b_ids.shape[1])
        turn_mask = torch.zeros(2, 6, dtype=torch.bool)
        turn_mask[0, :3] = True
        turn_mask[1, :] = True
        batched = net(torch.cat([pad_to(a_ids, width, PAD), pad_to(b_ids, width, PAD)]),
                      torch.cat([pad_to(a_mask, width, 0), pad_to(b_mask, width, 0)]), turn_mask,
                      knowledge_index=torch.cat([a_know, b_know]) if knowledge else None, **kwargs).logits
        # The same dialogue B first, so A sits in the second row.
        swapped = net(torch.cat([pad_to(b_ids, width, PAD), pad_to(a_ids, width, PAD)]),
                      torch.cat([pad_to(b_mask, width, 0), pad_to(a_mask, width, 0)]), turn_mask.flip(0),
                      knowledge_index=torch.cat([b_know, a_know]) if knowledge else None, **kwargs).logits
    assert batched.shape == (2, 6, 7)
    torch.testing.assert_close(batched[0, :3], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped[1, :3], alone[0], atol=1e-5, rtol=1e-5)
    assert batched[0, 3:].abs().max() == 0  # padded turns carry no logits
    # The turn transformer does look at the other turns of the dialogue (it is not per-utterance).
    with torch.no_grad():
        first_only = net(a_ids[:1, :5], a_mask[:1, :5], torch.ones(1, 1, dtype=torch.bool),
                         knowledge_index=a_know[:1] if knowledge else None, **kwargs).logits
    assert not torch.allclose(first_only[0, 0], alone[0, 0], atol=1e-4)


def test_todkat_module_batches_with_knowledge_and_keeps_each_dialogue_alone(tmp_path):
    """The LightningModule path (tokenize, collate with dynamic padding, knowledge from the cache): a
    dialogue's logits alone equal its logits next to a longer dialogue, in either order."""
    from erc.data import Dialogue, Utterance
    from erc.models.todkat import TODKAT

    short = Dialogue("a", [Utterance("Ross", "We were on a break!", "anger"),
                           Utterance("Rachel", "Oh.", "surprise")], "meld", "test")
    long = Dialogue("b", [Utterance("Joey", "How you doin'?", "joy"), Utterance("Monica", "Hi.", "neutral"),
                          Utterance("Joey", "I got pizza for everyone, the big one with extra cheese!", "joy"),
                          Utterance("Chandler", "Could this BE any better?", "joy")], "meld", "test")
    cache = KnowledgeCache(tmp_path / "comet.jsonl")
    for i, u in enumerate(short.utterances + long.utterances):
        cache.add([(u.text, {"xIntent": [f"to say thing {i}", "none"], "xReact": ["happy"],
                             "oReact": [] if i % 2 else ["sad", "upset"]})], model="test")
    torch.manual_seed(0)
    model = TODKAT("meld", backbone="tiny", knowledge="comet", knowledge_cache=str(tmp_path / "comet.jsonl"),
                   num_topics=8, topic_hidden=16, dim_feedforward=64).eval()
    a, b = model.encode([short, long])
    batch = model.collate([a, b])
    assert batch["turn_mask"].tolist() == [[True, True, False, False], [True, True, True, True]]
    assert batch["labels"].tolist() == [3, 2, 1, 0, 1, 1]  # meld order: anger, surprise, joy, neutral, ...
    # "PersonX feels happy." is shared by all six turns and encoded once; 'none' is dropped.
    assert batch["knowledge_ids"].shape[0] == 6 + 1 + 2
    assert (batch["knowledge_index"] >= 0).sum(dim=1).tolist() == [4, 2, 4, 2, 4, 2]
    with torch.no_grad():
        alone = model(model.collate([a]))
        together = model(batch)
        swapped = model(model.collate([b, a]))
    torch.testing.assert_close(together[:2], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(swapped[4:], alone, atol=1e-5, rtol=1e-5)
    missing = Dialogue("c", [Utterance("Ross", "Never cached.", "neutral")], "meld", "test")
    with pytest.raises(DataError, match=re.escape("python -m erc.models.knowledge")):
        model.encode([missing])
    wrong = Dialogue("d", [Utterance("Ross", "Hi.", "happy")], "meld", "test")
    with pytest.raises(DataError, match="dialogue 'd' utterance 0: label 'happy' is not a meld label"):
        model.encode([wrong])


def test_topic_loss_goes_down_on_a_tiny_set():
    """Two kinds of utterances drawing their words from two disjoint sets of 10 words: the topic
    model's reconstruction + KL loss (measured deterministically, in eval mode) must fall with training."""
    net = TodkatNet(tiny_encoder(), 7, topic_words=topic_words(), num_topics=4, topic_hidden=16,
                    dim_feedforward=64)
    g = torch.Generator().manual_seed(0)
    ids, mask = utterances([10] * 16, g)
    ids[:8, 1:9] = torch.randint(4, 14, (8, 8), generator=g)
    ids[8:, 1:9] = torch.randint(150, 160, (8, 8), generator=g)
    labels = torch.tensor([0] * 8 + [3] * 8).view(2, 8)
    turn_mask = torch.ones(2, 8, dtype=torch.bool)
    topic = list(net.topic.parameters())
    rest = [p for p in net.parameters() if all(p is not q for q in topic)]
    optimizer = torch.optim.AdamW([{"params": rest, "lr": 1e-3}, {"params": topic, "lr": 3e-2}])

    def measured() -> float:
        net.eval()
        with torch.no_grad():
            return net.topic(net.encode(ids, mask), bag_of_words(ids, mask, net.topic_words)).loss(1.0).item()

    before = measured()
    for _ in range(40):
        net.train()
        out = net(ids, mask, turn_mask)
        loss = F.cross_entropy(out.logits[turn_mask], labels[turn_mask]) + out.topic_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = measured()
    assert out.topic_loss.item() > 0
    assert after < 0.9 * before, (before, after)


def test_the_reconstruction_is_the_bag_of_words_negative_log_likelihood_per_word():
    """Read through a gather over the tokens, it is -sum_w count(w) log p(w) / sum_w count(w) over the dense counts of
    the topic words (repeats counted, padding and non-topic tokens not), and its gradient is that formula's."""
    generator = torch.Generator().manual_seed(2)
    ids, mask = utterances([5, 9, 3, 12], generator)
    ids[1, 2:6] = ids[1, 1]                                    # a repeated word
    ids[2, :] = 2                                              # </s>: not a topic word
    topic = NeuralTopicModel(16, VOCAB).eval()
    vectors = torch.randn(4, 16, generator=generator, requires_grad=True)
    words = topic_words()
    recon = topic(vectors, bag_of_words(ids, mask, words)).recon
    counts = torch.zeros(4, VOCAB).scatter_add_(1, ids, mask.float()) * words
    log_p = F.log_softmax(topic.beta(F.softmax(topic.mu(topic.encoder(vectors)), -1)), -1)
    dense = -(counts * log_p).sum(-1) / counts.sum(-1).clamp_min(1.0)        # row 2: no topic word left
    torch.testing.assert_close(recon, dense)
    weights = torch.randn(4, generator=generator)
    grad, = torch.autograd.grad((recon * weights).sum(), vectors)
    torch.testing.assert_close(grad, torch.autograd.grad((dense * weights).sum(), vectors)[0])


@pytest.mark.parametrize("backbone,stop_words", [("tiny", ["Ġthe", "the", "Ġand", "Ġa", "ĠThe", "The", "ĠWhat"]),
                                                 ("minilm", ["the", "##the", "and", "a"])])
def test_topic_words_leave_out_stop_words_punctuation_digits_and_special_tokens(backbone, stop_words):
    """The decoder must spend itself on content words: a stop word (in any case, with or without its word-boundary
    mark), a punctuation mark, a number or a special token is never a topic word; content words are, in every
    position."""
    from erc.models.backbone import build_tokenizer
    from erc.models.topic import topic_word_mask

    tokenizer = build_tokenizer(backbone)
    vocab = tokenizer.get_vocab()
    mask = topic_word_mask(tokenizer)
    assert mask.shape == (len(tokenizer),)
    content = ["Ġhappy", "happy", "Ġlove"] if backbone == "tiny" else ["happy", "love", "##ing"]
    assert all(mask[vocab[token]] for token in content)
    for token in [*stop_words, "!", "1", *tokenizer.all_special_tokens]:
        assert not mask[vocab[token]], token
    assert not mask[tokenizer.all_special_ids].any()


def test_topic_words_skip_vocabulary_ids_beyond_the_tokenizers_length():
    """A vocabulary may list ids past ``len(tokenizer)`` (the decoder's width): they are not topic words and are
    skipped, not written past the mask's end; a tokenizer without a backend model has no continuation prefix."""
    from erc.models.topic import topic_word_mask

    class SmallTokenizer:
        all_special_ids = (0,)

        def __len__(self) -> int:
            return 4

        def get_vocab(self) -> dict[str, int]:
            return {"<s>": 0, "!": 4, "Ġhello": 1, "the": 2, "?": 5, "##ing": 3}

    assert topic_word_mask(SmallTokenizer()).tolist() == [False, True, False, True]


def test_training_samples_the_latent_with_the_standard_deviation_and_eval_takes_the_mean():
    """Reparameterisation draws z ~ N(mu, exp(logvar)): with two topics, mu = 1 and logvar = log 4 (sd 2),
    log theta_0 - log theta_1 = z_0 - z_1 has sd 2 * sqrt(2); in eval mode z = mu, so theta is uniform. The KL to
    N(0, I) is the closed form's, and the loss weighs it by kl_weight."""
    topic = NeuralTopicModel(8, VOCAB, num_topics=2, hidden_dim=4, dropout=0.0)
    with torch.no_grad():
        for layer, bias in ((topic.mu, 1.0), (topic.logvar, math.log(4.0))):
            layer.weight.zero_()
            layer.bias.fill_(bias)
    vectors = torch.randn(20000, 8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    theta = topic.train()(vectors).theta
    spread = (theta[:, 0].log() - theta[:, 1].log()).std().item()
    assert spread == pytest.approx(2 * math.sqrt(2), rel=0.03)
    torch.testing.assert_close(topic.eval()(vectors).theta, torch.full((20000, 2), 0.5))
    one_word = torch.full((20000, 1), 7)                 # one topic word each: the KL is not divided
    out = topic(vectors, bag_of_words(one_word, torch.ones_like(one_word), topic_words()))
    torch.testing.assert_close(out.kl, torch.full((20000,), 2 * -0.5 * (1 + math.log(4.0) - 1.0 - 4.0)))  # 2 topics
    torch.testing.assert_close(out.loss(0.25), (out.recon + 0.25 * out.kl).mean())
    torch.testing.assert_close(out.loss(0.0), out.recon.mean())


@pytest.mark.parametrize("logvar", [100.0, -100.0])
def test_an_extreme_log_variance_is_held_to_plus_minus_10_so_the_kl_stays_finite(logvar):
    """exp(100) overflows float32: the encoder's log-variance is clamped to [-10, 10] before the KL and the sampling,
    so the KL is the closed form's at the bound (mu = 0: -0.5 (1 + lv - e^lv) per topic), finite either way."""
    topic = NeuralTopicModel(8, VOCAB, num_topics=3, hidden_dim=4, dropout=0.0).eval()
    with torch.no_grad():
        for layer, bias in ((topic.mu, 0.0), (topic.logvar, logvar)):
            layer.weight.zero_()
            layer.bias.fill_(bias)
    one_word = torch.full((2, 1), 7)
    out = topic(torch.randn(2, 8), bag_of_words(one_word, torch.ones_like(one_word), topic_words()))
    bound = math.copysign(10.0, logvar)
    torch.testing.assert_close(out.kl, torch.full((2,), 3 * -0.5 * (1 + bound - math.exp(bound))))


def test_the_kl_is_per_topic_word_like_the_reconstruction():
    """Both terms of the ELBO are divided by the utterance's number of topic words (at least 1): the KL of q(z|u) =
    N(mu, exp(logvar)) to N(0, I) (torch.distributions' value) over 1, 2, 4 and 0 topic words."""
    from torch.distributions import Normal, kl_divergence

    topic = NeuralTopicModel(8, VOCAB, num_topics=3, hidden_dim=4).eval()
    vectors = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    ids = torch.tensor([[0, 7, 2, 1, 1], [0, 7, 8, 2, 1], [7, 8, 9, 10, 2], [0, 2, 1, 1, 1]])
    mask = (ids != PAD).long()
    out = topic(vectors, bag_of_words(ids, mask, topic_words()))
    hidden = topic.encoder(vectors)
    q = Normal(topic.mu(hidden), torch.exp(0.5 * topic.logvar(hidden)))
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(out.kl, kl / torch.tensor([1.0, 2.0, 4.0, 1.0]))


def test_knowledge_cache_round_trips(tmp_path):
    path = tmp_path / "knowledge" / "comet.jsonl"
    cache = KnowledgeCache(path)
    assert len(cache) == 0 and not path.exists()
    first = {"xIntent": ["to be heard", "none"], "xReact": ["angry"], "oReact": ["sad", "upset"]}
    second = {"xIntent": [], "xReact": ["happy"], "oReact": ["none"]}
    cache.add([("I can't  believe\tyou did that!", first), ("Hi.", second)], model="comet-test")
    assert cache.missing(["Hi.", "Bye.", "Bye. "]) == ["Bye."]

    again = KnowledgeCache(path)
    assert len(again) == 2
    assert again.get("I can't believe you did that!") == first  # whitespace-collapsed key
    assert again.get("Hi.") == second
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["text"] == "I can't believe you did that!" and records[0]["comet"] == "comet-test"
    assert knowledge_sentences(again.get("Hi."), per_relation=3) == ["PersonX feels happy."]
    assert knowledge_sentences(first, per_relation=1) == [
        "PersonX wants to be heard.", "PersonX feels angry.", "Others feel sad."]
    with pytest.raises(DataError, match=r"no COMET inferences.*python -m erc\.models\.knowledge"):
        again.get("Bye.")

    # An interrupted fill leaves a cut-off last line: ignored by a reader; the filler cuts it off and appends after.
    with path.open("a") as handle:
        handle.write('{"text": "Bye.", "xIntent": ["to lea')
    resumed = KnowledgeCache(path)
    assert len(resumed) == 2 and "Bye." not in resumed
    KnowledgeCache(path, repair=True).add([("Bye.", second)], model="comet-test")
    assert len(KnowledgeCache(path)) == 3
    # A broken line in the middle is an error that names the file and line.
    path.write_text('{"text": "Hi.", "xIntent": [], "xReact": [], "oReact": []}\n{"text": 3}\n')
    with pytest.raises(DataError, match=r"comet\.jsonl: record 2: field 'text'"):
        KnowledgeCache(path)


def test_knowledge_attention_ignores_padding_and_gives_zero_without_knowledge():
    torch.manual_seed(0)
    attention = KnowledgeAttention(8)
    utterance = torch.randn(2, 8)
    knowledge = torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = attention(utterance, knowledge, mask)
    changed = knowledge.clone()
    changed[0, 2] = 100.0  # a masked slot
    torch.testing.assert_close(attention(utterance, changed, mask), out)
    assert out[1].abs().max() == 0


def tiny_comet(folder) -> None:
    """A random-weight BART with a locally trained byte-level BPE: COMET-ATOMIC-2020's shape, no hub."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["PersonX goes to the store xIntent xReact oReact [GEN]"] * 4, vocab_size=300,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tokenizer = BartTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>", unk_token="<unk>", mask_token="<mask>", cls_token="<s>",
                                  sep_token="</s>")
    torch.manual_seed(0)
    config = BartConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                        decoder_ffn_dim=32, max_position_embeddings=160, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        decoder_start_token_id=tokenizer.eos_token_id, forced_bos_token_id=None)
    tokenizer.save_pretrained(folder)
    BartForConditionalGeneration(config).save_pretrained(folder)


def test_fill_command_caches_every_utterance_and_resumes(tmp_path, monkeypatch):
    """The real fill path (load a local seq2seq COMET, generate 3 relations, append) on a random tiny
    BART: every utterance of the dataset gets an entry, and a second run generates nothing; the cache goes to
    $ERC_CACHE_DIR, not into the data folder."""
    monkeypatch.setenv("ERC_CACHE_DIR", str(tmp_path / "cache"))
    from erc.data import Dialogue, Utterance, write_dialogues_jsonl
    from erc.models.knowledge.__main__ import main

    dialogues = [Dialogue("d0", [Utterance("A", "Hi there.", "joy"), Utterance("B", "Go away!", "anger")],
                          "meld", "train", "bal"),
                 Dialogue("d1", [Utterance("A", "Hi  there.", "neutral")], "meld", "train", "bal")]
    write_dialogues_jsonl(tmp_path / "synthetic" / "meld_bal" / "train.jsonl", dialogues)
    tiny_comet(tmp_path / "comet")
    argv = ["--comet", str(tmp_path / "comet"), "--data", "meld_bal", "--splits", "train",
            "--data-dir", str(tmp_path), "--synthetic-dir", str(tmp_path / "synthetic"), "--num-beams", "2",
            "--num-return", "2", "--device", "cpu"]
    assert main(argv) == 0
    cache = KnowledgeCache(default_cache_path())
    assert cache.path == tmp_path / "cache" / "knowledge" / "comet.jsonl" and not (tmp_path / "knowledge").exists()
    assert len(cache) == 2 and "Hi there." in cache and "Go away!" in cache
    for relation in ("xIntent", "xReact", "oReact"):
        assert 1 <= len(cache.get("Go away!")[relation]) <= 2
    size = cache.path.stat().st_size
    assert main(argv) == 0
    assert cache.path.stat().st_size == size  # nothing regenerated


# ---- through the runner --------------------------------------------------------------------------

def test_owner_command_trains_compm_emoone_and_todkat_offline(tmp_path, data_dir):
    """``python train.py -m classifier=compm,emoone,todkat data=meld_bal schedule=debug classifier.backbone=tiny``
    (a real Hydra multirun in a subprocess, W&B offline) writes one results.json per classifier."""
    import os
    import subprocess
    import sys

    from erc.paths import PROJECT_ROOT

    logs = tmp_path / "logs"
    command = [sys.executable, "train.py", "-m", "classifier=compm,emoone,todkat", "data=meld_bal", "schedule=debug",
               "classifier.backbone=tiny", "data.limit_dialogues=2", "trainer.enable_progress_bar=false",
               f"paths.log_dir={logs}"]
    env = {**os.environ, "ERC_DATA_DIR": str(data_dir), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep,) = (logs / "train" / "multiruns").iterdir()          # the default sweep layout
    results = [json.loads(p.read_text()) for p in sorted(sweep.rglob("results.json"))]
    assert sorted(r["identity"]["classifier"] for r in results) == ["compm", "emoone", "todkat"]
    for r in results:
        assert r["identity"]["data"] == "meld_bal" and r["config"]["classifier"]["backbone"] == "tiny"
        for key in ("pretrain/dev/wf1", "pretrain/test/meld_org/wf1", "finetune/dev/wf1", "test/meld_org/wf1",
                    "test/meld_bal/wf1"):
            assert 0.0 <= r["metrics"][key] <= 1.0, (r["identity"]["classifier"], key)
    todkat = next(r for r in results if r["identity"]["classifier"] == "todkat")
    assert todkat["identity"]["variant"] == "topic=True,knowledge=none"
    runs = sorted((logs / "train" / "checkpoints").glob("*/wandb/offline-run-*"))   # in each job's folder
    assert len(runs) == 3
    # The README's `wandb sync` (every folder named wandb under outputs/, which is paths.log_dir) finds each of them.
    assert "find outputs synthetic -type d -name wandb -prune -exec .venv/bin/wandb sync {} +" in \
        (PROJECT_ROOT / "README.md").read_text()
    found = sorted(run for folder in logs.rglob("wandb") if folder.is_dir() for run in folder.glob("offline-run-*"))
    assert found == runs


def test_schedule_paper_gives_todkat_its_reference_optimisation():
    """AdamW lr 2e-5, eps 1e-6, weight decay 0.01 except bias/LayerNorm weights, 50% warmup, clip 1, 2 dialogues
    per step; the topic model's parameters in their own groups at classifier.topic_lr."""

    from erc.training.phases import build_classifier
    from erc.training.schedule import phase_schedule

    cfg = compose_config("train", ["classifier=todkat", "schedule=paper", "classifier.backbone=tiny"])
    for phase in ("pretrain", "finetune"):
        s = phase_schedule(cfg.schedule, phase)
        assert (s.lr, s.eps, s.weight_decay, s.batch_size, s.clip_norm, s.epochs, s.warmup_epochs) == (
            2e-5, 1e-6, 0.01, 2, 1.0, 100, None)
        assert s.warmup_steps(1000) == 500 and s.no_decay == ["bias", "LayerNorm.weight"]
    model = build_classifier(cfg.classifier, "meld")
    groups = model.parameter_groups(s)
    names = {id(p): n for n, p in model.named_parameters()}
    topic = {id(p) for p in model.net.topic.parameters()}
    for group in groups:
        for p in group["params"]:
            name = names[id(p)]
            assert group["weight_decay"] == (0.0 if "bias" in name or "LayerNorm.weight" in name else 0.01), name
            assert group.get("lr") == (1e-3 if id(p) in topic else None), name
    assert sum(len(g["params"]) for g in groups) == len(names)
    assert any("encoder.layer.0.attention.output.LayerNorm.weight" in names[id(p)]
               for g in groups if g["weight_decay"] == 0.0 for p in g["params"])


def test_a_knowledge_cache_left_in_the_data_folder_is_named_with_the_move(tmp_path, monkeypatch):
    """The former default, <data_dir>/knowledge/comet.jsonl, is inside the benchmark folder: one error with the mv."""
    from erc.data import DataError

    monkeypatch.setenv("ERC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ERC_CACHE_DIR", str(tmp_path / "cache"))
    former = tmp_path / "data" / "knowledge" / "comet.jsonl"
    former.parent.mkdir(parents=True)
    former.write_text("")
    with pytest.raises(DataError, match=r"mv .*data/knowledge/comet\.jsonl .*cache/knowledge/comet\.jsonl"):
        default_cache_path()



def test_sentencepiece_word_marks_are_stripped_before_the_stop_word_and_junk_checks():
    """SentencePiece marks a word's start with ``▁``: ``▁the`` and ``▁The`` are stop words, ``▁`` and ``▁,`` junk,
    ``▁love`` a topic word (a tokenizer without a WordPiece continuation prefix); so is a stop word written with a
    plain space (`` the``, as vocabularies without a word mark keep it)."""
    from erc.models.topic import topic_word_mask

    class SentencePieceTokenizer:
        all_special_ids = (0,)

        def __len__(self) -> int:
            return 7

        def get_vocab(self) -> dict[str, int]:
            return {"<pad>": 0, "▁the": 1, "▁The": 2, "▁": 3, "▁,": 4, "▁love": 5, " the": 6}

    assert topic_word_mask(SentencePieceTokenizer()).tolist() == [False, False, False, False, False, True, False]
