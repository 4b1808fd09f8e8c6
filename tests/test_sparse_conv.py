"""Sparse-convolution backends: every backend that imports here equals the pure-torch reference (forward and input
gradient) on random sparse tensors, per operation and through a whole MinkUNet18A; the reference equals dense
convolution; voxelisation round trips."""

import pytest
import torch
import torch.nn.functional as F

from stages.lib.sparse_conv import available_backends, get_backend
from stages.lib.sparse_conv.unet import MinkUNet18A
from stages.lib.sparse_conv.voxels import voxelise

REFERENCE = get_backend("torch")

OTHERS = [name for name in available_backends() if name != "torch"]
TOL = 1e-4  # float32 sums in another order


def random_sites(n: int = 400, extent: int = 12, batches: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sites = torch.cat([torch.randint(0, batches, (n, 1), generator=g),
                       torch.randint(0, extent, (n, 3), generator=g)], 1)
    return torch.unique(sites, dim=0)


def by_site(coords: torch.Tensor, feats: torch.Tensor) -> dict[tuple, torch.Tensor]:
    return {tuple(c.tolist()): f for c, f in zip(coords.long(), feats)}


def sites_of(backend, t) -> torch.Tensor:
    return {"torch": lambda: t.coords, "spconv": lambda: t.indices, "minkowski": lambda: t.C}[backend.name]()


def test_the_reference_equals_dense_convolution():
    coords = random_sites(batches=1)
    feats = torch.randn(len(coords), 3, dtype=torch.float64)
    dense = torch.zeros(1, 3, 12, 12, 12, dtype=torch.float64)
    dense[0, :, coords[:, 1], coords[:, 2], coords[:, 3]] = feats.T
    for k in (1, 3, 5):
        conv = REFERENCE.conv(3, 4, k, "k").double()
        w = REFERENCE.get_kernel(conv).reshape(k, k, k, 3, 4).permute(4, 3, 0, 1, 2)
        expected = F.conv3d(dense, w, padding=k // 2)[0][:, coords[:, 1], coords[:, 2], coords[:, 3]].T
        got = conv(REFERENCE.tensor(coords, feats)).feats
        assert torch.allclose(got, expected, atol=1e-12), k
    down = REFERENCE.down(3, 4, "d").double()
    out = down(REFERENCE.tensor(coords, feats))
    w = REFERENCE.get_kernel(down).reshape(2, 2, 2, 3, 4).permute(4, 3, 0, 1, 2)
    expected = F.conv3d(dense, w, stride=2)[0][:, out.coords[:, 1], out.coords[:, 2], out.coords[:, 3]].T
    assert torch.allclose(out.feats, expected, atol=1e-12)
    assert len(out.coords) == len(torch.unique(torch.div(coords, 2, rounding_mode="floor")[:, 1:], dim=0))


def test_the_transposed_convolution_is_the_adjoint_of_the_down_convolution():
    coords = random_sites()
    x = torch.randn(len(coords), 3, dtype=torch.float64)
    down, up = REFERENCE.down(3, 4, "d").double(), REFERENCE.up(4, 3, "d").double()
    REFERENCE.set_kernel(up, REFERENCE.get_kernel(down).transpose(1, 2))
    coarse = down(REFERENCE.tensor(coords, x))
    y = torch.randn(len(coarse.feats), 4, dtype=torch.float64)
    back = up(REFERENCE.with_features(coarse, y))
    assert torch.equal(back.coords, coords)
    assert torch.allclose((coarse.feats * y).sum(), (x * back.feats).sum())  # <D x, y> = <x, D^T y>


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("op", ["conv1", "conv3", "conv5", "down_up"])
def test_each_backend_operation_equals_the_reference(name, op):
    backend = get_backend(name)
    coords = random_sites()
    x = torch.randn(len(coords), 5)
    if op == "down_up":
        mods = [(REFERENCE.down(5, 6, "d"), backend.down(5, 6, "d")), (REFERENCE.up(6, 4, "d"), backend.up(6, 4, "d"))]
    else:
        k = int(op[-1])
        mods = [(REFERENCE.conv(5, 6, k, "k", bias=True), backend.conv(5, 6, k, "k", bias=True))]
    for ref_mod, mod in mods:
        backend.set_kernel(mod, REFERENCE.get_kernel(ref_mod))
        assert torch.allclose(backend.get_kernel(mod), REFERENCE.get_kernel(ref_mod))
        if getattr(ref_mod, "bias", None) is not None:
            with torch.no_grad():
                ref_mod.bias.normal_()
                mod.bias.copy_(ref_mod.bias)
    xr, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    tr, tb = REFERENCE.tensor(coords, xr), backend.tensor(coords, xb)
    for ref_mod, mod in mods:
        tr, tb = ref_mod(tr), mod(tb)
    ref_out = by_site(tr.coords, tr.feats)
    out = by_site(sites_of(backend, tb), backend.features(tb))
    assert ref_out.keys() == out.keys()
    assert max(float((ref_out[s] - out[s]).abs().max().detach()) for s in out) < TOL
    weights = torch.randn(len(tr.feats), tr.feats.shape[1])
    order = torch.tensor([list(ref_out).index(s) for s in out])
    (tr.feats * weights).sum().backward()
    (backend.features(tb) * weights[order]).sum().backward()
    assert torch.allclose(xr.grad, xb.grad, atol=TOL)


@pytest.mark.parametrize("name", OTHERS)
def test_each_backend_minkunet_equals_the_reference(name):
    backend = get_backend(name)
    torch.manual_seed(0)
    coords = random_sites(n=1500, extent=40, batches=1)
    ref_net, net = MinkUNet18A(REFERENCE, 1, 8, width=0.25).eval(), MinkUNet18A(backend, 1, 8, width=0.25).eval()
    # 8 levels x 2 blocks x 2 convs, stem, 4 down + 4 up, 4 width-changing 1x1 skips, head
    assert len(ref_net.convolutions()) == len(net.convolutions()) == 49
    for ref_mod, mod in zip(ref_net.convolutions(), net.convolutions()):
        backend.set_kernel(mod, REFERENCE.get_kernel(ref_mod))
        if getattr(ref_mod, "bias", None) is not None:
            with torch.no_grad():
                mod.bias.copy_(ref_mod.bias)
    x = torch.randn(len(coords), 1)
    xr, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    yr = ref_net(REFERENCE.tensor(coords, xr)).feats
    inp = backend.tensor(coords, xb)
    yb = backend.input_order(net(inp), inp)
    assert torch.allclose(yr, yb, atol=TOL), float((yr - yb).abs().max())
    w = torch.randn_like(yr)
    (yr * w).sum().backward()
    (yb * w).sum().backward()
    assert torch.allclose(xr.grad, xb.grad, atol=TOL * 10)


def test_auto_picks_the_fastest_backend_that_imports():
    assert get_backend("auto").name == available_backends()[0]
    with pytest.raises(ValueError, match="unknown sparse-conv backend 'bogus'"):
        get_backend("bogus")


def test_voxelisation_round_trip():
    g = torch.Generator().manual_seed(0)
    points = torch.rand(2000, 3, generator=g, dtype=torch.float64) * 2.0 - 1.0
    vox = voxelise(points, 0.1)
    assert len(vox.coords) == len(torch.unique(torch.floor((points - points.min(0).values) / 0.1), dim=0))
    assert (vox.centres()[vox.point_voxel] - points).abs().max() <= 0.05 + 1e-12  # each point lies in its voxel
    per_voxel = torch.randn(len(vox.coords), 4, dtype=torch.float64, generator=g)
    assert torch.allclose(vox.pool(vox.devoxelise(per_voxel)), per_voxel, atol=1e-12)  # voxel -> points -> voxel
    per_point = torch.randn(len(points), 4, dtype=torch.float64, generator=g)
    pooled = vox.devoxelise(vox.pool(per_point))
    one = vox.point_voxel == vox.point_voxel[0]
    assert torch.allclose(pooled[one], per_point[one].mean(0).expand(int(one.sum()), 4))
    with pytest.raises(ValueError, match="voxel size must be > 0"):
        voxelise(points, 0.0)
