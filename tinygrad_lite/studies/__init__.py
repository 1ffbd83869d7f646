"""The numbers behind the figures: optimizer races, moving averages, batch sizes, optimizer comparisons.

Nothing here imports matplotlib; `tinygrad_lite.plots` draws these results.
"""
