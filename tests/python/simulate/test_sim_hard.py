"""The `hard` preset: families of similar cell types and a per-sample batch effect (structure only, no simulation)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scfan.errors import ParamsError
from scfan.simulate import make_config
from scfan.simulate.regulatory import ENHANCER, Contexts, _openness, make_contexts
from scfan.simulate.singlecell import batch_factors


def test_hard_preset_is_small_and_has_every_difficulty():
    cfg = make_config("hard", 3)
    assert cfg.genome_size <= 5_000_000 and 1500 <= cfg.n_cells <= 3000
    assert 6 <= cfg.n_types <= 8 and 2 <= cfg.n_samples <= 3
    assert 1 < cfg.type_families < cfg.n_types
    assert cfg.sibling_open > 0 and cfg.batch_sigma > 0
    bench = make_config("bench", 3)
    assert cfg.median_fragments < bench.median_fragments and cfg.frip < bench.frip


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_hard_types_share_programs_and_siblings_differ_by_two_drivers(seed):
    cfg = make_config("hard", seed)
    ctx = make_contexts(np.random.default_rng(seed), cfg)
    drivers = {ct: set(ds) for ct, ds in ctx.drivers.items()}
    primary = [ds[0] for ds in ctx.drivers.values()]
    assert len(set(primary)) == cfg.n_types  # every type still has a driver of its own
    assert all(sum(p in ds for ds in drivers.values()) == 1 for p in primary)
    assert ctx.family is not None and len(set(ctx.family.tolist())) == cfg.type_families
    for (i, a), (j, b) in itertools.combinations(enumerate(ctx.types), 2):
        if ctx.family[i] == ctx.family[j]:
            assert len(drivers[a] & drivers[b]) >= 1  # a shared program
            assert len(drivers[a] ^ drivers[b]) <= 2  # only their own primary drivers differ
        else:
            assert not drivers[a] & drivers[b]
    # every family but possibly one has at least two types, so there are sibling pairs to confuse
    sizes = np.bincount(ctx.family)
    assert (sizes >= 2).sum() >= cfg.type_families - 1


def _toy_contexts() -> tuple[Contexts, np.ndarray]:
    """One line, three types in one family: TF 1 drives type1, TF 2 type2, TF 3 type3, TF 4 all of them."""
    active = np.zeros((4, 5), dtype=bool)
    active[:, 0] = True
    active[0, 1:] = True
    for k in range(3):
        active[1 + k, [1 + k, 4]] = True
    ctx = Contexts(lines=["lineA"], types=["type1", "type2", "type3"], active=active,
                   drivers={"type1": [1, 4], "type2": [2, 4], "type3": [3, 4]}, partner=np.full(5, -1),
                   family=np.zeros(3, dtype=np.int64))
    per_tf = 4000
    re_tfs = np.stack([np.repeat(np.arange(5), per_tf), np.full(5 * per_tf, -1)], axis=1)
    return ctx, re_tfs


def test_siblings_share_chromatin_except_at_their_own_drivers_sites():
    ctx, re_tfs = _toy_contexts()
    cfg = make_config("hard", 0, type_families=1, n_types=3)
    kinds = np.full(re_tfs.shape[0], ENHANCER)
    is_open, access = _openness(np.random.default_rng(0), cfg, ctx, kinds, re_tfs)
    t1, t2, t3 = (ctx.type_index(k) for k in range(3))
    shared = np.isin(re_tfs[:, 0], [0, 4])  # CTCF and the family's common driver
    np.testing.assert_array_equal(access[shared, t1], access[shared, t2])
    np.testing.assert_array_equal(access[shared, t1], access[shared, t3])
    own1 = re_tfs[:, 0] == 1
    assert 0.8 < is_open[own1, t1].mean() < 0.9
    # type1's sites are open in its siblings with probability sibling_open, the same draws in both siblings
    assert abs(is_open[own1, t2].mean() - cfg.sibling_open) < 0.03
    np.testing.assert_array_equal(is_open[own1, t2], is_open[own1, t3])
    assert (is_open[own1, t1] != is_open[own1, t2]).mean() > 0.1


def test_without_families_nothing_is_shared_or_opened_by_siblings():
    cfg = make_config("test", 7)
    ctx = make_contexts(np.random.default_rng(7), cfg)
    assert ctx.family is None and not ctx.sibling_active().any()
    assert cfg.type_families == 0 and cfg.sibling_open == 0 and cfg.batch_sigma == 0
    assert batch_factors(np.random.default_rng(0), cfg, 10) is None


def test_batch_factors_are_per_sample_and_element():
    cfg = make_config("hard", 1)
    f = batch_factors(np.random.default_rng(1), cfg, 5000)
    assert f.shape == (cfg.n_samples, 5000) and (f > 0).all()
    assert abs(np.log(f).std() - cfg.batch_sigma) < 0.02
    assert not np.allclose(f[0], f[1])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"type_families": 9}, "type_families"),
    ({"type_families": -1}, "type_families"),
    ({"type_families": 0, "sibling_open": 0.5}, "sibling_open"),
    ({"sibling_open": 1.5}, "sibling_open"),
    ({"batch_sigma": -0.1}, "batch_sigma"),
])
def test_bad_hard_parameters_are_named(overrides, message):
    with pytest.raises(ParamsError, match=message):
        make_config("hard", 0, **overrides)
