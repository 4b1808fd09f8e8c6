"""train_gs options on CPU: parameter plumbing, the 3DGS schedules and initialisation, gsplat's anti-aliased
opacity, size-based pruning after the first reset, and the one-line stops of CUDA-only options."""

import math

import numpy as np
import pytest
import torch

from stages.lib.gaussians import SH_C0
from stages.lib.gs_trainer import (
    REFERENCE_GREY,
    DensifyConfig,
    GaussianTrainer,
    GSTrainConfig,
    initial_gaussians,
    train_rgb,
    view_schedule,
)
from stages.lib.readers.images import random_points_in_box
from stages.lib.render import CudaOnlyError, render
from stages.lib.synthetic import SyntheticConfig, make_scene

W, H, F = 32, 24, 40.0


@pytest.fixture(scope="module")
def scene():
    return make_scene(SyntheticConfig(seed=3, num_views=6, width=32, height=24, num_points=400))


def test_every_option_reaches_the_config():
    cfg = GSTrainConfig.from_dict({
        "lr_means_steps": 30000, "init_rotation": "identity", "init_color": "grey", "view_order": "epoch",
        "rasterize_mode": "antialiased", "packed": True, "strategy": "mcmc",
        "densify": {"absgrad": True, "grow_grad2d": 0.0008}, "mcmc": {"cap_max": 300000, "noise_lr": 1e5}})
    assert (cfg.lr_means_steps, cfg.init_rotation, cfg.init_color, cfg.view_order) == (30000, "identity", "grey",
                                                                                        "epoch")
    assert (cfg.rasterize_mode, cfg.packed, cfg.strategy) == ("antialiased", True, "mcmc")
    assert cfg.densify.absgrad and cfg.densify.grow_grad2d == 0.0008
    assert cfg.mcmc.strategy_knobs()["cap_max"] == 300000 and "opacity_reg" not in cfg.mcmc.strategy_knobs()
    assert cfg.mcmc.noise_lr == 1e5 and cfg.mcmc.refine_stop_iter == 25000  # gsplat's default kept


@pytest.mark.parametrize("key,value", [("rasterize_mode", "mip"), ("strategy", "mcmcx"), ("init_color", "rgb"),
                                       ("view_order", "sequential"), ("init_rotation", "zero"),
                                       ("compile_mode", "max-autotune")])
def test_unknown_choice_names_the_parameter(key, value):
    with pytest.raises(ValueError, match=f"train_gs: {key} must be one of"):
        GSTrainConfig.from_dict({key: value})


def test_unknown_key_is_refused():
    with pytest.raises(TypeError, match="cap_maxx"):
        GSTrainConfig.from_dict({"mcmc": {"cap_maxx": 1}})


@pytest.mark.parametrize("params,needle", [({"strategy": "mcmc"}, "strategy: mcmc"),
                                           ({"densify": {"absgrad": True}}, "densify.absgrad")])
def test_cuda_only_options_stop_on_cpu_before_training(scene, params, needle):
    cfg = GSTrainConfig.from_dict({"iterations": 5, **params})
    with pytest.raises(CudaOnlyError, match=f"train_gs: {needle}.*need\\(s\\) CUDA, but the device is cpu"):
        train_rgb(scene, cfg, torch.device("cpu"), progress=False,
                  on_start=lambda t: pytest.fail("training started"))


def test_absgrad_render_on_cpu_stops_with_one_line():
    means, quats, scales, opac, col = single_gaussian()
    with pytest.raises(CudaOnlyError, match="absgrad densification needs gsplat's CUDA rasteriser"):
        render(means, quats, scales, opac, col, torch.eye(4)[None], intrinsics(), W, H, absgrad=True)


def test_position_lr_decays_exponentially_over_lr_means_steps():
    cfg = GSTrainConfig(iterations=7000, lr_means_steps=30000)
    assert cfg.means_lr_factor(0) == 1.0
    assert cfg.means_lr_factor(15000) == pytest.approx(0.1)  # geometric midpoint of 1.6e-4 -> 1.6e-6
    assert cfg.means_lr_factor(7000) == pytest.approx(0.01 ** (7000 / 30000))
    assert cfg.means_lr_factor(30000) == pytest.approx(0.01) == cfg.means_lr_factor(40000)
    assert GSTrainConfig(iterations=7000).means_lr_factor(7000) == pytest.approx(0.01)  # 0: over iterations


def test_random_cube_initialisation_as_3dgs(scene):
    """Lego: 100k uniform points in [-1.3, 1.3]^3, identity rotations, 3DGS's grey colours, opacity 0.1."""
    from dataclasses import replace

    xyz, rgb = random_points_in_box(100_000, [-1.3] * 3, [1.3] * 3, seed=0)
    cube = replace(scene, points_xyz=xyz, points_rgb=rgb)
    init = initial_gaussians(cube, GSTrainConfig(init_rotation="identity", init_color="grey"))
    assert init["means"].shape == (100_000, 3) and init["means"].abs().max() <= 1.3
    assert init["means"].mean(0).abs().max() < 0.02  # uniform: centred
    torch.testing.assert_close(init["quats"], torch.tensor([1.0, 0, 0, 0]).expand(100_000, 4))
    torch.testing.assert_close(SH_C0 * init["sh0"] + 0.5, torch.full((100_000, 1, 3), REFERENCE_GREY))
    torch.testing.assert_close(torch.sigmoid(init["opacities"]), torch.full((100_000,), 0.1))
    default = initial_gaussians(cube, GSTrainConfig())
    assert not torch.allclose(default["quats"], init["quats"])  # gsplat-style random rotations by default
    torch.testing.assert_close(SH_C0 * default["sh0"][:, 0] + 0.5, torch.from_numpy(rgb / 255.0).float())
    # auto: grey where the point colours are random, the points' own colours where they were seen
    auto = GSTrainConfig(init_color="auto")
    random_colours = replace(cube, random_point_colours=True)
    torch.testing.assert_close(initial_gaussians(random_colours, auto)["sh0"], init["sh0"])
    torch.testing.assert_close(initial_gaussians(cube, auto)["sh0"], default["sh0"])


def test_epoch_order_visits_every_view_once_per_epoch():
    views = view_schedule(7, "epoch", np.random.default_rng(0))
    first = [next(views) for _ in range(21)]
    for epoch in range(3):
        assert sorted(first[7 * epoch:7 * epoch + 7]) == list(range(7))
    assert first[:7] != first[7:14]
    uniform = view_schedule(7, "random", np.random.default_rng(0))
    assert all(0 <= next(uniform) < 7 for _ in range(50))


@pytest.mark.parametrize("reset_every,expected", [(3000, 3000), (0, 2**62)])
def test_densify_passes_reset_every_to_gsplat(reset_every, expected):
    assert DensifyConfig(reset_every=reset_every).strategy_knobs()["reset_every"] == expected


def test_world_size_pruning_starts_after_the_first_reset():
    """3DGS prunes Gaussians larger than 0.1 x extent from the first opacity reset on (gsplat's _prune_gs)."""
    extent = 2.0
    params = {"means": torch.zeros(3, 3), "quats": torch.tensor([[1.0, 0, 0, 0]]).repeat(3, 1),
              "scales": torch.log(torch.tensor([[0.05] * 3, [0.19] * 3, [0.21] * 3])),
              "opacities": torch.logit(torch.full((3,), 0.5)), "sh0": torch.zeros(3, 1, 3),
              "shN": torch.zeros(3, 0, 3)}
    lrs = {k: 1e-3 for k in params}
    trainer = GaussianTrainer(params, lrs, DensifyConfig(reset_every=3000), extent, torch.device("cpu"))
    strategy, state = trainer.strategy, trainer.strategy_state
    assert strategy._prune_gs(trainer.params, trainer.optimizers, state, step=3000) == 0
    assert strategy._prune_gs(trainer.params, trainer.optimizers, state, step=3100) == 1
    assert torch.exp(trainer.params["scales"]).max().item() == pytest.approx(0.19)


def intrinsics():
    return torch.tensor([[[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]]])


def single_gaussian(z=4.0, sigma=0.1, opacity=0.8):
    return (torch.tensor([[0.0, 0.0, z]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), sigma),
            torch.tensor([opacity]), torch.tensor([[1.0, 0.5, 0.25]]))


def test_antialiased_opacity_is_scaled_by_the_filter_compensation():
    """Anti-aliased mode: opacity x sqrt(det(S) / det(S + 0.3 I)) = v / (v + 0.3) for an isotropic 2D variance v."""
    g = single_gaussian()
    var2d = (F * 0.1 / 4.0) ** 2
    _, classic, _ = render(*g, torch.eye(4)[None], intrinsics(), W, H)
    _, aa, info = render(*g, torch.eye(4)[None], intrinsics(), W, H, rasterize_mode="antialiased")
    ratio = aa[0, ..., 0] / classic[0, ..., 0].clamp_min(1e-12)
    centre = ratio[H // 2, W // 2].item()
    assert centre == pytest.approx(var2d / (var2d + 0.3), rel=1e-5)
    _, packed, info_packed = render(*g, torch.eye(4)[None], intrinsics(), W, H, packed=True)
    assert torch.equal(packed, classic) and info_packed["packed"] is False and info["packed"] is False
    with pytest.raises(ValueError, match="rasterize_mode must be"):
        render(*g, torch.eye(4)[None], intrinsics(), W, H, rasterize_mode="mip")


def test_antialiased_training_runs_on_cpu(scene):
    cfg = GSTrainConfig.from_dict({"iterations": 4, "sh_degree": 0, "checkpoint_every": 0, "packed": True,
                                   "rasterize_mode": "antialiased", "view_order": "epoch",
                                   "init_rotation": "identity", "densify": {"enabled": False}})
    started = []
    params = train_rgb(scene, cfg, torch.device("cpu"), progress=False, on_start=lambda t: started.append(t.step))
    assert started == [0] and params["means"].shape[0] == len(scene.points_xyz)
    assert math.isfinite(float(params["opacities"].sum()))


def test_evaluation_renders_in_the_trained_mode(scene):
    """evaluate_render renders anti-aliased Gaussians anti-aliased: the two modes give different test PSNRs."""
    from stages.evaluate_render import evaluate_test_views

    params = initial_gaussians(scene, GSTrainConfig(sh_degree=0))
    tables = {mode: evaluate_test_views(scene, params, 0, torch.device("cpu"), num_previews=0, rasterize_mode=mode)[0]
              for mode in ("classic", "antialiased")}
    assert len(tables["classic"]) == int(scene.is_test.sum())
    assert not np.allclose(tables["classic"]["psnr"], tables["antialiased"]["psnr"])


@pytest.mark.parametrize("method", ["separable", "fft", "shifted"])
def test_every_ssim_method_equals_the_2d_window(method):
    """ssim(method=...) is the same 11x11 Gaussian-window SSIM as the 2D convolution, values and gradients (known
    answers: 1 for equal images, symmetric), also for a non-square image."""
    from stages.lib.image_metrics import ssim

    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 40, 52, 3, generator=gen, dtype=torch.float64)
    b = (a + 0.2 * torch.randn(a.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    assert float(ssim(a, b, method=method)) == pytest.approx(float(ssim(a, b)), abs=1e-12)
    assert float(ssim(a, a, method=method)) == pytest.approx(1.0, abs=1e-12)
    assert float(ssim(a, b, method=method)) == pytest.approx(float(ssim(b, a, method=method)), abs=1e-12)
    grads = []
    for m in ("conv", method):
        x = a.clone().requires_grad_()
        ssim(x, b, method=m).backward()
        grads.append(x.grad)
    assert grads[0].abs().max() > 0 and torch.allclose(grads[0], grads[1], atol=1e-12)
    assert GSTrainConfig.from_dict({"ssim_method": method}).ssim_method == method


def test_unknown_ssim_method_is_named():
    from stages.lib.image_metrics import ssim

    with pytest.raises(ValueError, match="ssim_method"):
        GSTrainConfig.from_dict({"ssim_method": "fused"})
    with pytest.raises(ValueError, match="'fused'"):
        ssim(torch.zeros(1, 16, 16, 3), torch.zeros(1, 16, 16, 3), method="fused")


def test_fused_adam_takes_the_same_steps_as_the_default_adam():
    """fused_adam is speed only: a few steps of the same loss give the same parameters (float rounding)."""
    def run(fused: bool) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        params = {"means": torch.randn(5, 3, generator=g), "scales": torch.randn(5, 3, generator=g)}
        trainer = GaussianTrainer(params, {k: 0.01 for k in params}, None, 1.0, torch.device("cpu"), fused_adam=fused)
        for _ in range(3):
            loss = (trainer.params["means"] ** 2).sum() + torch.exp(trainer.params["scales"]).sum()
            trainer.optimise(loss, {})
        return {k: v.detach() for k, v in trainer.params.items()}

    fused, default = run(True), run(False)
    start = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    assert (default["means"] - start).abs().min() > 1e-3  # the steps moved every parameter
    for k in default:
        assert torch.allclose(fused[k], default[k], atol=1e-6), k


def _densifying_config(fused: bool, iterations: int = 60, checkpoint_every: int = 0) -> GSTrainConfig:
    return GSTrainConfig.from_dict({
        "iterations": iterations, "sh_degree": 0, "checkpoint_every": checkpoint_every, "fused_adam": fused,
        "view_order": "epoch", "densify": {"refine_start_iter": 5, "refine_every": 10, "refine_stop_iter": 50,
                                           "reset_every": 30, "grow_grad2d": 1e-6}})


class _OneAdamPerTensor:
    """The baseline: one fused Adam per tensor, stepped one after the other (what fused_adam did before)."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)


def _one_adam_per_tensor(params, lrs, fused=None, eps=1e-15):
    opts = {k: torch.optim.Adam([{"params": [params[k]], "lr": lrs[k], "name": k}], eps=eps, fused=fused)
            for k in params if lrs.get(k, 0.0) > 0}
    return _OneAdamPerTensor(list(opts.values())), opts


def test_shared_fused_adam_densifies_like_one_adam_per_tensor(scene, monkeypatch):
    """fused_adam puts every tensor in one Adam seen by gsplat's strategy through per-tensor views: through clones,
    splits, prunes and opacity resets it takes bit for bit the steps of one fused Adam per tensor."""
    import stages.lib.gs_trainer as gs_trainer
    from stages.lib.grouped_optimizer import GroupView

    trainers = {}
    shared = train_rgb(scene, _densifying_config(True), torch.device("cpu"), progress=False,
                       on_start=lambda t: trainers.__setitem__("shared", t))
    monkeypatch.setattr(gs_trainer, "shared_adam", _one_adam_per_tensor)
    baseline = train_rgb(scene, _densifying_config(True), torch.device("cpu"), progress=False)
    trainer = trainers["shared"]
    assert all(isinstance(v, GroupView) for v in trainer.optimizers.values()) and len(trainer.steppers()) == 1
    assert all(g["params"][0] is trainer.params[g["name"]] for g in trainer.shared_optimizer.param_groups)
    assert len(shared["means"]) > len(scene.points_xyz)  # densification grew the set
    for k in baseline:
        assert torch.equal(shared[k], baseline[k]), k


def test_shared_fused_adam_resumes_from_its_checkpoint(scene, tmp_path):
    """The shared optimiser's state goes into the checkpoint and comes back on resume, tensor for tensor."""
    ckpt = tmp_path / "train_gs.ckpt"
    train_rgb(scene, _densifying_config(True, iterations=40, checkpoint_every=20), torch.device("cpu"),
              checkpoint=ckpt, fingerprint="f", progress=False)
    saved = torch.load(ckpt, weights_only=False)["optimizers"]["shared"]["state"]
    resumed = []
    train_rgb(scene, _densifying_config(True, iterations=21, checkpoint_every=20), torch.device("cpu"),
              checkpoint=ckpt, fingerprint="f", progress=False, on_start=lambda t: resumed.append(
                  (t.step, {i: {k: v.clone() for k, v in s.items()}  # the optimiser updates its state in place
                          for i, s in t.shared_optimizer.state_dict()["state"].items()})))
    (step, state), = resumed
    assert step == 20 and sorted(state) == sorted(saved) == list(range(len(saved)))
    for i in saved:
        assert torch.equal(state[i]["exp_avg"], saved[i]["exp_avg"]), i
    assert all(s["exp_avg"].abs().sum() > 0 for s in state.values() if s["exp_avg"].numel())  # trained, not fresh


@pytest.mark.slow  # torch.compile's first compilation takes minutes on a loaded CPU
def test_compiled_loss_equals_the_eager_loss_in_value_and_gradient():
    """compile_loss is speed only: the compiled 3DGS Eq. 7 loss has the eager loss's value and gradient."""
    from stages.lib.gs_trainer import GSTrainConfig, loss_function

    g = torch.Generator().manual_seed(1)
    render = torch.rand(1, 12, 16, 3, generator=g)
    target = (torch.rand(1, 12, 16, 3, generator=g) * 255).to(torch.uint8)
    results = []
    for compiled in (False, True):
        cfg = GSTrainConfig.from_dict({"compile_loss": compiled})
        x = render.clone().requires_grad_()
        loss = loss_function(cfg, tuple(render.shape), torch.device("cpu"))(x, target)
        loss.backward()
        results.append((loss.detach(), x.grad))
    (eager, eager_grad), (comp, comp_grad) = results
    assert 0.05 < float(eager) < 1.0  # random images: far from a perfect match
    assert torch.allclose(comp, eager, atol=1e-6)
    assert torch.allclose(comp_grad, eager_grad, atol=1e-7)


def test_tile_size_must_be_a_tile_side_gsplat_builds():
    assert GSTrainConfig.from_dict({"tile_size": 8}).tile_size == 8
    with pytest.raises(ValueError, match="train_gs: tile_size must be 8, 16 or 32 pixels, got 12"):
        GSTrainConfig.from_dict({"tile_size": 12})
