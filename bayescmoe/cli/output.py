"""What the commands print with: a progress bar on stderr (studies report through a callback; they never
print), number formatting and JSON-safe values.
"""

from __future__ import annotations

import math
import sys

__all__: list[str] = []


class _Progress:
    """A progress bar with ETA on stderr (the studies report through a callback; they never print)."""

    def __init__(self, enabled: bool, unit: str = "fits"):
        self.enabled, self.t0, self.first, self.drawn, self.unit = enabled, None, 0, 0.0, unit

    def __call__(self, label: str, done: int, total: int) -> None:
        import time

        if not self.enabled:
            return
        now = time.perf_counter()
        if self.t0 is None or done < self.first:
            self.t0, self.first = now, done
        if done < total and now - self.drawn < 0.25:  # redraw at most four times a second
            return
        self.drawn = now
        spent = now - self.t0
        rate = (done - self.first) / spent if spent > 0 else 0.0
        eta = f"{(total - done) / rate:5.0f} s left" if rate > 0 else "  ... "
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label:<24} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {self.unit}, {eta}")
        if done >= total:
            sys.stderr.write(f"  ({spent:.0f} s)\n")
            self.t0 = None
        sys.stderr.flush()


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def _finite_or_none(value):
    """JSON-ready: nested lists of floats, NaN and infinities as None (entries the model fixes have no SD)."""
    import numpy as np

    value = np.asarray(value, dtype=float)
    if value.ndim == 0:
        return float(value) if np.isfinite(value) else None
    return [_finite_or_none(v) for v in value]


def _jsonable(value):
    """Nested dicts, lists and numbers made JSON-ready: NaN and infinities as None, numpy scalars as Python's."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value
