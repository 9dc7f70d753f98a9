"""Data path: COCO annotations -> person records -> augmented person crops -> training targets."""
