"""The work behind the figure commands: the numbers of optimizer races, moving averages, batch sizes,
optimizer comparisons and learning-rate schedules, and the small MLP whose loss graph `tinygrad-lite graph` draws.

Nothing here imports matplotlib; `tinygrad_lite.plots` draws the numbers, `tinygrad_lite.introspect` the graph.
"""
