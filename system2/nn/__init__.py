"""From-scratch research transformers: Llama-style layers, position encodings, KV-cached decoding."""
