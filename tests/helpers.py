"""Helpers shared by the tests."""

import bayescmoe as bc


def make_spec(
    gating="softmax", family="laplace", pre_expert="linear", prompt_expert="tanh", intercept=False, dim=3, **extra
):
    """A small valid spec for tests, built from a dict in the TOML layout."""
    eta0 = [0.5, -0.3, 0.8, 0.1, -0.6, 0.2, 0.9, -0.4][:dim]
    data = {
        "name": "test",
        "dim": dim,
        "gating": gating,
        "pretrained": {
            "family": family,
            "expert": pre_expert,
            "eta": eta0,
            "intercept": 0.1,
            "scale": 0.5,
            **({"df": 4.0} if family == "student_t" else {}),
        },
        "prompt": {"expert": prompt_expert, "intercept": intercept},
        "covariates": {"distribution": "uniform", "low": -1.0, "high": 1.0},
        "truth": {
            **(
                {"beta": [1.0, -0.5, 0.3, 0.7, -0.2, 0.4, -0.8, 0.1][:dim], "tau": 0.2}
                if gating == "softmax"
                else {"lam": 0.35}
            ),
            "eta": [-1.5, 1.1, -0.6, 0.2, 0.6, 1.1, 1.5, -0.2][:dim],
            "nu": 0.3,
            **({"b": 0.4} if intercept else {}),
        },
    }
    for key, value in extra.items():
        data[key] = value
    return bc.spec_from_dict(data)
