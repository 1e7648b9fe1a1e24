"""The main estimator: recovery, Wald coverage, optimality, standard errors and bad input."""

import numpy as np
import pytest
from scipy import optimize, stats

import bayescmoe as bc
from bayescmoe.fit.spikes import dominating_rows

from reference import mixture_loglik

SPEC = "softmax_distinguishable"


def test_recovers_the_truth_within_four_standard_errors():
    spec = bc.load_spec(SPEC)
    X, y, truth = bc.simulate(spec, 20_000, seed=2026)
    fit = bc.fit_mle(spec, X, y, seed=0)  # multistart: it does not know the truth
    assert fit.converged
    theta_true = spec.layout.pack(truth)
    z = (fit.theta - theta_true) / np.sqrt(np.diag(fit.cov))
    assert np.all(np.abs(z) < 4), dict(zip(fit.labels, z.round(2)))


def test_wald_intervals_cover_at_their_nominal_level():
    # 200 datasets at n = 5000; the Wald 95% intervals pooled over all 18 parameters must cover
    # 93-97% of the time (binomial sd 0.36%), and no parameter below 88% (sd 1.5%)
    spec = bc.load_spec(SPEC)
    covered = []
    for rep in range(200):
        X, y, truth = bc.simulate(spec, 5000, seed=10_000 + rep)
        fit = bc.fit_mle(spec, X, y, init="truth")
        assert fit.converged
        theta = spec.layout.pack(truth)
        lo = fit.theta - 1.959964 * np.sqrt(np.diag(fit.cov))
        hi = fit.theta + 1.959964 * np.sqrt(np.diag(fit.cov))
        covered.append((lo <= theta) & (theta <= hi))
    covered = np.array(covered)
    assert 0.93 <= covered.mean() <= 0.97, covered.mean()
    assert covered.mean(axis=0).min() >= 0.88, dict(zip(spec.labels, covered.mean(axis=0)))


def test_optimum_is_at_least_as_good_as_scipy_lbfgsb_on_the_scipy_likelihood():
    spec = bc.load_spec("softmax_eta_merging")
    X, y, _truth = bc.simulate(spec, 3000, seed=4)
    fit = bc.fit_mle(spec, X, y, seed=1)
    lower, upper = spec.bounds_arrays()
    negll = lambda t: -mixture_loglik(spec, X, y, spec.layout.unpack(t))  # noqa: E731
    ref = optimize.minimize(
        negll,
        fit.theta + 0.05,
        method="L-BFGS-B",
        bounds=list(zip(lower, upper)),
        options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 10_000},
    )
    assert fit.loglik >= -ref.fun - 1e-6 * abs(ref.fun)
    assert fit.loglik == pytest.approx(mixture_loglik(spec, X, y, fit.params), rel=1e-12)
    # the projected gradient of the independent likelihood vanishes at our estimate
    grad = optimize.approx_fprime(fit.theta, negll, 1e-6)
    assert np.abs(grad).max() < 1e-2


def test_deterministic_given_the_seed():
    spec = bc.load_spec(SPEC)
    X, y, _ = bc.simulate(spec, 8000, seed=3)
    a = bc.fit_mle(spec, X, y, seed=5, n_starts=4)
    b = bc.fit_mle(spec, X, y, seed=5, n_starts=4)
    np.testing.assert_array_equal(a.theta, b.theta)


def test_result_accessors_follow_their_definitions():
    spec = bc.load_spec(SPEC)
    X, y, _ = bc.simulate(spec, 4000, seed=8)
    fit = bc.fit_mle(spec, X, y, init="truth")
    k, n = spec.n_params, len(y)
    assert fit.aic == pytest.approx(2 * k - 2 * fit.loglik)
    assert fit.bic == pytest.approx(k * np.log(n) - 2 * fit.loglik)
    lo, hi = fit.conf_int(0.10)["eta"]
    np.testing.assert_allclose((hi - lo) / 2, stats.norm.ppf(0.95) * fit.stderr["eta"], rtol=1e-12)
    assert isinstance(fit.params["tau"], float) and fit.params["beta"].shape == (8,)
    assert set(fit.stderr) == set(spec.param_names)
    text = fit.summary()
    for label in ("beta[x1]", "tau", "eta[x8]", "nu", "log-likelihood", "95% interval", "converged"):
        assert label in text
    assert fit.n_iter >= 1 and fit.seconds > 0
    for alpha in (1.5, 2, 0, 0.0, -0.1, float("nan"), 1.0):
        with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\)"):
            fit.conf_int(alpha)
        with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\)"):
            fit.summary(alpha)
    assert "90% interval" in fit.summary(0.10)


def test_result_repr_is_short():
    spec = bc.load_spec(SPEC)
    X, y, _ = bc.simulate(spec, 2000, seed=8)
    fit = bc.fit_mle(spec, X, y, init="truth")
    text = repr(fit)
    assert text == f"<FitResult MLE of {SPEC}: n=2000, loglik={fit.loglik:.6g}, converged>"
    assert len(text) < 120


def test_singular_information_gives_nan_standard_errors_with_a_warning():
    spec = bc.load_spec(SPEC)
    X, y, _truth = bc.simulate(spec, 3000, seed=1)
    X[:, 3] = 0.0  # beta_4 and eta_4 multiply a covariate that never varies: no information
    with pytest.warns(bc.IdentifiabilityWarning, match=r"singular .*involves mostly (beta|eta)\[x4\]"):
        fit = bc.fit_mle(spec, X, y, init="truth")
    assert np.all(np.isnan(fit.stderr["beta"])) and np.isnan(fit.stderr["nu"])
    assert "singular" in fit.summary()


def test_estimates_on_the_box_are_flagged():
    spec = bc.load_spec(SPEC)
    X, y, truth = bc.simulate(spec, 3000, seed=1)
    start = truth | {"nu": 0.05}
    with pytest.warns(bc.BoundaryWarning, match="nu ended on the bounds"):
        fit = bc.fit_mle(spec, X, y, init=start, bounds={"nu": [0.001, 0.1]})
    assert fit.params["nu"] == pytest.approx(0.1)
    assert np.isnan(fit.stderr["nu"]) and np.all(np.isfinite(fit.stderr["eta"]))
    assert "at bound" in fit.summary()


def test_non_convergence_warns_with_advice():
    spec = bc.load_spec(SPEC)
    X, y, _ = bc.simulate(spec, 2000, seed=1)
    with pytest.warns(bc.ConvergenceWarning, match="did not converge.*larger maxiter"):
        fit = bc.fit_mle(spec, X, y, n_starts=1, seed=0, maxiter=1)
    assert not fit.converged and fit.status == "maximum number of iterations reached"


def test_map_maximises_loglik_plus_logprior():
    spec = bc.load_spec(SPEC)
    X, y, _truth = bc.simulate(spec, 2000, seed=12)
    fit = bc.fit_map(spec, X, y, init="truth")

    def neg_log_post(theta):
        p = spec.layout.unpack(theta)
        lp = (
            stats.norm(0, 2.5).logpdf(p["beta"]).sum()
            + stats.norm(0, 2.5).logpdf(p["tau"])
            + stats.norm(0, 2.5).logpdf(p["eta"]).sum()
            + stats.lognorm(s=1.5).logpdf(p["nu"])
        )
        return -(mixture_loglik(spec, X, y, p) + lp)

    assert fit.objective == pytest.approx(-neg_log_post(fit.theta), rel=1e-12)
    assert fit.loglik == pytest.approx(mixture_loglik(spec, X, y, fit.params), rel=1e-12)
    grad = optimize.approx_fprime(fit.theta, neg_log_post, 1e-6)
    assert np.abs(grad).max() < 1e-2
    # a tight prior pulls beta towards its centre
    tight = bc.fit_map(spec, X, y, init="truth", priors={"beta": bc.Prior("Normal", mu=0.0, sigma=0.01)})
    assert np.abs(tight.params["beta"]).max() < 0.05


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"init": {"nu": 500.0}}, bc.FitError, r"nu = 500 lies outside its bounds \[0.001, 100\]"),
        ({"init": "best"}, bc.FitError, "init must be 'multistart', 'truth' or a dict"),
        ({"n_starts": 0}, bc.FitError, "n_starts must be a positive integer"),
        ({"bounds": {"nu": [1.0, 0.5]}}, bc.SpecError, "must have low < high"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    spec = bc.load_spec(SPEC)
    X, y, truth = bc.simulate(spec, 300, seed=1)
    if isinstance(kwargs.get("init"), dict):
        kwargs = kwargs | {"init": truth | kwargs["init"]}
    with pytest.raises(error, match=message):
        bc.fit_mle(spec, X, y, **kwargs)


def test_bad_data():
    spec = bc.load_spec(SPEC)
    X, y, _ = bc.simulate(spec, 300, seed=1)
    X_nan = X.copy()
    X_nan[[4, 9]] = np.nan
    y_inf = y.copy()
    y_inf[7] = np.inf
    cases = [
        ((X_nan, y), r"X has NaN or inf in rows 4, 9 \(0-based\)"),
        ((X, y_inf), r"y has NaN or inf in row 7"),
        ((X[:, :5], y), r"X has 5 covariate columns but spec 'softmax_distinguishable' has dim = 8"),
        ((X, y[:-1]), "X has 300 rows but y has 299"),
        ((X[:10], y[:10]), "10 observations cannot identify 18 parameters"),
        ((X, np.c_[y, y]), r"y must be a 1-D array"),
        ((X.astype(str).astype(object) + "a", y), "X must be numeric"),
    ]
    for (Xb, yb), message in cases:
        with pytest.raises(bc.DataError, match=message):
            bc.fit_mle(spec, Xb, yb, init="truth")


def test_newton_box_on_rosenbrock_with_and_without_an_active_bound():
    from bayescmoe.fit.optimize import newton_box

    def fgh(x):
        a, b = x
        f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        g = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
        h = np.array([[2 - 400 * b + 1200 * a * a, -400 * a], [-400 * a, 200]])
        return f, g, h

    free = newton_box(fgh, lambda x: fgh(x)[0], np.array([-1.2, 1.0]), np.full(2, -5.0), np.full(2, 5.0))
    np.testing.assert_allclose(free.x, [1.0, 1.0], atol=1e-8)
    # with b <= 0.5 the optimum is on the bound: minimise (1-a)^2 + 100 (0.5 - a^2)^2 over a
    boxed = newton_box(fgh, lambda x: fgh(x)[0], np.array([0.0, 0.0]), np.full(2, -5.0), np.array([5.0, 0.5]))
    a = optimize.minimize_scalar(
        lambda a: (1 - a) ** 2 + 100 * (0.5 - a * a) ** 2, bounds=(0, 1), method="bounded", options={"xatol": 1e-12}
    ).x
    assert boxed.converged
    np.testing.assert_allclose(boxed.x, [a, 0.5], atol=1e-7)
    # atol bounds what is left to gain (f* = 0 here), not the distance: the walk may end before quadratic convergence
    stalled = newton_box(fgh, lambda x: fgh(x)[0], np.array([-1.2, 1.0]), np.full(2, -5.0), np.full(2, 5.0), atol=1e-6)
    assert stalled.converged and 0 <= stalled.fun <= 1e-6


def test_newton_box_ends_a_linearly_converging_walk_at_atol():
    """f = x^4 has a degenerate minimum at 0: Newton's step is x / 3, so x falls by 2/3 an iteration and the
    decrement g^2 / (2 f'') = (2/3) x^4 only linearly.  With atol the walk ends at the second iteration whose
    decrement is below it; without, it needs x^4 below 1.5 tol."""
    from bayescmoe.fit.optimize import newton_box

    def fgh(x):
        return float(x[0] ** 4), np.array([4 * x[0] ** 3]), np.array([[12 * x[0] ** 2]])

    box = (np.array([-5.0]), np.array([5.0]))
    plain = newton_box(fgh, lambda x: fgh(x)[0], np.array([1.0]), *box, maxiter=12)
    assert plain.status.name == "MAX_ITER"
    np.testing.assert_allclose(plain.x, [(2 / 3) ** 12], rtol=1e-12)
    ended = newton_box(fgh, lambda x: fgh(x)[0], np.array([1.0]), *box, maxiter=12, atol=1e-6)
    assert ended.converged
    # iterates (2/3)^k; the first k with (2/3)^(4k+1) <= 1e-6 is 9, and the walk ends one iteration later
    k = next(k for k in range(30) if (2 / 3) * (2 / 3) ** (4 * k) <= 1e-6) + 1
    assert ended.n_iter == k
    np.testing.assert_allclose(ended.x, [(2 / 3) ** k], rtol=1e-12)


def test_newton_box_walks_on_from_a_saddle_before_atol_ends_it():
    """f = a^2 + 1e-8 (b^2 - 1)^2 has a saddle at the start (0, 0), whose decrement is 0: the method leaves it
    downhill along b, and the walk from there needs two small decrements of its own before atol ends it (it used to
    end at the first, the saddle's counting as the other)."""
    from bayescmoe.fit.optimize import newton_box

    def fgh(x):
        a, b = x
        return (float(a * a + 1e-8 * (b * b - 1) ** 2), np.array([2 * a, 4e-8 * b * (b * b - 1)]),
                np.array([[2.0, 0.0], [0.0, 4e-8 * (3 * b * b - 1)]]))  # fmt: skip

    ended = newton_box(fgh, lambda x: fgh(x)[0], np.zeros(2), np.full(2, -5.0), np.full(2, 5.0), atol=1e-6)
    assert ended.converged and ended.n_iter >= 2
    assert abs(ended.x[1]) > 0.5 and ended.fun <= 1e-6  # off the saddle (f = 1e-8 there), within atol of f* = 0


def test_newton_box_stops_on_a_gradient_that_is_not_finite():
    """A finite f with a NaN gradient (or an infinite Hessian) gives no step: the fit ends, it does not loop."""
    from bayescmoe.fit.optimize import newton_box

    calls = {"n": 0}

    def fun(x):
        calls["n"] += 1
        if calls["n"] > 1000:
            raise RuntimeError("newton_box keeps trying steps on a NaN gradient")
        return float(x @ x)

    for g, h in ((np.array([np.nan, 1.0]), np.eye(2)), (np.ones(2), np.diag([np.inf, 1.0]))):
        calls["n"] = 0
        result = newton_box(lambda x, g=g, h=h: (fun(x), g, h), fun, np.ones(2), np.full(2, -5.0), np.full(2, 5.0))
        assert result.status.name == "LINE_SEARCH" and calls["n"] < 10


def test_a_trust_step_that_falls_back_to_the_newton_step_takes_its_length_as_radius():
    """f = 1e10 + x^2 / 2 from x = 1: a radius of 1e-3 predicts a decrease of 1e-3, below what f resolves (1e3 eps
    1e10 = 2.2e-3), so the full Newton step to 0 is taken; the radius is then that step's length, 1, not the
    1e-3 that would cut the next step short again."""
    from bayescmoe.fit.optimize import _Quadratic, _trust_step

    def f(x):
        return 1e10 + 0.5 * float(x @ x)

    x = np.ones(1)
    model = _Quadratic(x.copy(), np.eye(1), np.ones(1, bool), 1e-10)
    x_new, radius, _ = _trust_step(f, x, f(x), x.copy(), model, 1e-3, np.full(1, -5.0), np.full(1, 5.0))
    assert x_new.tolist() == [0.0] and radius == 1.0


@pytest.mark.parametrize("name", ["softmax_eta_merging", "constant_gaussian_linear"])
def test_multistart_finds_an_optimum_at_least_as_good_as_starting_at_the_truth(name):
    # multistart does not know the truth; starting at the truth is the oracle a simulation allows
    spec = bc.load_spec(name)
    for rep in range(4):
        X, y, _ = bc.simulate(spec, 1500, seed=600 + rep)
        oracle = bc.fit_mle(spec, X, y, init="truth")
        blind = bc.fit_mle(spec, X, y, seed=rep)
        assert blind.loglik >= oracle.loglik - 1e-6 * abs(oracle.loglik)


@pytest.mark.parametrize("name", ["softmax_eta_merging", "softmax_distinguishable", "constant_gaussian_tanh"])
def test_coarse_to_fine_reaches_the_plain_newton_optimum(name):
    # the subsample ladder is a speed-up only: the optimum must be the one of Newton on all rows
    spec = bc.load_spec(name)
    X, y, _truth = bc.simulate(spec, 40_000, seed=77)
    fast = bc.fit_mle(spec, X, y, init="truth")
    plain = bc.fit_mle(spec, X, y, init="truth", subsample=None)
    assert fast.loglik == pytest.approx(plain.loglik, rel=1e-12)
    np.testing.assert_allclose(fast.theta, plain.theta, atol=1e-4 * np.sqrt(np.diag(plain.cov)).max())
    with pytest.raises(bc.FitError, match="subsample must be a positive integer or None"):
        bc.fit_mle(spec, X, y, subsample=0)


@pytest.mark.filterwarnings("ignore::bayescmoe.exceptions.IdentifiabilityWarning")
@pytest.mark.filterwarnings("ignore::bayescmoe.exceptions.DegenerateWarning")  # the prompt holds the outlier's rows
def test_an_extreme_response_gives_a_box_optimum_quickly_and_is_named():
    """The outlier pushes the prompt's tanh into saturation (eta at or near its bound): the likelihood is flat to
    ~1e-12 of its value along those eta, so whether the observed information there is singular is the path's
    (an IdentifiabilityWarning may come or not, on any BLAS); the box optimum and the outlier are the point."""
    spec = bc.load_spec("softmax_eta_merging")
    X, y, _ = bc.simulate(spec, n=3000, seed=2)
    y[0] = 1e6
    with pytest.warns(bc.BoundaryWarning, match="nu ended on the bounds"):
        with pytest.warns(bc.OutlierWarning, match=r"^row 0 \(0-based\) of the data carries 100% of the lack of fit"):
            fit = bc.fit_mle(spec, X, y, seed=0)
    assert fit.converged and fit.n_iter < 50  # it used to run its 200 iterations and warn
    assert fit.params["nu"] == spec.bounds["nu"][1]
    # a box optimum of the independent (scipy) density: no move of one coordinate inside the box raises it
    # beyond what double precision resolves in a log-likelihood of -5e9
    theta, (lower, upper) = fit.theta, spec.bounds_arrays()
    best = mixture_loglik(spec, X, y, fit.params)
    assert best == pytest.approx(fit.loglik, rel=1e-12)
    for i in range(theta.size):
        for step in (-1e-4, 1e-4):
            moved = theta.copy()
            moved[i] = np.clip(theta[i] + step * (upper[i] - lower[i]), lower[i], upper[i])
            assert mixture_loglik(spec, X, y, spec.layout.unpack(moved)) <= best + 1e-9 * abs(best)


def test_heavy_tails_of_a_correct_model_do_not_count_as_dominating():
    rng = np.random.default_rng(5)
    cauchy = stats.t(df=1).logpdf(rng.standard_t(1, size=3000))  # log-likelihoods under the true model
    assert dominating_rows(cauchy)[0].size == 0
    gauss = stats.norm.logpdf(rng.standard_normal(50))
    assert dominating_rows(gauss)[0].size == 0
    assert dominating_rows(np.r_[gauss, -200.0])[0].tolist() == [50]
