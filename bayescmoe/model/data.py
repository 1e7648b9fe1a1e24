"""Checking covariates and responses, and reading and writing them as CSV.

Every problem is a :class:`~bayescmoe.exceptions.DataError` whose message names
the problem and the fix (which rows hold NaN, which columns are missing...).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bayescmoe.exceptions import DataError
from bayescmoe.model.spec import Spec

__all__ = [
    "check_data",
    "check_f0",
    "check_covariates",
    "check_response",
    "check_f0_mean",
    "take_rows",
    "as_array",
    "read_columns",
    "read_csv",
    "write_csv",
]


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(r) for r in rows[:5])
    return shown + (f" and {rows.size - 5} more" if rows.size > 5 else "")


def _as_float(value: Any, what: str) -> np.ndarray:
    try:  # aligned: arrays that crossed a pickle 5 transfer (Dask's results) can be unaligned; the kernels refuse them
        return np.require(np.asarray(value, dtype=float), requirements=["A"])
    except (TypeError, ValueError) as err:
        raise DataError(f"{what} must be numeric: {err}") from None


def as_array(X: Any, what: str = "X") -> np.ndarray:
    """``X`` as a float array: a DataFrame's values (``to_numpy``), or any array-like."""
    return _as_float(X.to_numpy(dtype=float) if hasattr(X, "to_numpy") else X, what)


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows ``rows`` (integer positions) of ``X``, keeping its type: a DataFrame by ``iloc``, else an array."""
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def check_covariates(X: Any, n_features: int | None = None, *, who: str = "the model") -> np.ndarray:
    """``X`` as a finite float array of shape (n, d), checked before any arithmetic on it.

    ``n_features``: the number of columns the caller was fitted on (scikit-learn's ``n_features_in_``); a
    1-D ``X`` is one covariate when it is 1.  Errors name the rows holding NaN or inf, and a wrong number of
    columns in scikit-learn's words.

    >>> check_covariates([[0.0, 1.0], [np.nan, 2.0]])
    Traceback (most recent call last):
    ...
    bayescmoe.exceptions.DataError: X has NaN or inf in row 1 (0-based); remove or impute those rows
    >>> check_covariates(np.zeros((3, 1)), 2, who="ContaminatedMoE")
    Traceback (most recent call last):
    ...
    bayescmoe.exceptions.DataError: X has 1 features, but ContaminatedMoE is expecting 2 features as input; pass the columns it was fitted on, in the same order
    """
    X = as_array(X)
    if X.ndim == 1 and n_features in (None, 1):
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"X must be a 2-D array of shape (n, {n_features or 'd'}), got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(
            f"X has {X.shape[1]} features, but {who} is expecting {n_features} features as input; pass the "
            "columns it was fitted on, in the same order"
        )
    bad = ~np.isfinite(X).all(axis=1)
    if bad.any():
        word = "row" if bad.sum() == 1 else "rows"
        raise DataError(f"X has NaN or inf in {word} {_rows(bad)} (0-based); remove or impute those rows")
    return X


def check_response(y: Any, n: int | None = None) -> np.ndarray:
    """``y`` as a finite float vector (a column (n, 1) is flattened), of length ``n`` when given."""
    y = _as_float(y, "y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"y must be a 1-D array of shape (n,), got shape {y.shape}")
    if n is not None and y.shape[0] != n:
        raise DataError(f"X has {n} rows but y has {y.shape[0]}; they must match")
    bad = ~np.isfinite(y)
    if bad.any():
        word = "row" if bad.sum() == 1 else "rows"
        raise DataError(f"y has NaN or inf in {word} {_rows(bad)} (0-based); remove or impute those rows")
    return y


def check_f0_mean(values: Any, n: int) -> np.ndarray:
    """A frozen model's predictions: one finite number per row, the bad rows named (0-based, of all rows)."""
    values = _as_float(values, "f0_mean").reshape(-1) if np.ndim(values) else _as_float(values, "f0_mean")
    if values.shape != (n,):
        raise DataError(f"f0_mean must have one value per observation ({n}), got shape {np.shape(values)}")
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(f"f0_mean has NaN or inf in rows {_rows(bad)} (0-based); fix or remove those rows")
    return values


def check_data(spec: Spec, X: Any, y: Any, *, min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``X`` (n, d) and ``y`` (n,) against ``spec``; return float64 copies.

    A 1-D ``X`` is accepted as one covariate when ``spec.dim == 1``; ``y`` of shape
    (n, 1) is flattened.

    Raises
    ------
    DataError
        On non-numeric values, NaN or inf (naming the rows), wrong dimensions,
        ``len(X) != len(y)``, a number of covariates other than ``spec.dim``, or
        fewer than ``min_n`` observations.

    Examples
    --------
    >>> from bayescmoe import load_spec
    >>> spec = load_spec("softmax_distinguishable")
    >>> check_data(spec, np.zeros((3, 8)), [0.0, np.nan, 1.0])
    Traceback (most recent call last):
    ...
    bayescmoe.exceptions.DataError: y has NaN or inf in row 1 (0-based); remove or impute those rows
    """
    X = _as_float(X, "X")
    y = _as_float(y, "y")
    if X.ndim == 1 and spec.dim == 1:
        X = X[:, None]
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if X.ndim != 2:
        raise DataError(f"X must be a 2-D array of shape (n, {spec.dim}), got shape {X.shape}")
    if y.ndim != 1:
        raise DataError(f"y must be a 1-D array of shape (n,), got shape {y.shape}")
    if X.shape[1] != spec.dim:
        raise DataError(
            f"X has {X.shape[1]} covariate columns but spec {spec.name!r} has dim = {spec.dim}; "
            "pass the matching columns or use a spec of that dimension"
        )
    if X.shape[0] != y.shape[0]:
        raise DataError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; they must match")
    for name, bad in (("X", ~np.isfinite(X).all(axis=1)), ("y", ~np.isfinite(y))):
        if bad.any():
            word = "row" if bad.sum() == 1 else "rows"
            raise DataError(f"{name} has NaN or inf in {word} {_rows(bad)} (0-based); remove or impute those rows")
    if y.shape[0] < min_n:
        raise DataError(
            f"{y.shape[0]} observations cannot identify {min_n - 1} parameters of {spec.name!r}; "
            f"give at least {min_n} rows"
        )
    return np.ascontiguousarray(X), np.ascontiguousarray(y)  # float64 already; copied only if strided


def check_f0(spec: Spec, X: np.ndarray, f0_mean: Any = None, f0_scale: Any = None):
    """The frozen expert's per-observation mean and scale, checked against ``spec`` (MODEL.md section 8).

    ``f0_mean`` is needed when the spec's ``[pretrained]`` says ``mean = "data"``: an array of one value per
    row of ``X``, or any object with a ``predict(X)`` method (a fitted scikit-learn style model), called on
    ``X``.  ``f0_scale`` likewise with ``scale = "data"`` (an array; positive).  Returns ``(mean, scale)``
    as float arrays, ``None`` where the spec does not take them.

    >>> from bayescmoe import load_spec
    >>> check_f0(load_spec("softmax_distinguishable"), np.zeros((2, 8)), f0_mean=[0.0, 1.0])
    Traceback (most recent call last):
    ...
    bayescmoe.exceptions.DataError: f0_mean was given but the frozen expert of 'softmax_distinguishable' has a formula mean (phi0(eta0 . x + b0)); remove f0_mean, or use a spec with mean = "data"
    """
    pre, n = spec.pretrained, X.shape[0]
    out = []
    for what, value, wanted in (
        ("f0_mean", f0_mean, pre is not None and pre.mean_from_data),
        ("f0_scale", f0_scale, pre is not None and pre.scale_from_data),
    ):
        key = "mean" if what == "f0_mean" else "scale"
        if value is None:
            if wanted:
                raise DataError(
                    f'spec {spec.name!r} takes the frozen expert\'s {key} from the data ({key} = "data"): pass '
                    f"{what}= (an array of one value per observation{', or a fitted model with predict(X)' if key == 'mean' else ''})"
                    f", or a CSV column {what} (--{what.replace('_', '-')}-column)"
                )
            out.append(None)
            continue
        if not wanted:
            formula = "has a formula mean (phi0(eta0 . x + b0))" if key == "mean" else "has a fixed scale"
            raise DataError(
                f"{what} was given but the frozen expert of {spec.name!r} "
                + (formula if pre is not None else "does not exist (a plain mixture of experts)")
                + f'; remove {what}, or use a spec with {key} = "data"'
            )
        if key == "mean" and hasattr(value, "predict"):
            try:
                value = value.predict(X)
            except Exception as err:  # the user's model: say which call failed
                raise DataError(f"f0_mean.predict(X) failed: {type(err).__name__}: {err}") from None
        value = _as_float(value, what).reshape(-1) if np.ndim(value) else _as_float(value, what)
        if value.shape != (n,):
            raise DataError(f"{what} must have one value per observation ({n}), got shape {np.shape(value)}")
        bad = ~np.isfinite(value) if key == "mean" else ~(np.isfinite(value) & (value > 0))
        if bad.any():
            problem = "NaN or inf" if key == "mean" else "values that are not positive and finite"
            raise DataError(f"{what} has {problem} in rows {_rows(bad)} (0-based); fix or remove those rows")
        out.append(np.ascontiguousarray(value))
    return tuple(out)


def read_columns(path: str | Path, columns: Sequence[str] | None = None, *, hint: str = ""):
    """Numeric columns of a CSV file with a header row: ``(names, values)``, ``values`` (rows, columns).

    ``columns=None`` reads every column.  Errors name the file, the line and the column, and end with
    ``hint`` (how to choose other columns) when a column is missing.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"cannot read data file {str(path)!r}: {err}") from None
    if not header:
        wanted = f"; expected a header row {','.join(columns)}" if columns else "; expected a header row"
        raise DataError(f"{path}: the file is empty{wanted}")
    header = [h.strip() for h in header]
    wanted = list(header if columns is None else columns)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"the header has {', '.join(header)}" + (f" ({hint})" if hint else "")
        )
    index = [header.index(c) for c in wanted]
    values = np.empty((len(rows), len(index)))
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise DataError(f"{path}: line {r + 2} has {len(row)} cells; the header has {len(header)}")
        for j, i in enumerate(index):
            try:
                values[r, j] = float(row[i])
            except ValueError:
                raise DataError(
                    f"{path}: line {r + 2}, column {header[i]!r} holds {row[i]!r}, which is not a number"
                ) from None
    return wanted, values


def read_csv(
    path: str | Path,
    spec: Spec,
    *,
    x_columns: Sequence[str] | None = None,
    y_column: str = "y",
    with_f0: bool = False,
    f0_mean_column: str = "f0_mean",
    f0_scale_column: str = "f0_scale",
):
    """Read covariates and responses from a CSV file with a header row.

    Parameters
    ----------
    path : str or Path
        The file.
    spec : Spec
        Decides how many covariates are expected.
    x_columns : sequence of str, optional
        The covariate columns, in order; default ``x1 ... xd``.
    y_column : str
        The response column; default ``y``.
    with_f0 : bool
        Also return the frozen expert's per-observation mean and scale, read from ``f0_mean_column`` and
        ``f0_scale_column`` where the spec takes them from the data (``None`` where it does not).

    Returns
    -------
    ``(X, y)``, or ``(X, y, f0_mean, f0_scale)`` with ``with_f0=True``.
    """
    x_columns = list(x_columns) if x_columns is not None else list(spec.covariate_names)
    if len(x_columns) != spec.dim:
        raise DataError(f"{len(x_columns)} covariate columns were named but spec {spec.name!r} has dim = {spec.dim}")
    pre = spec.pretrained
    extra = []
    if with_f0 and pre is not None:
        extra = ([f0_mean_column] if pre.mean_from_data else []) + ([f0_scale_column] if pre.scale_from_data else [])
    options = "--x-columns / --y-column" + (" / --f0-mean-column / --f0-scale-column" if extra else "")
    _, values = read_columns(path, x_columns + [y_column] + extra, hint=f"choose columns with {options}")
    d = len(x_columns)
    X, y = values[:, :d], values[:, d]
    if not with_f0:
        return X, y
    columns = dict(zip(extra, values[:, d + 1 :].T))
    mean = columns.get(f0_mean_column) if pre is not None and pre.mean_from_data else None
    scale = columns.get(f0_scale_column) if pre is not None and pre.scale_from_data else None
    return X, y, mean, scale


def write_csv(
    path: str | Path, X: np.ndarray, y: np.ndarray, names: Sequence[str], extra: dict[str, np.ndarray] | None = None
) -> None:
    """Write covariates and responses as CSV with header ``names..., y`` (full float precision), and any
    ``extra`` columns after them (such as ``f0_mean``)."""
    extra = extra or {}
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([*names, "y", *extra])
            for i, (xi, yi) in enumerate(zip(X, y)):
                writer.writerow(
                    [repr(float(v)) for v in xi] + [repr(float(yi))] + [repr(float(c[i])) for c in extra.values()]
                )
    except OSError as err:
        raise DataError(f"cannot write data file {str(path)!r}: {err}") from None
