"""Tokenizer, tokenized ArrayRecord shards, and the Grain input pipeline."""
