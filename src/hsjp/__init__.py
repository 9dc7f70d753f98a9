"""hsjp: Heatmap-Style Jigsaw Puzzle pretraining for top-down 2D human-pose networks.

``from hsjp import PoseEstimator`` loads a trained model for prediction (see :mod:`hsjp.api`); it is
imported on first use, so ``import hsjp`` stays cheap for the command line.
"""

__version__ = "0.1.0"
__all__ = ["PoseEstimator", "PosePrediction"]


def __getattr__(name: str):
    if name in __all__:
        from hsjp import api

        return getattr(api, name)
    raise AttributeError(f"module 'hsjp' has no attribute {name!r}")
