"""One module per kind of model: what it is (defaults, loss, log lines) and what it does (load, generate, ...).
utils/generators.py registers each; nothing else asks for a model by name."""
