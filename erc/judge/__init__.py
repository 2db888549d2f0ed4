"""The blind LLM judge (beyond the paper, opt-in: ``generate.py ... judge=llm``; docs/judge.md).

Every kept generated dialogue is shown to an LLM without its labels, and the judge names the emotion of each
utterance from the benchmark's label set; the agreement between generated and judged labels goes into the data
card, and an opt-in filter writes the dialogues the judge agrees with as a set of their own (``<set>_judge``).
:mod:`erc.judge.checks` checks the settings, :mod:`erc.judge.prompt` asks and parses, :mod:`erc.judge.run` asks
resumably, :mod:`erc.judge.agreement` scores and :mod:`erc.judge.filter` filters. This module imports none of
them: generation's pipeline imports the checks, and the runner imports the pipeline.
"""
