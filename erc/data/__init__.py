"""Conversations: one data model, the benchmarks' label sets, and loaders for their file formats."""

from erc.data.formats.synthetic_jsonl import read_dialogues_jsonl, write_dialogues_jsonl
from erc.data.labels import BENCHMARKS, benchmark_info, canonical_label, label_set, sentiment_of
from erc.data.load import default_data_dir, default_synthetic_dir, load_benchmark, load_benchmark_with_report
from erc.data.names import (
                            GENERATED_SOURCES,
                            SOURCES,
                            dataset_name,
                            datasets_of,
                            generated_sets,
                            parse_dataset,
                            parse_test_set,
                            test_set_name,
)
from erc.data.schema import SPLITS, DataError, Dialogue, MissingDataError, Utterance

__all__ = [
    "BENCHMARKS", "GENERATED_SOURCES", "SOURCES", "SPLITS", "DataError", "Dialogue", "MissingDataError", "Utterance",
    "benchmark_info", "canonical_label", "dataset_name", "datasets_of", "default_data_dir", "default_synthetic_dir",
    "generated_sets",
    "label_set", "load_benchmark", "load_benchmark_with_report", "parse_dataset", "parse_test_set",
    "read_dialogues_jsonl", "sentiment_of", "test_set_name", "write_dialogues_jsonl",
]
