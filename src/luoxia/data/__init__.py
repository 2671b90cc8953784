"""Data preparation: raw files → cleaned, filtered, deduplicated documents → tokenizer → token shards."""
