"""hsjp: Heatmap-Style Jigsaw Puzzle pretraining for top-down 2D human-pose networks."""

__version__ = "0.1.0"
