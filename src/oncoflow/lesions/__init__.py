"""Lesion crops for the deep models: lesion slices, non-lesion crops, context patches."""
