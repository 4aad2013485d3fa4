"""Speed helpers of the layer engine: worker-process environment, read-ahead,
the pandas preload and the scoped GC/switch-interval/Arrow-pool settings.

Anything that changes interpreter-wide state is applied only inside worker
processes or inside a ``with busy():`` block that restores it on every path.
"""
