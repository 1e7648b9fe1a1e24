"""CSV reading and writing, and its errors."""

import numpy as np
import pytest

import bayescmoe as bc


@pytest.fixture
def spec():
    return bc.load_spec("constant_gaussian_tanh")  # d = 4


def test_round_trip_is_exact(tmp_path, spec):
    X, y, _ = bc.simulate(spec, 50, seed=0)
    path = tmp_path / "d.csv"
    bc.write_csv(path, X, y, spec.covariate_names)
    X2, y2 = bc.read_csv(path, spec)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


def test_custom_column_names_and_extra_columns(tmp_path, spec):
    path = tmp_path / "d.csv"
    path.write_text("id,a,b,c,d,target\n1,0.1,0.2,0.3,0.4,1.5\n2,-0.1,-0.2,-0.3,-0.4,-1.5\n")
    X, y = bc.read_csv(path, spec, x_columns=["a", "b", "c", "d"], y_column="target")
    np.testing.assert_array_equal(y, [1.5, -1.5])
    np.testing.assert_array_equal(X[1], [-0.1, -0.2, -0.3, -0.4])


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the file is empty"),
        ("x1,x2,x3,y\n1,2,3,4\n", "missing column x4"),
        ("x1,x2,y\n1,2,4\n", "missing columns x3, x4"),
        ("x1,x2,x3,x4,y\n1,2,3,four,5\n", "line 2, column 'x4' holds 'four', which is not a number"),
        ("x1,x2,x3,x4,y\n1,2,3,4,5\n1,2,3\n", "line 3 has 3 cells; the header has 5"),
        ("x1,x2,x3,x4,y\n1,2,3,4,\n", "line 2, column 'y' holds '', which is not a number"),
    ],
)
def test_malformed_files(tmp_path, spec, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(bc.DataError, match=message):
        bc.read_csv(path, spec)


def test_unreadable_files(tmp_path, spec):
    with pytest.raises(bc.DataError, match="cannot read data file"):
        bc.read_csv(tmp_path / "missing.csv", spec)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(bc.DataError, match="cannot read data file"):
        bc.read_csv(binary, spec)
    with pytest.raises(bc.DataError, match="2 covariate columns were named but spec"):
        bc.read_csv(binary, spec, x_columns=["a", "b"])


def test_nan_cells_are_reported_by_row(tmp_path, spec):
    path = tmp_path / "nan.csv"
    path.write_text("x1,x2,x3,x4,y\n1,2,3,4,5\n1,nan,3,4,5\n")
    X, y = bc.read_csv(path, spec)
    with pytest.raises(bc.DataError, match=r"X has NaN or inf in row 1 \(0-based\)"):
        bc.loglik(spec, X, y, spec.truth_at(2))
