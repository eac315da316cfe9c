"""Trained models as files: self-describing checkpoints, loading them back, and bench denoise's images."""
