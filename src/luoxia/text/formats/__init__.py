"""Model formats: each module reads (and writes) one on-disk format into our config + state dict."""
