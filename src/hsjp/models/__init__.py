"""Pose networks (backbone + heatmap head) and their weights."""

from hsjp.models.posenet import ARCHS, PoseNet, create_model

__all__ = ["ARCHS", "PoseNet", "create_model"]
