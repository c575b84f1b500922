"""One writer per export format (docs/exports.md); ``arc2avatar.avatar.export`` picks one.

Each module's docstring gives its format's byte layout, version, and whether a library writes it
or it is written by hand (and why).
"""
