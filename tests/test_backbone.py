"""cls_vectors: the fast path on RoBERTa's layout gives the plain forward's first-token vectors; an encoder of another
layout runs its plain forward; which path an encoder class took is logged once; classifier.fast_path chooses the path
(auto: packed on the CPU, plain on a GPU) in every classifier, and a bad value is refused naming the key."""

import logging

import pytest
import torch
from transformers import BertModel, DistilBertConfig, DistilBertModel, RobertaModel

from erc.data import Dialogue, Utterance
from erc.errors import ConfigError
from erc.models.backbone import (
    FAST_PATH_CHOICES,
    build_encoder,
    check_fast_path,
    cls_vectors,
    encoder_config,
    has_fast_path_layout,
    position_limit,
    uses_packed_path,
)
from erc.models.base import ERCClassifier
from erc.models.compm import CoMPM
from erc.models.emoone import EmoOne
from erc.models.todkat import TODKAT


def padded_batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    ids = torch.randint(5, vocab, (3, 24))
    mask = torch.ones_like(ids)
    mask[1, 9:], mask[2, 2:] = 0, 0
    ids[mask == 0] = 1
    return ids, mask


def plain_first_token(encoder: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]


class TinyRoberta(RobertaModel):
    """A RoBERTa class no other test has used, so its first cls_vectors call is the one that logs."""


class TestFastPath:
    @torch.no_grad()
    def test_a_tiny_roberta_takes_the_fast_path_and_matches_the_plain_forward(self, caplog) -> None:
        torch.manual_seed(1)
        encoder = TinyRoberta(encoder_config("tiny"), add_pooling_layer=False).eval()
        ids, mask = padded_batch(encoder.config.vocab_size)
        assert has_fast_path_layout(encoder)
        with caplog.at_level(logging.INFO, logger="erc.models.backbone"):
            vectors = cls_vectors(encoder, ids, mask)
            cls_vectors(encoder, ids, mask)
        torch.testing.assert_close(vectors, plain_first_token(encoder, ids, mask), atol=1e-5, rtol=1e-4)
        assert [r.getMessage() for r in caplog.records] == [
            "cls_vectors: TinyRoberta takes the fast path (packed real tokens; last layer at the first token only)"]

    def test_the_fast_path_really_skips_padding_and_the_last_layers_other_positions(self) -> None:
        """Each layer's feed-forward sees the real tokens only on the fast path, and the last layer one position per
        sequence; the plain forward computes every padded position of every layer."""
        encoder = build_encoder("tiny").eval()
        ids, mask = padded_batch(encoder.config.vocab_size)
        rows: list[int] = []
        hooks = [layer.intermediate.dense.register_forward_hook(lambda m, i, o: rows.append(o.numel() // o.shape[-1]))
                 for layer in encoder.encoder.layer]
        with torch.no_grad():
            cls_vectors(encoder, ids, mask)
            plain_first_token(encoder, ids, mask)
        for hook in hooks:
            hook.remove()
        assert rows == [int(mask.sum()), len(ids), ids.numel(), ids.numel()]

    @torch.no_grad()
    def test_a_batch_whose_first_token_is_padding_runs_the_plain_forward(self) -> None:
        """Left padding would put another token at the packed first row: the plain forward's answer is kept."""
        encoder = build_encoder("tiny").eval()
        ids, mask = padded_batch(encoder.config.vocab_size)
        ids, mask = ids.flip(1), mask.flip(1)
        torch.testing.assert_close(cls_vectors(encoder, ids, mask), plain_first_token(encoder, ids, mask))


@pytest.fixture
def distilbert() -> DistilBertModel:
    torch.manual_seed(2)
    config = DistilBertConfig(vocab_size=200, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64)
    return DistilBertModel(config).eval()


@torch.no_grad()
def test_another_layout_runs_the_plain_forward_and_says_so(distilbert, caplog) -> None:
    ids, mask = padded_batch(200)
    assert not has_fast_path_layout(distilbert)
    with caplog.at_level(logging.INFO, logger="erc.models.backbone"):
        vectors = cls_vectors(distilbert, ids, mask)
        cls_vectors(distilbert, ids, mask)
    torch.testing.assert_close(vectors, plain_first_token(distilbert, ids, mask))
    assert [r.getMessage() for r in caplog.records] == [
        "cls_vectors: DistilBertModel has another layout than RobertaModel's and BertModel's: its plain forward runs"]


def test_a_roberta_decoder_is_not_taken_for_the_supported_layout() -> None:
    """A causal (decoder) RoBERTa attends differently from what the fast path computes."""
    assert not has_fast_path_layout(RobertaModel(encoder_config("tiny", {"is_decoder": True}), add_pooling_layer=False))


@torch.no_grad()
def test_a_bert_takes_the_fast_path_too_and_matches_the_plain_forward() -> None:
    """The packaged MiniLM is a BertModel: in transformers 5.x its layers are RoBERTa's, so the fast path is exact."""
    encoder = build_encoder("minilm").eval()
    ids, mask = padded_batch(encoder.config.vocab_size)
    ids[mask == 0] = encoder.config.pad_token_id
    assert isinstance(encoder, BertModel) and has_fast_path_layout(encoder)
    torch.testing.assert_close(cls_vectors(encoder, ids, mask), plain_first_token(encoder, ids, mask),
                               atol=1e-5, rtol=1e-4)


def test_position_limit_counts_the_offset_of_roberta_style_position_ids() -> None:
    """RoBERTa numbers positions from padding_idx + 1, so its 514 rows hold 512 tokens; BERT's 512 hold 512."""
    assert build_encoder("tiny").embeddings.position_embeddings.num_embeddings == 514
    assert position_limit(build_encoder("tiny")) == 512 == position_limit(build_encoder("minilm"))


# ---- classifier.fast_path -----------------------------------------------------------------------------------
def feed_forward_dims(model: torch.nn.Module, run) -> set[int]:
    """The dimensions of every feed-forward output of every encoder layer in ``model`` while ``run()`` runs: 3 on the
    plain forward's (batch, length, hidden) layout, 2 on the packed path's (tokens, hidden) rows."""
    dims: set[int] = set()
    hooks = [module.register_forward_hook(lambda m, i, o: dims.add(o.dim()))
             for name, module in model.named_modules() if name.endswith("intermediate.dense")]
    with torch.no_grad():
        run()
    for hook in hooks:
        hook.remove()
    return dims


@pytest.mark.parametrize("fast_path, dims", [("on", {2}), ("auto", {2}), ("off", {3})])
def test_fast_path_chooses_the_packed_path_or_the_plain_forward_on_the_cpu(fast_path: str, dims: set[int]) -> None:
    """``off`` runs the plain Hugging Face forward although the layout allows the packed path; ``auto`` on the CPU
    and ``on`` take the packed path; every one gives the plain forward's vectors in eval mode."""
    encoder = build_encoder("tiny").eval()
    ids, mask = padded_batch(encoder.config.vocab_size)
    vectors = []
    assert feed_forward_dims(encoder, lambda: vectors.append(cls_vectors(encoder, ids, mask, fast_path))) == dims
    torch.testing.assert_close(vectors[0], plain_first_token(encoder, ids, mask), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fast_path, cpu, cuda", [("auto", True, False), ("on", True, True), ("off", False, False)])
def test_uses_packed_path_takes_auto_as_packed_on_the_cpu_and_plain_on_cuda(fast_path: str, cpu: bool,
                                                                            cuda: bool) -> None:
    """The one decision, by setting and device (no GPU needed: only the device's type is read)."""
    assert uses_packed_path(fast_path, torch.device("cpu")) is cpu
    assert uses_packed_path(fast_path, torch.device("cuda")) is cuda
    assert uses_packed_path(fast_path, torch.device("cuda", 1)) is cuda


@pytest.mark.parametrize("value", ["fast", "", "ON", 1, None])
def test_a_bad_fast_path_is_one_line_naming_the_key_and_the_choices(value: object) -> None:
    with pytest.raises(ConfigError) as err:
        check_fast_path(value)
    assert str(err.value) == f"classifier.fast_path must be one of auto, on, off, got {value!r}"


def test_the_fast_path_choices_pass_and_yaml_booleans_mean_on_and_off() -> None:
    assert [check_fast_path(choice) for choice in FAST_PATH_CHOICES] == ["auto", "on", "off"]
    assert (check_fast_path(True), check_fast_path(False)) == ("on", "off")


def _classifier(name: str, fast_path: str) -> ERCClassifier:
    torch.manual_seed(0)
    if name == "todkat":
        return TODKAT("meld", backbone="tiny", topic=False, dim_feedforward=64, nhead=2, fast_path=fast_path).eval()
    return (CoMPM if name == "compm" else EmoOne)("meld", backbone="tiny", fast_path=fast_path).eval()


@pytest.mark.parametrize("name", ["compm", "emoone", "todkat"])
def test_every_classifier_runs_every_encoder_as_its_fast_path_says(name: str) -> None:
    """The setting reaches each encoder a classifier reads (CoMPM's PM too): ``off`` runs the plain forward
    everywhere, ``auto`` the packed path on the CPU."""
    turns = [("Ross", "Hi Rachel, how are you?", "neutral"), ("Rachel", "Oh my God! Ross!", "surprise"),
             ("Ross", "I missed you so much, really.", "sadness")]
    dialogue = Dialogue(id="d", utterances=[Utterance(*turn) for turn in turns], benchmark="meld", split="train")
    for fast_path, dims in (("off", {3}), ("auto", {2})):
        model = _classifier(name, fast_path)
        batch = model.collate(model.encode([dialogue]))
        assert feed_forward_dims(model, lambda model=model, batch=batch: model(batch)) == dims, fast_path
        if name == "compm":
            assert "pm_ids" in batch
        if name == "emoone":
            assert model.make_teacher().fast_path == fast_path
