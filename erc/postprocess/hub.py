"""A set's README as a Hugging Face dataset card: the YAML front matter the Hub and ``datasets`` read.

``datasets.load_dataset(<set folder>)`` (or ``load_dataset("user/name")`` once published with
:mod:`erc.publish`) reads the front matter's ``configs``: ``train.jsonl``, ``dev.jsonl`` as the ``validation`` split
(the name ``datasets`` users expect) and ``test.jsonl``, the same files erc's own loader reads, so there is one copy of
the data. ``dataset_info`` types each line as it is written, one dialogue a row, its ``utterances`` a list of
``{speaker, text, label, sentiment, id}`` whose ``label`` is a ClassLabel with the benchmark's names in its fixed class
order (``erc/data/labels.py``): class ids are the same in ``datasets`` as in erc's data, models and metrics. A row's
``meta`` (seed, fingerprint, target label...; keys vary with the options a set was made with) is typed as a JSON
string, because a struct type would have to list every key of every kind of set. A split with no dialogue is left
out of ``configs``: ``datasets`` refuses an empty data file.

The licence is the generating model's (its terms may bind the text it writes; erc's MIT licence covers the code,
not the data), ``unknown`` for a model not listed here; ``python -m erc.publish --license`` overrides it.
``source_datasets`` is ``original``: no benchmark text is in a set, only the benchmark's label names.
"""

from __future__ import annotations

from typing import Any

from huggingface_hub import DatasetCardData

from erc.data.labels import benchmark_info

# Hugging Face split name of each erc split.
HUB_SPLITS: dict[str, str] = {"train": "train", "dev": "validation", "test": "test"}

# A model name (lower case) containing the key -> its licence id on the Hub: the presets of conf/model/ and the
# embedded default. Checked in order, so a longer key comes before a shorter one it contains.
MODEL_LICENCES: tuple[tuple[str, str], ...] = (
    ("vicuna", "llama2"),                        # Vicuna v1.5 is a Llama 2 fine-tune: Llama 2 Community Licence
    ("llama-3.1", "llama3.1"),
    ("qwen2.5-7b", "apache-2.0"),
    ("mistral-7b-instruct-v0.3", "apache-2.0"),
    ("smollm2", "apache-2.0"),
)

# The Hub's size categories: (upper bound of rows, tag).
SIZE_CATEGORIES: tuple[tuple[int, str], ...] = (
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
)


def licence_of(model: str) -> str:
    """The Hub licence id of the text ``model`` wrote (``unknown`` when not in :data:`MODEL_LICENCES`)."""
    name = model.lower()
    return next((licence for key, licence in MODEL_LICENCES if key in name), "unknown")


def size_category(rows: int) -> str:
    return next((tag for bound, tag in SIZE_CATEGORIES if rows < bound), "1M<n<10M")


def features(labels: list[str]) -> list[dict[str, Any]]:
    """``dataset_info.features`` of a set's JSONL lines, ``label`` a ClassLabel of ``labels`` in their order."""
    def string(name: str) -> dict[str, Any]:
        return {"name": name, "dtype": "string"}

    label = {"name": "label", "dtype": {"class_label": {"names": {str(i): name for i, name in enumerate(labels)}}}}
    utterance = [string("speaker"), string("text"), label, string("sentiment"), string("id")]
    return [string("id"), {"name": "utterances", "list": utterance}, string("benchmark"), string("split"),
            string("source"), string("meta")]


def data_files(card: dict[str, Any]) -> list[dict[str, str]]:
    """The ``configs`` entry's split files: every split holding a dialogue, under its Hub name."""
    dialogues = card["counts"]["dialogues"]
    return [{"split": hub, "path": f"{split}.jsonl"} for split, hub in HUB_SPLITS.items() if dialogues.get(split)]


def metadata(card: dict[str, Any]) -> DatasetCardData:
    """The dataset-card metadata of a set's ``card``."""
    benchmark = benchmark_info(card["benchmark"])
    display, labels = benchmark.get("display_name", card["benchmark"]), list(benchmark["labels"])
    return DatasetCardData(
        pretty_name=f"{card['dataset']}: LLM-generated {card['mode']} {display}-style ERC dialogues",
        license=licence_of(card["generator"]["model"]),
        language=["en"],
        annotations_creators=["machine-generated"], language_creators=["machine-generated"],
        multilinguality=["monolingual"],
        size_categories=[size_category(card["counts"]["kept"])],
        source_datasets=["original"],
        task_categories=["text-classification"], task_ids=["multi-class-classification"],
        tags=["emotion-recognition-in-conversation", "erc", "synthetic", "llm-generated", card["benchmark"]],
        configs=[{"config_name": "default", "data_files": data_files(card)}],
        dataset_info={"features": features(labels)},
    )


def loading_text(card: dict[str, Any]) -> str:
    """The README's word on reading the set with ``datasets``."""
    splits = ", ".join(f"`{f['split']}` (`{f['path']}`)" for f in data_files(card))
    return (f"\nWith Hugging Face `datasets`: `load_dataset(\"<this folder or its Hub id>\")` gives {splits}, one "
            "dialogue a row; each utterance's `label` is a class id of the benchmark's fixed order "
            "(`features[\"utterances\"].feature[\"label\"].names`), and `meta` is a JSON string.\n")


def with_front_matter(card: dict[str, Any], body: str) -> str:
    """``body`` (the README of ``card``) as a dataset card: the front matter, the body and how to load it; a set
    that kept no dialogue has no file to load, and keeps its body alone."""
    if not card["counts"]["kept"]:
        return body
    return f"---\n{metadata(card).to_yaml()}\n---\n\n{body}{loading_text(card)}"
