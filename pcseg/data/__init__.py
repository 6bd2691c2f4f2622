"""Datasets: the per-room cache, S3DIS and labelled-PLY preparation, splits."""
