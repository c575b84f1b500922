"""The benchmark harness behind ``arc2avatar bench`` (``harness``): eager vs fast path, per-stage
times and projections, with full-size random weights (``arc2avatar.testing``)."""
