"""Measured curves analysed: a model's profile for a curve, the reflectivity it implies at
the data's own Q and resolution, and how well that explains the data.

Modules: ``measured``.
"""
