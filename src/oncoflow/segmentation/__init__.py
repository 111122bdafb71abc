"""nnU-Net v2 segmentation with a classification head: export, plans, trainer, prediction."""
