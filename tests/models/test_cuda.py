"""The model code on a CUDA GPU agrees with the CPU: the MoE layer (gated and linear experts), the tiny presets, the
upcycled model, bf16 autocast. Marked `cuda`: skipped with the reason "needs a CUDA GPU" elsewhere (tests/conftest.py);
bench/gpu_check.sh runs them on a GPU machine."""

from __future__ import annotations

import pytest
import torch

from pmoe_core.models import build_model
from pmoe_core.models.moe import MoE, MoEConfig
from pmoe_core.models.presets import ptv3_tiny
from pmoe_core.models.sparse_conv import HAS_SPCONV
from pmoe_core.models.upcycle import upcycle_config, upcycled_state

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


@pytest.mark.parametrize("cfg", [MoEConfig(8, 2, 2.0), MoEConfig(4, 2, expert="linear"),
                                 MoEConfig(4, 1, 1.0, shared_expert=True)])
def test_moe_layer_on_cuda_equals_cpu(cfg):
    torch.manual_seed(0)
    cpu = MoE(64, cfg)
    gpu = MoE(64, cfg).to(CUDA)
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(5000, 64)
    outs = []
    for moe, xi in ((cpu, x.clone().requires_grad_(True)), (gpu, x.to(CUDA).requires_grad_(True))):
        y = moe(xi)
        y.square().mean().backward()
        outs.append([y.detach().cpu(), xi.grad.cpu()] + [p.grad.cpu() for p in moe.parameters()])
    for a, b in zip(*outs):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-3)


def test_moe_layer_bf16_autocast_forward_backward():
    torch.manual_seed(0)
    moe = MoE(64, MoEConfig(8, 2, 2.0)).to(CUDA)
    x = torch.randn(20000, 64, device=CUDA, requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = moe(x)
    assert y.dtype == torch.bfloat16
    y.float().square().mean().backward()
    assert torch.isfinite(x.grad).all() and all(torch.isfinite(p.grad).all() for p in moe.parameters())
    ref = moe(x.detach())
    torch.testing.assert_close(y.float(), ref, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize("preset", ["ptv3-tiny", "pmoe-tiny"])
def test_tiny_model_on_cuda_equals_cpu(make_batch, preset):
    torch.manual_seed(0)
    cpu = build_model(preset, text_dim=16, backend="torch").eval()
    gpu = build_model(preset, text_dim=16).to(CUDA).eval()  # the default backend: spconv where installed
    gpu.load_state_dict(cpu.state_dict())
    batch, classes = make_batch((3000, 2000), surface=True), torch.randn(6, 16)
    with torch.no_grad():
        want = cpu(batch, classes)
        got = gpu(batch.to(CUDA), classes.to(CUDA)).cpu()
    torch.testing.assert_close(got, want, atol=2e-2, rtol=1e-2)  # logits at scale 100: cosine agreement ~1e-4


def test_upcycled_model_equals_dense_on_cuda(make_batch):
    torch.manual_seed(0)
    dense = build_model(ptv3_tiny(), text_dim=16).to(CUDA).eval()
    moe = build_model(upcycle_config(ptv3_tiny(), 4), text_dim=16).to(CUDA).eval()
    moe.load_state_dict(upcycled_state(moe, dense.state_dict()))
    batch, classes = make_batch((3000,), surface=True).to(CUDA), torch.randn(6, 16, device=CUDA)
    with torch.no_grad():
        torch.testing.assert_close(moe(batch, classes), dense(batch, classes), atol=1e-3, rtol=1e-3)


@pytest.mark.skipif(not HAS_SPCONV, reason="spconv is not installed: nothing to compare the torch backend with")
def test_spconv_and_torch_backends_agree_on_cuda(make_batch):
    torch.manual_seed(0)
    ref = build_model("ptv3-tiny", backend="torch").to(CUDA).eval()
    sp = build_model("ptv3-tiny", backend="spconv").to(CUDA).eval()
    sp.load_state_dict(ref.state_dict())
    batch = make_batch((4000,), surface=True).to(CUDA)
    with torch.no_grad():
        torch.testing.assert_close(sp(batch), ref(batch), atol=1e-3, rtol=1e-3)
