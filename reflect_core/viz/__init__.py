"""Plotly figures with units on every axis, and the figures that describe a history record.

Modules: ``figures``, ``report``.
"""
