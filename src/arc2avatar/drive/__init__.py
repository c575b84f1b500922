"""Driving an avatar with a face video (docs/driving.md): ``drive`` tracks dlib's 68 landmarks
(``track``), fits head pose and expression weights per frame (``fit``) against the template's
landmark vertices (``landmarks``), and renders the driven avatar (``run``)."""

from __future__ import annotations

from arc2avatar.drive.run import DriveConfig, DriveResult, drive, sequence_json

__all__ = ["DriveConfig", "DriveResult", "drive", "sequence_json"]
