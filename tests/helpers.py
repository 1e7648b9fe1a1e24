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


def make_multi_spec(
    K=2, gating="softmax", pretrained="laplace", experts=None, intercepts=None, dim=2, mean_from_data=False, **extra
):
    """A small valid spec with K prompts (MODEL.md section 8), built from a dict in the TOML layout.

    ``pretrained``: a family name, or None for the plain mixture of experts (prompt 1 the reference).
    """
    experts = experts or ["tanh", "linear", "sigmoid", "gelu"][:K]
    intercepts = intercepts if intercepts is not None else [k % 2 == 1 for k in range(K)]
    data = {
        "name": f"test_K{K}",
        "dim": dim,
        "gating": gating,
        "prompts": [{"expert": e, "intercept": i} for e, i in zip(experts, intercepts)],
        "covariates": {"distribution": "uniform", "low": -1.0, "high": 1.0},
    }
    if pretrained is not None:
        data["pretrained"] = {"family": pretrained, "scale": 0.5, **({"df": 4.0} if pretrained == "student_t" else {})}
        data["pretrained"] |= (
            {"mean": "data"} if mean_from_data else {"expert": "linear", "eta": [0.5, -0.3, 0.8][:dim]}
        )
    rows = [[1.0, -0.5, 0.3], [-0.8, 0.6, 0.2], [0.4, 0.9, -0.7], [0.2, -0.2, 0.5]]
    truth = {
        "eta": [[-1.5, 1.1, -0.6], [0.7, -0.4, 0.9], [1.2, 0.8, -1.0], [-0.3, 1.4, 0.6]][:K],
        "nu": [0.3, 0.15, 0.5, 0.2][:K],
    }
    truth["eta"] = [r[:dim] for r in truth["eta"]]
    if any(intercepts):
        truth["b"] = [0.4 * (k + 1) if i else 0.0 for k, i in enumerate(intercepts)]
    if gating == "softmax":
        truth["beta"] = [r[:dim] for r in rows[:K]]
        truth["tau"] = [0.2, -0.3, 0.1, 0.0][:K]
        if pretrained is None:
            truth["beta"][0] = [0.0] * dim
            truth["tau"][0] = 0.0
    else:
        truth["lam"] = [0.3, 0.25, 0.2, 0.1][:K]
    data["truth"] = truth
    data.update(extra)
    return bc.spec_from_dict(data)
