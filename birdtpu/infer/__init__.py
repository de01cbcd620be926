"""Inference: soundscape windows, prediction and submission files."""
