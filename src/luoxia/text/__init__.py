"""Text generation: the transformer, its tokenizer and chat templates, decoding, model formats."""
