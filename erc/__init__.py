"""erc: generate emotion-recognition-in-conversation datasets with an LLM, train ERC classifiers
on them, and evaluate the gains with exact Friedman rank statistics (Kaplan et al.)."""

from erc.config import register_resolvers
from erc.paths import PROJECT_ROOT

register_resolvers()

__all__ = ["PROJECT_ROOT"]
