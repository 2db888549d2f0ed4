"""The experiment's two axes, benchmark and source, and the one spelling of every name made from them.

A dataset is ``<benchmark>`` (the benchmark's own data, source ``org``) or ``<benchmark>_<source>`` (a set
generated for it, in ``<data_dir>/synthetic/<benchmark>_<source>/``); a test set in metric names is always
``<benchmark>_<source>`` (``test/meld_org/wf1``). Every module that makes or reads such a name goes through
here, so the list of sources and the parsing rule live in one place.

Beyond the paper's three sources, a generated set passed through a filter is a source of its own,
``<source>_<filter>`` (``bal_probe``: ``meld_bal`` without the dialogues the fidelity probe of :mod:`erc.quality`
rejects, in ``synthetic/meld_bal_probe/``; ``bal_judge``: those the blind LLM judge of :mod:`erc.judge` agrees
with), trainable like any generated set (``data=meld_bal_probe``; a filter of one's own, a post-processing step,
as ``data=generated data.benchmark=meld data.source=bal_<filter>``). A filter's name is a lowercase word, so the
rule holds for filters this module has never heard of. It is not one of the
paper's sources: :data:`SOURCES` (what evaluation's tables and tests are made of) and :func:`datasets_of` (an
experiment's test sets) keep the paper's design, and a filtered set's test split, a subset of its unfiltered
set's, is not added to them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from erc.data.labels import BENCHMARKS
from erc.errors import DataError

# org: the benchmark's own data; nat / bal: LLM-generated "natural" and "balanced" sets (the paper's order).
SOURCES: tuple[str, ...] = ("org", "nat", "bal")
GENERATED_SOURCES: tuple[str, ...] = tuple(s for s in SOURCES if s != "org")
# Display names (tables, plots).
SOURCE_TITLES: dict[str, str] = {"org": "Org", "nat": "Nat", "bal": "Bal"}
# The filters that ship with erc (probe: erc.quality's fidelity filter; judge: the blind LLM judge's agreement
# filter, erc.judge), and the generate.py options that ask for each; any other lowercase word names a filter too.
FILTERS: tuple[str, ...] = ("probe", "judge")
FILTER_OPTIONS: dict[str, str] = {"probe": "postprocess.filter=probe", "judge": "judge=llm judge.filter=true"}
FILTERED_SOURCES: tuple[str, ...] = tuple(f"{s}_{f}" for f in FILTERS for s in GENERATED_SOURCES)
_FILTER_NAME = re.compile(r"[a-z][a-z0-9]*")


def is_filtered_source(source: str) -> bool:
    """``bal_probe``, ``nat_long``: a generated source, ``_``, a filter's name (a lowercase word)."""
    head, _, tail = source.partition("_")
    return head in GENERATED_SOURCES and _FILTER_NAME.fullmatch(tail) is not None


def is_source(source: str) -> bool:
    """Every source a dataset on disk may have: the paper's and the filtered ones."""
    return source in SOURCES or is_filtered_source(source)


def check_axes(benchmark: str, source: str, where: str = "data") -> None:
    """Raise :class:`DataError` naming ``<where>.benchmark`` or ``<where>.source`` when either is unknown."""
    if benchmark not in BENCHMARKS:
        raise DataError(f"{where}.benchmark={benchmark!r} is not a benchmark; valid: {', '.join(BENCHMARKS)}")
    if not is_source(source):
        raise DataError(f"{where}.source={source!r} is not a source; valid: {', '.join(SOURCES)} "
                        f"(org: the benchmark's own data; nat, bal: a generated set), or a filtered generated set: "
                        f"{', '.join(FILTERED_SOURCES)} or <nat|bal>_<filter> for a filter of your own")


def dataset_name(benchmark: str, source: str) -> str:
    """``("meld", "org")`` -> ``"meld"``; ``("meld", "bal")`` -> ``"meld_bal"``."""
    check_axes(benchmark, source)
    return benchmark if source == "org" else f"{benchmark}_{source}"


def pretrain_set(benchmark: str, source: str) -> str | None:
    """The generated set an experiment pretrains on: ``dataset_name(benchmark, source)``, None for ``org``."""
    return None if source == "org" else dataset_name(benchmark, source)


def test_set_name(benchmark: str, source: str) -> str:
    """The test set's name in metrics and tables: ``("meld", "org")`` -> ``"meld_org"``."""
    check_axes(benchmark, source)
    return f"{benchmark}_{source}"


def parse_dataset(name: str) -> tuple[str, str]:
    """``"meld_bal"`` -> ``("meld", "bal")``; ``"meld"`` -> ``("meld", "org")``; ``"meld_bal_probe"`` ->
    ``("meld", "bal_probe")``; else :class:`DataError`."""
    benchmark, _, source = name.partition("_")
    if benchmark not in BENCHMARKS or not (source == "" or source in GENERATED_SOURCES or is_filtered_source(source)):
        raise DataError(f"unknown dataset {name!r}; valid: a benchmark ({', '.join(BENCHMARKS)}) or "
                        f"{' / '.join(f'<benchmark>_{s}' for s in GENERATED_SOURCES)} for a generated set "
                        f"({' / '.join(f'<benchmark>_{s}' for s in FILTERED_SOURCES)} for a filtered one)")
    return benchmark, source or "org"


def parse_test_set(name: str) -> tuple[str | None, str | None]:
    """``"meld_bal"`` -> ``("meld", "bal")``, ``"meld_org"`` -> ``("meld", "org")``; a name of another form
    -> ``(None, None)`` (a column a user's scores file may hold that is not a test set of the paper's design)."""
    head, _, tail = name.rpartition("_")
    if head and tail in SOURCES:
        return head, tail
    return None, None


def filtered_source(source: str, filter_name: str) -> str:
    """``("bal", "probe")`` -> ``"bal_probe"``: the source of a generated set passed through a filter."""
    name = f"{source}_{filter_name}"
    if not is_filtered_source(name):
        raise DataError(f"no filtered source {name!r}: a filter (a lowercase word: {', '.join(FILTERS)}, or one of "
                        f"your own) applies to the generated sources {', '.join(GENERATED_SOURCES)}")
    return name


def unfiltered_source(source: str) -> str:
    """``"bal_probe"`` -> ``"bal"``; a source that is not filtered is returned as it is."""
    return source.partition("_")[0] if is_filtered_source(source) else source


def datasets_of(benchmark: str) -> list[str]:
    """Every dataset of a benchmark, in source order: ``meld``, ``meld_nat``, ``meld_bal``."""
    return [dataset_name(benchmark, source) for source in SOURCES]


def generated_sets(names: Iterable[str]) -> list[str]:
    """The generated sets among dataset ``names`` (those whose source is not ``org``)."""
    return [name for name in names if parse_dataset(name)[1] != "org"]
