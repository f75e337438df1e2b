"""The main job, end to end: orchestrates data, models, training, inference, evaluation and export.

This is the last layer: it may import every other layer, and nothing imports it but the CLI.
"""
