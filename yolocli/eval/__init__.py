"""Evaluation: COCO-style mAP (`yolocli val`), dataset readers and plots."""
