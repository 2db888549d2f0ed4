"""ERC classifiers: CoMPM (:mod:`erc.models.compm`), EmoOne-RoBERTa (:mod:`erc.models.emoone`) and TODKAT
(:mod:`erc.models.todkat`), each an :class:`erc.models.base.ERCClassifier`.

:mod:`erc.models.base` is the whole contract with the training runner (what a classifier implements, what the runner
calls, the :class:`~erc.models.base.FitContext` a classifier may ask things of); nothing in this package imports
``erc.training``, which finds a classifier through ``_target_`` in ``conf/classifier/<name>.yaml``. CoMPM and EmoOne
share their context-model inputs through :class:`erc.models.context.ContextModelClassifier`. Encoders and tokenizers
come from :mod:`erc.models.backbone`. Adding a classifier, step by step: ``docs/adding-a-classifier.md``.
"""
