"""cmkd-bench: cross-modal knowledge distillation for emotion recognition."""

__version__ = "0.1.0"
