"""The generator (the paper's Sec. III) as a task on the LLM layer (:mod:`erc.llm`): prompts, parsing and
validation of the answers, the dialogue's output constraints, and the split rule. ``generate.py`` runs it through
:func:`erc.pipeline.generate`, which then post-processes the set (:mod:`erc.postprocess`)."""

from erc.generation.task import GenerationError, GenerationTask, run_requests

__all__ = ["GenerationError", "GenerationTask", "run_requests"]
