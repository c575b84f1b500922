"""The avatar as a product: load it, pose it, render it, export it, write its media.

This package sits above the building blocks (``splats``, ``head``, ``cameras``) and below the
optimiser (``pipeline``): everything that uses a finished avatar (``animate``, ``drive``,
``viewer``, ``evaluate``, the web app) builds on it, not on the optimiser.
"""
