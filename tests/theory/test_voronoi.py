"""The Voronoi loss of MODEL.md section 10 on hand-worked cases (arithmetic written out here, not the code's)."""

import itertools
import math

import numpy as np
import pytest

import bayescmoe as bc


class Frozen:
    has_pretrained = True


class Plain:
    has_pretrained = False


def atoms(rows):
    """rows: (beta list, tau, eta list, b, nu) per prompt -> the params dict of MODEL.md."""
    return {
        "beta": [r[0] for r in rows],
        "tau": [r[1] for r in rows],
        "eta": [r[2] for r in rows],
        "b": [r[3] for r in rows],
        "nu": [r[4] for r in rows],
    }


TRUTH = atoms([([1.0, 0.0], 0.0, [2.0], 0.5, 1.0), ([-1.0, 2.0], math.log(2.0), [-1.0], -0.5, 0.5)])


def test_the_exact_fit_scores_zero_in_singleton_cells():
    r = bc.voronoi_loss(Frozen(), TRUTH, TRUTH)
    assert r.loss == 0.0 and r.cells == ((0,), (1,))
    assert r.cell_weight == pytest.approx([1.0, 2.0]) and r.true_weight == pytest.approx([1.0, 2.0])


def test_a_singleton_cell_adds_its_weight_error_and_first_order_distances():
    fit = atoms([([1.0, 0.3], math.log(1.5), [2.0], 0.1, 1.2), ([-1.0, 2.0], math.log(2.0), [-1.0], -0.5, 0.5)])
    # |1.5 - 1| + 1.5 (||(0, 0.3)|| + 0 + |0.1 - 0.5| + |1.2 - 1|); the second cell is exact
    expected = 0.5 + 1.5 * (0.3 + 0.4 + 0.2)
    assert bc.voronoi_loss(Frozen(), fit, TRUTH).loss == pytest.approx(expected, rel=1e-12)


def test_a_cell_of_two_prompts_uses_r_4_for_beta_and_b_and_r_2_for_eta_and_nu():
    truth = atoms([([1.0, 0.0], 0.0, [2.0], 0.5, 1.0)])
    fit = atoms([([1.1, 0.0], math.log(0.3), [2.1], 0.5, 1.2), ([0.9, 0.1], math.log(0.6), [1.8], 0.6, 0.9)])
    r = bc.voronoi_loss(Frozen(), fit, truth)
    assert r.cells == ((0, 1),)
    slow = [math.hypot(0.1, 0.0), math.sqrt(0.1**2 + 0.1**2 + 0.1**2)]  # ||(Dbeta, Db)||
    fast = [math.hypot(0.1, 0.2), math.hypot(0.2, 0.1)]  # ||(Deta, Dnu)||
    expected = abs(0.9 - 1.0) + 0.3 * (slow[0] ** 4 + fast[0] ** 2) + 0.6 * (slow[1] ** 4 + fast[1] ** 2)
    assert r.loss == pytest.approx(expected, rel=1e-12)
    assert r.cell_weight == pytest.approx([0.9])


def test_an_empty_cell_costs_its_true_weight():
    fit = atoms([([1.0, 0.0], math.log(0.5), [2.0], 0.5, 1.0), ([1.0, 0.0], math.log(0.5), [2.0], 0.5, 1.0)])
    r = bc.voronoi_loss(Frozen(), fit, TRUTH)
    assert r.cells == ((0, 1), ())
    assert r.loss == pytest.approx(2.0, rel=1e-12)  # |0.5 + 0.5 - 1| + 0 + |0 - 2|


def test_a_tie_goes_to_the_lowest_true_prompt():
    truth = atoms([([0.0], 0.0, [1.0], 0.0, 1.0), ([0.0], 0.0, [-1.0], 0.0, 1.0)])
    fit = atoms([([0.0], 0.0, [0.0], 0.0, 1.0), ([0.0], 0.0, [-1.0], 0.0, 1.0)])
    assert bc.voronoi_loss(Frozen(), fit, truth).cells == ((0,), (1,))


def test_permuting_the_fitted_prompts_leaves_the_loss_unchanged():
    rng = np.random.default_rng(7)
    fit = atoms([(list(rng.normal(size=2)), rng.normal(), list(rng.normal(size=1)), rng.normal(), 0.5 + rng.random())
                 for _ in range(3)])  # fmt: skip
    losses = []
    for order in itertools.permutations(range(3)):
        permuted = {name: [value[k] for k in order] for name, value in fit.items()}
        losses.append(bc.voronoi_loss(Frozen(), permuted, TRUTH).loss)
    assert np.ptp(losses) <= 1e-12 * max(losses)


def test_without_a_frozen_expert_a_common_translation_of_the_gates_costs_nothing():
    shift = np.array([0.7, -0.3, 0.4])  # beta by (0.7, -0.3), tau by 0.4
    fit = {**TRUTH, "beta": [list(np.add(b, shift[:2])) for b in TRUTH["beta"]],
           "tau": [t + shift[2] for t in TRUTH["tau"]]}  # fmt: skip
    plain = bc.voronoi_loss(Plain(), fit, TRUTH)
    assert plain.loss <= 1e-9
    assert plain.translation == pytest.approx(shift, abs=1e-6)
    assert bc.voronoi_loss(Frozen(), fit, TRUTH).loss > 0.5  # the frozen expert fixes the gates' origin


def test_more_true_prompts_than_fitted_ones_is_an_error_and_a_cell_of_four_is_not_scored():
    with pytest.raises(ValueError, match="K\\* <= K"):
        bc.voronoi_loss(Frozen(), atoms([([1.0, 0.0], 0.0, [2.0], 0.5, 1.0)]), TRUTH)
    near = ([1.0, 0.0], math.log(0.25), [2.0], 0.5, 1.0)
    r = bc.voronoi_loss(Frozen(), atoms([near] * 4 + [([-1.0, 2.0], math.log(2.0), [-1.0], -0.5, 0.5)]), TRUTH)
    assert math.isnan(r.loss) and r.unscored == (0,) and r.cells[0] == (0, 1, 2, 3)


def test_the_errors_inside_a_cell_of_two_are_weighted_power_means_with_the_powers_of_d():
    """beta and b enter D with r = 4, eta and nu with r / 2 = 2: the cell's error is (sum w |D|^s / sum w)^(1/s)."""
    truth = atoms([([1.0, 0.0], 0.0, [2.0], 0.5, 1.0)])
    fit = atoms([([1.1, 0.0], math.log(0.3), [2.1], 0.5, 1.2), ([0.9, 0.1], math.log(0.6), [1.8], 0.6, 0.9)])
    e = bc.voronoi_loss(Frozen(), fit, truth).errors
    assert e["beta_cell"] == pytest.approx(((0.3 * 0.1**4 + 0.6 * math.sqrt(0.02) ** 4) / 0.9) ** 0.25, rel=1e-12)
    assert e["b_cell"] == pytest.approx((0.6 * 0.1**4 / 0.9) ** 0.25, rel=1e-12)
    assert e["eta_cell"] == pytest.approx(math.sqrt((0.3 * 0.1**2 + 0.6 * 0.2**2) / 0.9), rel=1e-12)
    assert e["nu_cell"] == pytest.approx(math.sqrt((0.3 * 0.2**2 + 0.6 * 0.1**2) / 0.9), rel=1e-12)
    single = bc.voronoi_loss(Frozen(), TRUTH | {"nu": [1.3, 0.5]}, TRUTH).errors
    assert single["nu_single"] == pytest.approx(0.3) and single["eta_single"] == 0.0 and "nu_cell" not in single


def test_without_a_frozen_expert_a_far_fit_saturates_at_the_true_total_weight():
    """Translating every gate intercept by t0 scales every fitted weight by e^-t0: D -> sum exp(tau*) = 3."""
    far = atoms([([0.0, 0.0], 0.0, [9.0], 5.0, 9.0), ([0.0, 0.0], 0.0, [-9.0], -5.0, 9.0)])
    r = bc.voronoi_loss(Plain(), far, TRUTH)
    assert r.saturated and r.loss == pytest.approx(3.0, rel=1e-6)
    assert not bc.voronoi_loss(Frozen(), far, TRUTH).saturated
