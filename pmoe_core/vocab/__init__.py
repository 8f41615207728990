"""Benchmark label spaces, the unified vocabulary, and text embeddings of class names."""
