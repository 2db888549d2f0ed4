"""Post-processing a generated set as an ordered list of named steps: the set is built from ``requests.jsonl``
(:mod:`~erc.postprocess.build`) and written (:mod:`~erc.postprocess.export`), then the steps of
``postprocess.steps`` run (:mod:`erc.postprocess.steps`: the judge, the quality report, the label plot; each a
:class:`~erc.postprocess.step.Step` named by ``_target_``), and the card is written (:mod:`~erc.postprocess.card`).
A step that fails is named in the card and leaves the others and the set alone. Adding a step:
docs/adding-a-step.md."""
