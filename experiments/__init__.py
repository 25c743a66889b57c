"""The study's experiments: data loading, the MNIST and Frey Face parts, figures and the report.

Run everything with ``python -m experiments run``; see :mod:`experiments.pipeline`.
"""
