"""Merge-truncate-merge (bayescmoe.theory.mtm) on hand-worked measures and on posterior draws built by hand."""

import numpy as np
import pytest
import xarray as xr

import bayescmoe as bc
from bayescmoe.theory.mtm import atom_distance, merge_truncate_merge


def atoms(beta, eta, b, nu):
    return {"beta": np.array(beta, float)[:, None], "eta": np.array(eta, float)[:, None],
            "b": np.array(b, float), "nu": np.array(nu, float), "tau": np.zeros(len(b))}  # fmt: skip


def test_the_distance_is_the_cell_term_of_the_voronoi_loss():
    a = atoms([0.0, 0.3], [1.0, 1.4], [0.0, 0.4], [0.2, 0.5])
    # ||(0.3, 0.4)|| = 0.5, to the power 4: 0.0625; ||(0.4, 0.3)|| = 0.5, squared: 0.25
    assert atom_distance(a, 0, 1) == pytest.approx(0.0625 + 0.25, rel=1e-12)
    assert atom_distance(a, 0, 1, r=6) == pytest.approx(0.5**6 + 0.5**3, rel=1e-12)
    assert atom_distance(a, 1, 0) == atom_distance(a, 0, 1)


def test_two_close_atoms_merge_into_the_heavier_one():
    a = atoms([0.0, 0.01, 5.0], [1.0, 1.01, -1.0], [0.0, 0.0, 2.0], [0.3, 0.3, 0.3])
    w = merge_truncate_merge([0.2, 0.5, 0.4], a, eps=0.01)
    # delta(0, 1) = 0.01^4 + (0.01^2)... = 1e-8 + 1e-4 <= 0.01: atom 0 joins atom 1 (heavier); atom 2 is far
    assert w == pytest.approx([0.0, 0.7, 0.4])


def test_a_light_far_atom_is_truncated_into_its_nearest_kept_atom():
    a = atoms([0.0, 4.0, 1.0], [1.0, -1.0, 0.8], [0.0, 1.0, 0.2], [0.3, 0.3, 0.3])
    w = merge_truncate_merge([0.5, 0.45, 0.005], a, eps=0.01)
    # atom 2 is farther than eps from both (delta to 0: 1.04^2 + 0.04 = 1.1216) but weighs 0.005 <= eps; nearer to 0
    assert atom_distance(a, 2, 0) < atom_distance(a, 2, 1)
    assert w == pytest.approx([0.505, 0.45, 0.0])


def test_the_second_merge_weighs_the_distance_by_the_lighter_atom():
    a = atoms([0.0, 0.2, 5.0], [1.0, 1.3, -1.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3])
    d01 = 0.2**4 + 0.3**2  # 0.0916 > eps: no merge in step 1; 0.05 * 0.0916 = 0.00458 <= eps: merged in step 3
    assert atom_distance(a, 0, 1) == pytest.approx(d01)
    assert merge_truncate_merge([0.6, 0.05, 0.35], a, eps=0.02) == pytest.approx([0.65, 0.0, 0.35])
    # heavier, the same atom stays: 0.3 * 0.0916 > 0.02
    assert merge_truncate_merge([0.6, 0.3, 0.35], a, eps=0.02) == pytest.approx([0.6, 0.3, 0.35])


def test_separated_heavy_atoms_are_all_kept_and_the_order_does_not_matter():
    a = atoms([0.0, 3.0, -3.0], [1.0, -1.0, 0.0], [0.0, 1.0, 2.0], [0.1, 0.2, 0.3])
    w = [0.3, 0.5, 0.2]
    assert (merge_truncate_merge(w, a, eps=0.05) > 0).sum() == 3
    perm = [2, 0, 1]
    b = {k: v[perm] for k, v in a.items()}
    assert merge_truncate_merge(np.asarray(w)[perm], b, eps=0.5) == pytest.approx(
        merge_truncate_merge(w, a, eps=0.5)[perm]
    )


def test_bad_weights_are_named():
    with pytest.raises(bc.BayescmoeError, match="finite and non-negative"):
        merge_truncate_merge([0.5, np.nan], atoms([0, 1], [0, 1], [0, 1], [1, 1]), eps=0.1)


def posterior(spec, draws_per_chain, rng, duplicate_share):
    """Two chains of a K = 2 model whose first prompt sits at the truth; the second either duplicates it
    (``duplicate_share`` of the draws) or has a negligible weight far away."""
    S = 2 * draws_per_chain
    dup = rng.random(S) < duplicate_share
    # a duplicate sits 0.05 from the first prompt in eta: delta = 0.05^2 = 0.0025 on every draw
    beta = np.where(dup[:, None], [0.0, 0.0], [0.0, 2.0]) + 0.01 * rng.standard_normal((S, 1))
    tau = np.where(dup[:, None], np.log([0.3, 0.3]), np.log([0.6, 1e-4]))
    eta = np.where(dup[:, None], [1.0, 1.05], [1.0, -3.0]) + 0.01 * rng.standard_normal((S, 1))
    b = np.where(dup[:, None], [0.5, 0.5], [0.5, 3.0])
    nu = np.full((S, 2), 0.3)
    shape = (2, draws_per_chain, 2)
    ds = xr.Dataset(
        {
            "beta": (("chain", "draw", "prompt", "covariate"), beta.reshape(shape)[..., None]),
            "tau": (("chain", "draw", "prompt"), tau.reshape(shape)),
            "eta": (("chain", "draw", "prompt", "covariate"), eta.reshape(shape)[..., None]),
            "b": (("chain", "draw", "prompt"), b.reshape(shape)),
            "nu": (("chain", "draw", "prompt"), nu.reshape(shape)),
        }
    )
    return ds, dup


def test_posterior_prompts_counts_each_draws_atoms_and_does_not_depend_on_the_units():
    spec = bc.load_spec("overfit_laplace_k2_on_1")
    rng = np.random.default_rng(21)
    ds, _ = posterior(spec, 200, rng, duplicate_share=0.3)
    n = 1000
    X = rng.standard_normal((n, 1))
    y = rng.standard_normal(n)
    # the draws are in standardised units; the same model in the data's units X' = 10 X + 3, y' = 5 y - 2, by hand:
    # a prompt's mean 5 (eta z + b) - 2 with z = (x' - c) / s, its variance 25 nu, its gate beta z + tau
    s, c, a, e = 10 * X.std(), 10 * X.mean() + 3, 5 * y.std(), 5 * y.mean() - 2
    user = ds.copy()
    user["eta"] = ds["eta"] * a / s
    user["b"] = a * ds["b"] + e - (ds["eta"] * a / s).isel(covariate=0) * c
    user["nu"] = ds["nu"] * a**2
    user["beta"] = ds["beta"] / s
    user["tau"] = ds["tau"] - (ds["beta"] / s).isel(covariate=0) * c
    obs = xr.Dataset({"y": ("obs", 5 * y - 2)})
    standard = xr.DataTree.from_dict({"/posterior": ds, "/observed_data": obs})
    in_units = xr.DataTree.from_dict({"/posterior": user, "/observed_data": obs})
    result = bc.posterior_prompts(standard, spec)
    # every duplicate draw merges (delta 0.0025 against eps = sqrt(log n / n) = 0.083); every other draw truncates
    assert result.counts == {1: pytest.approx(1.0)}
    assert result.chosen == 1 and result.draws == 400 and result.eps == pytest.approx(np.sqrt(np.log(n) / n))
    assert result.weight[2][0] == pytest.approx(1e-4, rel=1e-9)  # the 5% quantile: a light far draw
    # whatever the labels: the heavier prompt of a draw weighs 0.3 (duplicates) or 0.6, the lighter 0.3 or 1e-4
    assert result.ranked[1][2] == pytest.approx(0.6) and result.ranked[2][0] == pytest.approx(1e-4, rel=1e-9)
    assert result.ranked[1][0] == pytest.approx(0.3) and result.ranked[2][2] == pytest.approx(0.3)
    again = bc.posterior_prompts(in_units, spec, 10 * X + 3, 5 * y - 2)
    assert again.counts == result.counts and again.weight[2] == pytest.approx(result.weight[2], rel=1e-8)
    assert again.nearest[1] == pytest.approx(result.nearest[1], rel=1e-6)
    # with a tiny eps (8e-8) nothing merges (0.3 * 0.0025 > eps too) and nothing is light enough to truncate
    assert bc.posterior_prompts(standard, spec, c=1e-6).counts == {2: pytest.approx(1.0)}
    assert "merge-truncate-merge" in result.table()


def test_posterior_prompts_names_what_it_needs():
    with pytest.raises(bc.BayescmoeError, match="at least 2 prompts"):
        bc.posterior_prompts(None, bc.load_spec("softmax_distinguishable"))
    spec = bc.load_spec("overfit_laplace_k2_on_1")
    ds, _ = posterior(spec, 5, np.random.default_rng(0), 0.5)
    tree = xr.DataTree.from_dict({"/posterior": ds.drop_vars("nu")})
    with pytest.raises(bc.BayescmoeError, match="no 'nu'"):
        bc.posterior_prompts(tree, spec)
    with pytest.raises(bc.BayescmoeError, match="observed_data"):
        bc.posterior_prompts(xr.DataTree.from_dict({"/posterior": ds}), spec)
