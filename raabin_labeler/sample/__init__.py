"""The synthetic sample project: smear photos from two cameras, exact truth, two experts.

``python -m raabin_labeler.sample --out sample_data --seed 7`` (or ``raabin-labeler sample``)
writes it; ``sample_data/`` in the repository is that output (issue 2, item 8).
"""
from .build import SampleSummary, generate_sample
from .scene import LABELS, SampleConfig, plan_sample

__all__ = ["LABELS", "SampleConfig", "SampleSummary", "generate_sample", "plan_sample"]
