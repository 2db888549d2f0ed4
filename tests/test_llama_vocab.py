"""The embedded backend reaches llama.cpp's vocabulary (for the grammar sampler) through public llama-cpp-python API
only, and a release that no longer offers it is a clear error naming the pinned version."""

from __future__ import annotations

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from erc.llm.backends.base import FatalRequestError  # noqa: E402
from erc.llm.backends.local import LLAMA_CPP_PINNED, bundled_model_path, model_vocab  # noqa: E402


def test_the_pin_in_requirements_is_the_version_model_vocab_names() -> None:
    from erc.paths import PROJECT_ROOT

    assert f"llama-cpp-python[server]=={LLAMA_CPP_PINNED}" in (PROJECT_ROOT / "requirements.txt").read_text()


def test_the_vocabulary_of_the_bundled_model_is_the_one_llama_cpp_python_keeps() -> None:
    llama = llama_cpp.Llama(model_path=str(bundled_model_path()), n_ctx=64, verbose=False)
    try:
        vocab = model_vocab(llama)
        assert vocab and llama_cpp.llama_vocab_n_tokens(vocab) == llama.n_vocab()
    finally:
        llama.close()


def test_a_llama_without_the_public_model_pointer_is_an_error_naming_the_pin() -> None:
    class Changed:
        """What a llama-cpp-python release that dropped ``Llama.model`` would hand over."""

    with pytest.raises(FatalRequestError, match=rf"written against {LLAMA_CPP_PINNED}.*requirements\.txt"):
        model_vocab(Changed())
