"""Data sets: the canonical sample format, converters, augmentation and loading.

Shared by training and evaluation, so neither imports the other.
"""
