"""DoReMi (climb.search.doremi): the Group DRO update, the proxies' domain-weight hook, the final mixture file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from climb.core.io import read_json
from climb.search.doremi import DomainWeights, group_dro_update, write_doremi_mixture
from tests.test_proxy import SETTINGS, weights_file
from tests.test_tokenize import make_world, synthetic_docs


def test_group_dro_update_is_doremis_exponentiated_step():
    state = DomainWeights.uniform(3)
    # domain 0: mean clipped excess 0.5 over 10 tokens; domain 1: 0.1; domain 2 absent from the step
    new = group_dro_update(state, np.array([5.0, 1.0, 0.0]), np.array([10, 10, 0]), step_size=1.0, smoothing=1e-3)
    expected = np.exp(np.log(1 / 3) + np.array([0.5, 0.1, 0.0]))
    expected = 0.999 * expected / expected.sum() + 1e-3 / 3
    np.testing.assert_allclose(new.weights, expected)
    assert new.weights[0] > new.weights[1] > new.weights[2]
    np.testing.assert_allclose(new.average, new.weights)
    assert state.updates == 0 and new.updates == 1  # the input state is left alone
    # an absent domain keeps its last score; the average is over every update
    again = group_dro_update(new, np.array([0.0, 0.0, 0.0]), np.array([10, 0, 0]))
    np.testing.assert_allclose(again.scores, [0.0, 0.1, 0.0])
    np.testing.assert_allclose(again.average, (new.weights + again.weights) / 2)
    assert len(again.history) == 2
    # a zero step size keeps uniform weights: the step, not the smoothing, moves them
    flat = group_dro_update(state, np.array([5.0, 1.0, 0.0]), np.array([10, 10, 10]), step_size=0.0)
    np.testing.assert_allclose(flat.weights, 1 / 3)
    with pytest.raises(ValueError, match="clipped at 0"):
        group_dro_update(state, np.array([-1.0, 0, 0]), np.array([1, 1, 1]))


@pytest.fixture(scope="module")
def two_domains(tmp_path_factory):
    """Two super-clusters of word-distinct documents (clusters 0 and 1; cluster 2's documents go with 1)."""
    return make_world(tmp_path_factory.mktemp("doremi"), synthetic_docs(30), {0: [0], 1: [1, 2]})


def _train(world, tmp, name, weights, doremi=None):
    from climb.proxy.train import train_proxy

    settings = {**SETTINGS, "tokens": 32 * 8 * 16, "lr": 1e-2}
    train_proxy(weights_file(tmp / f"{name}.weights.json", weights), world.bins, world.idxs, world.superclusters, [],
                world.tokenizer, str(tmp / name), str(tmp / f"{name}.training.json"), settings, seed=5, threads=1,
                doremi=doremi)
    return json.loads((tmp / f"{name}.training.json").read_text())


@pytest.mark.parametrize("specialist", [0, 1])
def test_domain_weights_move_to_the_domain_with_the_larger_excess_loss(two_domains, tmp_path, specialist):
    """Planted: the reference proxy is trained on one domain only, so the DRO proxy (natural mixture, uniform
    initial weights) has its excess loss on that domain and none on the other; DoReMi's weights move there."""
    _train(two_domains, tmp_path, "reference", {specialist: 1.0})
    dro = _train(two_domains, tmp_path, "dro", {0: 0.5, 1: 0.5},
                 {"reference": str(tmp_path / "reference"), "step_size": 1.0, "smoothing": 1e-3})
    info = dro["doremi"]
    assert info["domains"] == [0, 1] and info["updates"] == dro["n_steps"] == len(info["history"])
    np.testing.assert_allclose(info["average"], np.mean(info["history"], axis=0))
    other = 1 - specialist
    assert info["average"][specialist] > 0.6 > info["average"][other]
    assert 0.5 < info["history"][0][specialist] < info["weights"][specialist]  # from uniform, towards it
    # the final mixture file: the average weights, two proxies
    (tmp_path / "reference.training.json").rename(tmp_path / "ref.json")
    out = write_doremi_mixture(str(tmp_path / "dro.training.json"), str(tmp_path / "ref.json"), "general",
                               str(tmp_path / "final_mixture.json"))
    assert read_json(tmp_path / "final_mixture.json") == out
    assert out["proxies"] == 2 and out["strategy"] == "doremi"
    assert out["weights"][str(specialist)] == pytest.approx(info["average"][specialist])
    assert sum(out["weights"].values()) == pytest.approx(1.0)
    # with the prior: every super-cluster listed, in the prior's order, one without tokens at 0
    from climb.core.io import write_json

    write_json(tmp_path / "prior.json", {"prior": {"0": 0.5, "1": 0.4, "2": 0.1}})
    full = write_doremi_mixture(str(tmp_path / "dro.training.json"), str(tmp_path / "ref.json"), "general",
                                str(tmp_path / "final_full.json"), prior_path=str(tmp_path / "prior.json"))
    assert list(full["weights"]) == ["0", "1", "2"] and full["weights"]["2"] == 0.0


def test_same_seed_same_domain_weights(two_domains, tmp_path):
    _train(two_domains, tmp_path, "reference", {0: 0.5, 1: 0.5})
    spec = {"reference": str(tmp_path / "reference"), "step_size": 1.0, "smoothing": 1e-3}
    a = _train(two_domains, tmp_path, "a", {0: 0.5, 1: 0.5}, spec)["doremi"]
    b = _train(two_domains, tmp_path, "b", {0: 0.5, 1: 0.5}, spec)["doremi"]
    assert a["history"] == b["history"]
