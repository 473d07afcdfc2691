"""The search library: sampling, proposals, final mixtures, strategies, and a reduced simulator benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from climb.search.core import SearchSettings, linear_trend, pool_size, run_search, select_distinct
from climb.search.objectives import planted_objective
from climb.search.sampling import Prior, SamplerSettings, project_caps, sample_pool, tv_distance

PRIOR = Prior([f"sc{i}" for i in range(8)], np.array([40, 20, 10, 10, 8, 6, 4, 2], dtype=float))


def test_pool_is_valid_seeded_and_prefix_stable():
    settings = SamplerSettings(cap=4.0, min_weight=0.02, dedup_distance=0.05)
    pool = sample_pool(PRIOR, 30, settings, seed=5)
    assert pool.shape == (30, 8)
    np.testing.assert_allclose(pool.sum(axis=1), 1.0)
    assert ((pool == 0) | (pool >= 0.02 - 1e-12)).all()
    from climb.search.sampling import tempered

    caps = np.minimum(1, 4.0 * tempered(PRIOR.share, settings.temperature))
    assert (pool <= caps + 1e-9).all()
    for i in range(30):
        assert tv_distance(np.delete(pool, i, axis=0), pool[i]).min() >= 0.05
    np.testing.assert_array_equal(sample_pool(PRIOR, 12, settings, seed=5), pool[:12])
    assert not np.allclose(sample_pool(PRIOR, 12, settings, seed=6), pool[:12])


def test_pool_follows_the_prior_and_random_init_does_not():
    dirichlet = sample_pool(PRIOR, 200, SamplerSettings(temperature=1.0, cap=None, min_weight=0.0), seed=0)
    random = sample_pool(PRIOR, 200, SamplerSettings(init="random", min_weight=0.0), seed=0)
    # the prior's largest domain gets most weight on average; uniform init is flat
    assert np.argmax(dirichlet.mean(axis=0)) == 0
    assert abs(dirichlet.mean(axis=0)[0] - 0.4) < 0.08
    assert np.abs(random.mean(axis=0) - 1 / 8).max() < 0.04


def test_project_caps_and_infeasible():
    w = project_caps(np.array([0.7, 0.2, 0.1]), np.array([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(w, [0.5, 0.2 + 0.2 * 2 / 3, 0.1 + 0.2 / 3])
    assert project_caps(np.array([0.9, 0.1, 0.0]), np.array([0.4, 0.4, 0.4])) is None
    with pytest.raises(ValueError, match="search.cap"):
        sample_pool(PRIOR, 2, SamplerSettings(cap=0.5), seed=0)


def test_select_distinct_skips_evaluated_and_near_duplicates():
    cands = np.array([[0.5, 0.5], [0.51, 0.49], [0.9, 0.1], [0.2, 0.8]])
    pred = np.array([4.0, 3.0, 2.0, 1.0])
    chosen = select_distinct(cands, pred, 2, np.array([[0.9, 0.1]]), 0.05)
    np.testing.assert_allclose(chosen, [[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(RuntimeError, match="search.candidates"):
        select_distinct(cands, pred, 4, np.array([[0.9, 0.1]]), 0.05)


def test_tied_predictions_go_along_the_linear_trend():
    # Scores rise with the first domain's weight; a tree model that ties every candidate (one leaf) gives no
    # direction. Ties toward the best mixture alone take its nearest neighbour; the trend takes the first domain.
    rng = np.random.default_rng(0)
    evaluated = rng.dirichlet(np.ones(3), size=8)
    scores = 2.0 * evaluated[:, 0] - evaluated[:, 2]
    trend = linear_trend(evaluated, scores)
    assert np.argmax(trend) == 0 and np.argmin(trend) == 2
    cands = rng.dirichlet(np.ones(3), size=500)
    tied = np.zeros(len(cands))
    best = evaluated[np.argmax(scores)]
    near = select_distinct(cands, tied, 1, evaluated, 0.02, best)[0]
    along = select_distinct(cands, tied, 1, evaluated, 0.02, best, trend)[0]
    assert along[0] == pytest.approx(cands[np.argmax(cands @ trend)][0])
    assert along[0] > max(near[0], evaluated[:, 0].max())
    assert tv_distance(near[None, :], best)[0] < tv_distance(along[None, :], best)[0]


def test_epoch_caps_bound_every_mixture_and_name_an_impossible_budget():
    tokens = np.array([50_000.0, 30_000.0, 10_000.0, 10_000.0])
    prior = Prior(["0", "1", "2", "3"], tokens, tokens)
    settings = SamplerSettings(cap=None, max_epochs=2, epoch_tokens=100_000)  # caps 1, 0.6, 0.2, 0.2
    caps = np.array([1.0, 0.6, 0.2, 0.2])
    for init in ("dirichlet", "random"):
        pool = sample_pool(prior, 40, SamplerSettings(init=init, cap=None, max_epochs=2, epoch_tokens=100_000), seed=3)
        assert np.all(pool <= caps + 1e-9) and np.allclose(pool.sum(axis=1), 1)
        assert pool[:, 2].max() > 0.15  # the bound binds, and mass reaches it
    unbounded = sample_pool(prior, 40, SamplerSettings(cap=None), seed=3)
    assert unbounded[:, 2].max() > 0.3
    result = run_search(lambda w: w[:, 2] - w[:, 0], prior, SearchSettings(rounds=(8, 4), candidates=500,
                                                                           sampler=settings), "climb", seed=1)
    assert np.all(result.evaluated <= caps + 1e-9) and result.weights[2] <= 0.2 + 1e-9
    with pytest.raises(ValueError, match=r"need more than 2 epochs of the usable corpus \(100,000 tokens\)"):
        sample_pool(prior, 4, SamplerSettings(max_epochs=2, epoch_tokens=300_000), seed=0)


def test_settings_reject_bad_values():
    with pytest.raises(ValueError, match="search.rounds"):
        SearchSettings(rounds=())
    with pytest.raises(ValueError, match="search.final"):
        SearchSettings(final="best")
    with pytest.raises(ValueError, match="search.init"):
        SamplerSettings(init="sobol")


@pytest.mark.parametrize("strategy", ["climb", "regmix", "random", "natural", "uniform"])
def test_strategies_budgets_and_outputs(strategy):
    settings = SearchSettings(rounds=(12, 6, 4), candidates=2000)
    calls = []

    def evaluator(w):
        calls.append(len(w))
        return -((w - PRIOR.share[::-1]) ** 2).sum(axis=1)

    result = run_search(evaluator, PRIOR, settings, strategy, seed=1)
    assert result.weights.shape == (8,)
    assert result.weights.sum() == pytest.approx(1.0)
    assert (result.weights >= 0).all()
    expected = {"climb": [12, 6, 4], "regmix": [22], "random": [22], "natural": [], "uniform": []}[strategy]
    assert calls == expected
    if strategy == "climb":
        assert len(result.predictors) == 3
        # proposals are distinct from each other and from the pool
        ev = result.evaluated
        for i in range(len(ev)):
            assert tv_distance(np.delete(ev, i, axis=0), ev[i]).min() >= settings.sampler.dedup_distance - 1e-12
    assert pool_size(settings, [strategy]) == (22 if strategy in ("regmix", "random") else 12)


def test_climb_is_deterministic():
    settings = SearchSettings(rounds=(10, 5), candidates=1000)
    obj = planted_objective(0, n_domains=6)
    a = run_search(obj.evaluator(np.random.default_rng(0)), obj.prior, settings, "climb", seed=3)
    b = run_search(obj.evaluator(np.random.default_rng(0)), obj.prior, settings, "climb", seed=3)
    np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["planted", "mixing_law"])
def test_reduced_benchmark_climb_has_lowest_regret(objective):
    """A reduced simulator benchmark (8 seeds, 5,000 candidates; noisy evaluations, budget 112); the full one is
    `python -m climb.bench.search_simulation`."""
    from dataclasses import replace

    from climb.bench.search_simulation import BASE, regrets
    from climb.search.objectives import mixing_law_objective
    from tests.conftest import shared_data

    if objective == "planted":
        objective_for_seed = planted_objective
    else:
        law = mixing_law_objective(shared_data("regmix"))
        objective_for_seed = lambda seed: law  # noqa: E731
    finals: dict = {}
    r = regrets(objective_for_seed, replace(BASE, candidates=5000), ("climb", "regmix", "random"), range(8), finals)
    means = {k: float(v.mean()) for k, v in r.items()}
    print(objective, means)
    assert means["climb"] < means["regmix"] and means["climb"] < means["random"]
    # RegMix as published: never random's best evaluated mixture, and better than it
    assert tv_distance(np.stack(finals["regmix"]), np.stack(finals["random"])).min() >= 0.05
    assert means["regmix"] < means["random"]


def test_mixing_law_fit_on_all_regmix_rows():
    from climb.search.objectives import fit_mixing_law, load_regmix, mixing_law_objective
    from tests.conftest import shared_data

    folder = shared_data("regmix")
    mixes, losses = load_regmix(folder)
    assert len(mixes) == len(losses) == 768 and mixes.shape[1] == 17
    w = mixes.to_numpy(dtype=float)
    w = w / w.sum(axis=1, keepdims=True)
    y = losses["metric/the_pile_pile_cc_val_loss"].to_numpy()
    c, t, sigma = fit_mixing_law(w, y)
    pred = c + np.exp(w @ t)
    r2 = 1 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert r2 > 0.85 and 0 < sigma < y.std()
    law = mixing_law_objective(folder)
    assert law.noise == pytest.approx(sigma)
    # the optimum is the best vertex: all weight on the domain with the most negative exponent
    best = np.eye(17)[int(np.argmin(t))]
    assert law.regret(best) == pytest.approx(0.0, abs=1e-12)
    assert law.regret(law.prior.share) > 0


def test_planted_optimum_is_at_least_as_good_as_any_sample():
    obj = planted_objective(3)
    samples = np.random.default_rng(0).dirichlet(np.full(21, 0.3), size=5000)
    assert obj.f(samples).max() <= obj.optimum + 1e-9


class _Linear:
    """A stand-in predictor: a fixed linear score of the weights (higher is better)."""

    def __init__(self, coef):
        self.coef = np.asarray(coef, dtype=float)

    def predict(self, x):
        return np.asarray(x) @ self.coef


def test_regmix_final_is_the_mean_of_the_top_k_simulated_prior_draws(monkeypatch):
    """RegMix's final step: Dirichlet(alpha = token shares) draws, the top k by prediction, averaged."""
    import climb.search.core as core
    from climb.search.core import regmix_candidates, regmix_final
    from climb.search.sampling import derive_rng

    prior = Prior([f"sc{i}" for i in range(5)], np.array([40, 30, 20, 10, 0], dtype=float))
    settings = SearchSettings(regmix_candidates=3000, regmix_topk=25)
    predictor = _Linear([0, 0, 0, 1, 0])  # favours the smallest domain with tokens
    w, predicted, details = regmix_final(prior, settings, predictor, seed=4)
    # the same draws by hand: one batch, sorted, top 25 averaged
    draws = regmix_candidates(prior, 3000, derive_rng(4, "regmix-simulation", "regmix"))
    assert (draws[:, 4] == 0).all() and np.allclose(draws.sum(axis=1), 1)
    top = draws[np.argsort(-draws[:, 3], kind="stable")[:25]]
    np.testing.assert_allclose(w, top.mean(axis=0) / top.mean(axis=0).sum())
    assert w[3] > 0.5 > prior.share[3]  # moved far towards the favoured domain, away from the prior
    assert predicted == pytest.approx(w[3])
    assert details["candidates"] == 3000 and details["topk"] == 25
    # chunked prediction gives the same mixture as one batch
    monkeypatch.setattr(core, "REGMIX_CHUNK", 700)
    w_chunked, _, _ = regmix_final(prior, settings, predictor, seed=4)
    np.testing.assert_allclose(w_chunked, w)
    # the simulated draws follow the token shares (RegMix's prior: strength 1, no temperature)
    np.testing.assert_allclose(draws.mean(axis=0), prior.share, atol=0.02)


def test_regmix_never_returns_an_evaluated_mixture():
    """The old final step broke ties towards the best evaluated mixture, so regmix == random; RegMix's does not."""
    obj = planted_objective(1, n_domains=8)
    settings = SearchSettings(rounds=(16, 8, 4), candidates=500, regmix_candidates=20_000, regmix_topk=100)
    evaluator = obj.evaluator(np.random.default_rng(0))
    regmix = run_search(evaluator, obj.prior, settings, "regmix", seed=2)
    random = run_search(obj.evaluator(np.random.default_rng(0)), obj.prior, settings, "random", seed=2)
    np.testing.assert_array_equal(regmix.evaluated, random.evaluated)  # same pool, same budget
    assert tv_distance(regmix.evaluated, regmix.weights).min() >= 0.05
    assert tv_distance(regmix.weights, random.weights) >= 0.05
    again = run_search(obj.evaluator(np.random.default_rng(0)), obj.prior, settings, "regmix", seed=2)
    np.testing.assert_array_equal(again.weights, regmix.weights)


def test_regmix_settings_are_checked():
    with pytest.raises(ValueError, match="regmix_topk"):
        SearchSettings(regmix_candidates=10, regmix_topk=11)


def test_regmix_regressor_is_lightgbm_whatever_the_predictor_kind():
    from dataclasses import replace

    obj = planted_objective(2, n_domains=6)
    settings = SearchSettings(rounds=(12, 6), candidates=500, regmix_candidates=2000, regmix_topk=20)
    settings = replace(settings, predictor=replace(settings.predictor, kind="linear"))
    regmix = run_search(obj.evaluator(np.random.default_rng(0)), obj.prior, settings, "regmix", seed=1)
    climb = run_search(obj.evaluator(np.random.default_rng(0)), obj.prior, settings, "climb", seed=1)
    assert [p.kind for p in regmix.predictors] == ["trees"]
    assert {p.kind for p in climb.predictors} == {"linear"}
