"""The blind LLM judge as a post-processing step (``judge=llm``; :mod:`erc.judge`, docs/judge.md): every kept
dialogue is labelled by an LLM that does not see the generated labels; the agreement goes into the card, the
README and the quality report, and ``judge.filter=true`` writes ``<out_dir>_judge``. It asks the LLM only when
post-processing may (``generate.py`` without ``postprocess_only``), else it reads the judge's stored answers."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from erc.judge.checks import judge_enabled
from erc.judge.export import export_judgement, forget_judgement
from erc.judge.run import judge_set
from erc.postprocess.card import percent, table, tokens_text
from erc.postprocess.export import sizes
from erc.postprocess.step import FilteredSet, SetContext, Step


class JudgeStep(Step):
    """See the module docstring."""

    sections = ("judge",)

    def enabled(self, ctx: SetContext) -> bool:
        return judge_enabled(ctx.cfg) and bool(ctx.built.kept)

    def disabled(self, ctx: SetContext) -> None:
        forget_judgement(ctx.out_dir)

    def config(self, ctx: SetContext) -> Any:
        return OmegaConf.to_container(ctx.cfg.judge, resolve=False)

    def run(self, ctx: SetContext) -> bool:
        built = ctx.built
        judgement = judge_set(ctx.cfg, built.kept, ask=ctx.ask)
        judged = export_judgement(ctx.cfg, built.out_dir, built.name, built.kept, built.labels, judgement)
        ctx.card["judge"] = judged.entry
        if judged.filtered is not None:
            folder, dialogues, entry, figures = judged.filtered
            if dialogues:
                ctx.filtered.append(FilteredSet(str(folder), sizes(dialogues, built.labels), entry,
                                                {"judge": figures}))
        return judgement.unjudged == judgement.failed  # every dialogue asked (none waits for postprocess_only)

    def readme(self, card: dict[str, Any]) -> str:
        """The blind LLM judge: its model, the agreement and the per label figures."""
        judge = card.get("judge")
        if judge is None:
            return ""
        dialogues = judge["dialogues"]
        kappa = "-" if judge["kappa"] is None else f"{judge['kappa']:.3f}"
        plot = judge.get("files", {}).get("confusion")   # a filtered set's figures come without a plot
        confusion = f"; confusion: `{plot}`" if plot else ""
        rows = [(label, f["generated"], f["judged"], percent(f["precision"]), percent(f["recall"]))
                for label, f in judge["per_label"].items()]
        model = judge["model"] or "not asked yet"
        return (f"\n**Blind LLM judge** (beyond the paper): `{model}` via the `{judge['llm']['backend']}` "
                f"backend labelled every utterance without seeing the generated labels. Agreement with the generated "
                f"labels: {percent(judge['accuracy'])}% of {judge['utterances']} utterances, Cohen's kappa {kappa}; "
                f"{dialogues['judged']} dialogues judged, {dialogues['unjudged']} without a judge answer. Per label "
                f"(precision and recall of the judge against the generated label, %{confusion}):\n\n"
                f"{table(rows, ('label', 'generated', 'judged', 'precision', 'recall'))}\n\n"
                f"The judge's {tokens_text(judge.get('tokens'))[0].lower()}{tokens_text(judge.get('tokens'))[1:]}.\n")
