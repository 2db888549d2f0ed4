"""ERC classifiers, each a LightningModule on the shared training runner (``erc.training``).

How a classifier plugs in (CoMPM is the worked example: ``erc/models/compm.py``, ``conf/classifier/compm.yaml``):

1. **Module.** Subclass :class:`erc.training.module.ERCClassifier` and implement ``encode(dialogues)``
   (tokenize once into samples), ``sample_length(sample)`` (bucketing), ``collate(samples)`` (a batch dict
   with ``"labels"``) and ``forward(batch)`` (logits (N, C) aligned with ``batch["labels"]``). Optionally
   ``loss``, ``before_fit(ctx)`` (a pre-pass before each phase, with a :class:`erc.training.phases.FitContext`
   that can build Trainers and DataModules, e.g. to train and cache a teacher), ``parameter_groups``.
   The constructor takes ``benchmark`` (the runner passes it) plus the classifier's own keyword options.
   Encoders and tokenizers come from :mod:`erc.models.backbone` (``build_encoder``/``build_tokenizer``:
   ``roberta-large``..., or ``tiny``/``small`` random weights and a locally trained tokenizer).
2. **Config.** ``conf/classifier/<name>.yaml``: ``_target_`` names the class; every other key is a
   constructor keyword, except three reserved keys the runner reads itself:

   - ``name``: the classifier's identity (results.json ``identity.classifier``, W&B tags);
   - ``variant``: a short string naming the ablation (``pm=pretrained``), usually an interpolation;
   - ``paper``: the reference hyperparameters that ``schedule=paper`` reads (``batch_size``, ``lr``,
     ``eps``, ``weight_decay``, ``no_decay``, ``warmup_epochs``, ``warmup_ratio``, ``clip_norm``, ``epochs``,
     ``eval_batch_size``, ``select``; see :class:`erc.training.schedule.PhaseSchedule`).

   The runner calls :func:`erc.training.phases.build_classifier`, i.e. ``hydra.utils.instantiate`` on the
   group without the reserved keys, with ``benchmark=<data.benchmark>``.
3. **Nothing else.** Phases, checkpoints/resume, metrics, W&B and results.json are the runner's; no
   classifier-specific code lives in ``erc/training``.
"""
