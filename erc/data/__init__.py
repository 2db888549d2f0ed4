"""Conversations: one data model, the benchmarks' label sets, and loaders for their file formats."""

from erc.data.formats.synthetic_jsonl import read_dialogues_jsonl, write_dialogues_jsonl
from erc.data.labels import BENCHMARKS, benchmark_info, canonical_label, label_set, sentiment_of
from erc.data.load import default_data_dir, load_benchmark, load_benchmark_with_report, split_name
from erc.data.schema import SOURCES, SPLITS, DataError, Dialogue, MissingDataError, Utterance

__all__ = [
    "BENCHMARKS", "SOURCES", "SPLITS", "DataError", "Dialogue", "MissingDataError", "Utterance", "benchmark_info",
    "canonical_label", "default_data_dir", "label_set", "load_benchmark", "load_benchmark_with_report",
    "read_dialogues_jsonl", "sentiment_of", "split_name", "write_dialogues_jsonl",
]
