"""Expressions over time and their correction: ``express``, sequences, ``animate``, ``refine-expression``.

Built on the face rig (``arc2avatar.avatar.rig``); expression correction runs the optimiser
(``arc2avatar.pipeline``) from the deformed avatar (paper §3.5, §4.3).
"""
