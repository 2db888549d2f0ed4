"""LLM generation of ERC datasets (the paper's Sec. III): prompts, backends (TGI, OpenAI-compatible,
embedded llama.cpp), parsing and validation, the resumable request store and post-processing.

``generate(cfg)`` runs what is missing and post-processes; ``postprocess(cfg)`` redoes only the
post-processing from ``requests.jsonl``.
"""

from erc.generation.pipeline import GenerationError, generate
from erc.generation.postprocess import postprocess

__all__ = ["GenerationError", "generate", "postprocess"]
