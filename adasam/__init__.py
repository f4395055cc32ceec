"""ADA-SAM Studio's ML core: ingestion, classifier + GradCAM prompts, LoRA-adapted SAM.

Importing this package is cheap (no torch); submodules import what they need.
"""

__version__ = "0.1.0"
