"""cls_vectors: the fast path on RoBERTa's layout gives the plain forward's first-token vectors; an encoder of another
layout runs its plain forward; which path an encoder class took is logged once."""

import logging

import pytest
import torch
from transformers import BertModel, DistilBertConfig, DistilBertModel, RobertaModel

from erc.models.backbone import build_encoder, cls_vectors, encoder_config, has_fast_path_layout, position_limit


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
