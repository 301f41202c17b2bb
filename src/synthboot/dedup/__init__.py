"""Deduplication outside a run: `dedup.file` dedups a JSONL file (`synthboot dedup`), `dedup.stream` is its
chunked exact/MinHash index for files too large for memory, and `dedup.cosine` the blocked cosine search the
semantic layer uses. The run's dedup stage and its layers stay in `synthboot.stages.dedup`."""
