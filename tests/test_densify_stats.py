"""The sync-free densification statistics equal gsplat's DefaultStrategy._update_state (stages/lib/densify_stats.py)."""

from __future__ import annotations

import torch
from gsplat.strategy import DefaultStrategy

from stages.lib.densify_stats import SyncFreeDefaultStrategy


def fake_info(num_cameras: int, n: int, gen: torch.Generator) -> dict:
    means2d = torch.zeros(num_cameras, n, 2, requires_grad=True)
    means2d.grad = torch.randn(num_cameras, n, 2, generator=gen)
    means2d.absgrad = means2d.grad.abs()
    radii = torch.randint(0, 6, (num_cameras, n, 2), generator=gen, dtype=torch.int32)
    radii[:, : n // 4, 0] = 0  # a quarter invisible in one axis: not counted
    return {"width": 64, "height": 48, "n_cameras": num_cameras, "radii": radii, "gaussian_ids": None,
            "means2d": means2d}


def run(strategy: DefaultStrategy, infos: list[dict], n: int) -> dict:
    params = {"means": torch.zeros(n, 3)}
    state = strategy.initialize_state(scene_scale=1.0)
    for info in infos:
        strategy._update_state(params, state, info, packed=False)
    return state


def test_one_camera_per_step_is_bit_identical_to_gsplat():
    gen = torch.Generator().manual_seed(0)
    n = 200
    infos = [fake_info(1, n, gen) for _ in range(5)]
    for absgrad in (False, True):
        knobs = dict(absgrad=absgrad, refine_scale2d_stop_iter=1000)
        ours, theirs = run(SyncFreeDefaultStrategy(**knobs), infos, n), run(DefaultStrategy(**knobs), infos, n)
        for key in ("grad2d", "count", "radii"):
            assert torch.equal(ours[key], theirs[key]), key
        assert ours["count"][: n // 4].sum() == 0 and ours["grad2d"][: n // 4].sum() == 0  # invisible: nothing added
        assert ours["count"].max() <= 5 and ours["count"].sum() > 0


def test_several_cameras_sum_gradients_and_take_the_largest_radius():
    gen = torch.Generator().manual_seed(1)
    n = 50
    info = fake_info(3, n, gen)
    ours = run(SyncFreeDefaultStrategy(refine_scale2d_stop_iter=1000), [info], n)
    theirs = run(DefaultStrategy(refine_scale2d_stop_iter=1000), [info], n)
    torch.testing.assert_close(ours["grad2d"], theirs["grad2d"])
    assert torch.equal(ours["count"], theirs["count"])
    visible = (info["radii"] > 0).all(-1)
    expected = torch.where(visible, info["radii"].max(-1).values, 0).amax(0).float() / 64.0
    assert torch.equal(ours["radii"], expected)  # the maximum over the cameras (gsplat keeps one of them)


def test_training_with_it_equals_training_with_gsplats_strategy(monkeypatch):
    """train_rgb through densification: the same Gaussians, bit for bit, as with gsplat's own DefaultStrategy."""
    import stages.lib.densify_stats as densify_stats
    from stages.lib.gaussians import PARAM_KEYS
    from stages.lib.gs_trainer import GSTrainConfig, train_rgb
    from stages.lib.synthetic import SyntheticConfig, make_scene

    scene = make_scene(SyntheticConfig(seed=1, num_views=10, width=40, height=30, num_points=1500))
    cfg = GSTrainConfig.from_dict({"iterations": 80, "sh_degree": 0, "checkpoint_every": 0, "seed": 3,
                                   "densify": {"refine_start_iter": 20, "refine_stop_iter": 70, "refine_every": 20,
                                               "reset_every": 100000, "grow_grad2d": 0.0001}})
    ours = train_rgb(scene, cfg, torch.device("cpu"), progress=False)
    monkeypatch.setattr(densify_stats, "SyncFreeDefaultStrategy", DefaultStrategy)
    theirs = train_rgb(scene, cfg, torch.device("cpu"), progress=False)
    assert len(ours["means"]) != 1500, "densification ran"
    for key in PARAM_KEYS:
        assert torch.equal(ours[key], theirs[key]), key
