"""Sampling: the diffusion samplers and the objectives that turn a network's output into (noise, clean image)."""
