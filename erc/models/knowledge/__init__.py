"""Commonsense knowledge for TODKAT (Zhu et al., ACL 2021): COMET's inferences about each utterance, why the speaker
says it (``xIntent``), how the speaker feels (``xReact``) and how the others feel (``oReact``).

Generating them is slow and needs a COMET model, so a separate command does it once, into a cache that training only
reads; the three parts are apart because they are used apart:

- :mod:`erc.models.knowledge.cache`: the cache's file format, reading and appending it, and the sentences an
  utterance attends to (TODKAT's ``encode``);
- :mod:`erc.models.knowledge.attention`: :class:`~erc.models.knowledge.attention.KnowledgeAttention`, the module
  through which an utterance reads them (TODKAT's network);
- ``python -m erc.models.knowledge`` (:mod:`erc.models.knowledge.__main__`): the command that fills the cache, the
  only part that loads a COMET model::

    python -m erc.models.knowledge --comet /models/comet-atomic_2020_BART --data meld meld_bal
"""
