"""The CUDA path against the CPU: kernels bit for bit, models, AMP, torch.compile, pcseg segment.

Runs only where torch sees a CUDA device (``scripts/gpu_check.sh`` runs it on a GPU machine);
elsewhere every test is skipped with the reason. The CPU kernels are checked against naive
references in tests/test_ops.py, so equality with them is equality with the references.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pcseg import ops
from pcseg.models import build
from test_ops import ADVERSARIAL, as_batch, room_like

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: torch.cuda.is_available() is False")

DTYPES = [torch.float32, torch.float64]
CUDA = torch.device("cuda")
SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "samples" / "room.ply"
#: Reference clouds of at least this many points take the CUDA kNN's tree search (knn_cuda.cu).
TREE_MIN_POINTS = 65536


@pytest.fixture(autouse=True)
def exact_float32_matmuls():
    """No TF32 in matrix products or convolutions, so CUDA models match the CPU closely."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def both(fn, *tensors):
    """fn on the CPU tensors and on their CUDA copies; returns (cpu result, cuda result on the CPU)."""
    on_cpu = fn(*tensors)
    on_gpu = fn(*(t.to(CUDA) for t in tensors))
    if isinstance(on_gpu, tuple):
        return on_cpu, tuple(t.cpu() for t in on_gpu)
    return on_cpu, on_gpu.cpu()


def assert_identical(cpu, gpu):
    """Bitwise equality of tensors or tuples of tensors (NaN-free: the ops never return NaN)."""
    for a, b in zip(cpu if isinstance(cpu, tuple) else (cpu,), gpu if isinstance(gpu, tuple) else (gpu,)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b), f"{(a != b).sum().item()} of {a.numel()} values differ"


def enlarged(points: np.ndarray, n: int = TREE_MIN_POINTS + 4000) -> np.ndarray:
    """The cloud twice over (exact duplicates), then translated copies side by side up to n points."""
    twice = np.concatenate([points, points])
    step = np.ptp(points, axis=0).max() + 1.0
    copies = -(-n // len(twice))
    return np.concatenate([twice + [j * step, 0.0, 0.0] for j in range(copies)])[:n]


def test_extension_has_cuda_kernels():
    info = ops.build_info()
    assert info["cuda"] is True, f"pcseg._C was built without CUDA kernels: {info}"


# --------------------------------------------------------------------------- fps

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
def test_fps_adversarial(case, dtype, rng):
    x = as_batch(ADVERSARIAL[case](rng), dtype)
    assert_identical(*both(lambda t: ops.fps(t, min(50, x.shape[1]), start_idx=3), x))


@pytest.mark.parametrize("dtype", DTYPES)
def test_fps_padded_batches_small_and_large_clouds(dtype):
    """Padded clouds below and above 8192 points take the one-launch and the chunked kernel."""
    for n, lengths in [(500, [500, 300, 64]), (8192, [8192, 4097, 64]), (20_000, [20_000, 9000, 8193])]:
        x = torch.rand(3, n, 3, dtype=dtype, generator=torch.Generator().manual_seed(n))
        x[:, :100] = x[:, 100:200]  # exact duplicates
        lens = torch.tensor(lengths)
        assert_identical(*both(lambda t, l: ops.fps(t, 64, l), x, lens))


def test_fps_every_point_when_m_equals_n(rng):
    x = as_batch(np.repeat(rng.random((600, 3)), 2, axis=0), torch.float64)  # 1200 points, all tied twice
    cpu, gpu = both(lambda t: ops.fps(t, 1200), x)
    assert_identical(cpu, gpu)
    assert sorted(gpu[0].tolist()) == list(range(1200))


def test_fps_one_million_points(rng):
    x = as_batch(room_like(rng, 1_000_000), torch.float32)
    assert_identical(*both(lambda t: ops.fps(t, 256), x))


# --------------------------------------------------------------------------- knn

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
@pytest.mark.parametrize("size", ["small", "tree"])
def test_knn_adversarial(case, dtype, size, rng):
    points = ADVERSARIAL[case](rng)
    ref = as_batch(points if size == "small" else enlarged(points), dtype)
    query = torch.cat([ref[:, ::7], ref[:, :5] + 0.05], dim=1)
    assert_identical(*both(lambda q, r: ops.knn(q, r, 9), query, ref))
    assert_identical(*both(lambda r: ops.knn(r, r, 9), ref))  # the same tensor: self queries


@pytest.mark.parametrize("n", [300, TREE_MIN_POINTS + 100])
def test_knn_padded_batch_and_k_larger_than_cloud(n):
    x = torch.rand(3, n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    x[:, :100] = x[:, 100:200]
    lengths, qlen = torch.tensor([n, n // 2, 7]), torch.tensor([n, 60, 7])
    cpu, gpu = both(lambda t, q, l: ops.knn(t, t, 12, q, l), x, qlen, lengths)
    assert_identical(cpu, gpu)
    assert (gpu[1][2, :7, 7:] == -1).all() and torch.isinf(gpu[0][2, :7, 7:]).all()  # k > 7 points
    assert (gpu[1][1, 60:] == -1).all()                                                # padding queries


def test_a_tree_too_deep_for_the_device_stack_falls_back_to_the_scan(rng):
    """Points at 2^-i spacing make the KD-tree over 100 levels deep, past the CUDA walk's stack."""
    tiny = np.c_[1e-3 * 2.0 ** -np.arange(200), np.zeros((200, 2))]
    ref = as_batch(np.concatenate([rng.random((TREE_MIN_POINTS + 4000, 3)), tiny]), torch.float64)
    query = torch.cat([ref[:, ::40], ref[:, -200:]], dim=1)
    assert_identical(*both(lambda q, r: ops.knn(q, r, 8), query, ref))
    assert_identical(*both(lambda q, r: ops.ring_knn(q, r, 8, 1e-4, 0.05), query, ref))


def test_knn_one_million_points_self(rng):
    x = as_batch(room_like(rng, 1_000_000), torch.float32)
    assert_identical(*both(lambda t: ops.knn(t, t, 16), x))


# --------------------------------------------------------------------------- ring_knn

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(ADVERSARIAL))
@pytest.mark.parametrize("size", ["small", "tree"])
def test_ring_knn_adversarial(case, dtype, size, rng):
    points = ADVERSARIAL[case](rng)
    extent = max(float(np.ptp(points, axis=0).max()), 1.0)
    ref = as_batch(points if size == "small" else enlarged(points), dtype)
    query = torch.cat([ref[:, ::5], ref[:, :3] + 7.3 * extent], dim=1)  # the last 3 rings are empty
    cpu, gpu = both(lambda q, r: ops.ring_knn(q, r, 6, 0.1 * extent, 0.3 * extent), query, ref)
    assert_identical(cpu, gpu)


def test_ring_knn_fill_rules_and_padding():
    ref = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 2, 0], [-2, 0, 0], [5, 0, 0]]])
    for r_in, r_out in [(1.5, 3.0), (2.5, 4.0), (10.0, 11.0), (1.0, 2.0)]:
        assert_identical(*both(lambda q, r: ops.ring_knn(q, r, 4, r_in, r_out), ref[:, :1], ref))
    x = torch.rand(2, 300, 3)
    qlen, rlen = torch.tensor([20, 0]), torch.tensor([300, 120])
    cpu, gpu = both(lambda q, r, a, b: ops.ring_knn(q, r, 8, 0.1, 0.25, a, b), x[:, :30], x, qlen, rlen)
    assert_identical(cpu, gpu)
    assert (gpu[0][1] == -1).all() and (gpu[1][1] == 0).all()


def test_ring_knn_one_million_points(rng):
    x = as_batch(room_like(rng, 1_000_000), torch.float32)
    centres = x[:, ::250]
    assert_identical(*both(lambda q, r: ops.ring_knn(q, r, 16, 0.05, 0.2), centres, x))


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("call, message", [
    (lambda x: ops.knn(x, x.cpu(), 4), "is on"),
    (lambda x: ops.fps(x, 4, torch.tensor([10])), "is on"),
    (lambda x: ops.fps(x, 4, torch.tensor([11], device=CUDA)), r"\[1, 10\]"),
    (lambda x: ops.knn(x, x, 4, ref_lengths=torch.tensor([0], device=CUDA)), "ref_lengths"),
])
def test_bad_cuda_input_is_a_one_line_error(call, message):
    x = torch.rand(1, 10, 3, device=CUDA)
    with pytest.raises(ValueError, match=message) as info:
        call(x)
    assert "\n" not in str(info.value)


def test_direct_operator_calls_are_checked():
    """torch.ops.pcseg.* called without the Python wrapper: a one-line RuntimeError, no bad read."""
    x = torch.rand(1, 10, 3, device=CUDA)
    for call in (lambda: torch.ops.pcseg.fps(x, 4, torch.tensor([11], device=CUDA), 0),
                 lambda: torch.ops.pcseg.fps(x, 4, torch.tensor([10]), 0),
                 lambda: torch.ops.pcseg.knn(x, x, 4, torch.tensor([10], device=CUDA), torch.tensor([0], device=CUDA))):
        with pytest.raises(RuntimeError) as info:
            call()
        assert str(info.value).strip().splitlines()[0]
    torch.cuda.synchronize()  # no asynchronous fault was left behind


# --------------------------------------------------------------------------- models

def block_input(batch: int = 2, points: int = 2048, seed: int = 0) -> torch.Tensor:
    """Model input (batch, points, 9): block-centred xyz in a 1 m column, rgb, normalised xyz."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, points, 9, generator=g)
    x[..., :2] -= 0.5
    x[..., 2] *= 3.0
    return x


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_model_forward_backward_matches_cpu(name):
    torch.manual_seed(0)
    model_cpu = build(name, 13, 9, dropout=0.0)
    model_gpu = copy.deepcopy(model_cpu).to(CUDA)
    x = block_input()
    outputs = []
    for model, inp in ((model_cpu, x), (model_gpu, x.to(CUDA))):
        model.train()
        logits, aux = model(inp)
        (logits.square().mean() + aux).backward()
        outputs.append((logits.detach().cpu(), {n: p.grad.cpu() for n, p in model.named_parameters()}))
    (logits_cpu, grads_cpu), (logits_gpu, grads_gpu) = outputs
    assert relative_error(logits_gpu, logits_cpu) < 1e-3
    for n, g in grads_cpu.items():
        assert relative_error(grads_gpu[n], g) < 1e-2, n


@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_amp_training_step(name):
    torch.manual_seed(0)
    model = build(name, 13, 9).to(CUDA).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda")
    x, y = block_input().to(CUDA), torch.randint(0, 13, (2, 2048), device=CUDA)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.float16):
            logits, aux = model(x)
            loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), y) + aux
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        assert torch.isfinite(loss)
    assert logits.dtype == torch.float16
    changed = [not torch.equal(a, p) for a, p in zip(before, model.parameters())]
    assert sum(changed) > len(changed) // 2


# --------------------------------------------------------------------------- pcseg segment

def test_segment_sample_room_on_cuda_gives_the_cpu_labels(tmp_path):
    """The bundled default model on the sample room: every label the CPU gives, except where the
    CPU's two best class probabilities are within 1e-3 (float rounding may decide those)."""
    import plyfile

    from pcseg.cli import main
    from pcseg.segment import segment

    out = tmp_path / "room_cuda.ply"
    assert main(["segment", str(SAMPLE), "-o", str(out), "--device", "cuda"]) == 0
    labels_gpu = np.asarray(plyfile.PlyData.read(str(out))["vertex"]["label"])
    labels_cpu, probs_cpu = segment(str(SAMPLE), device="cpu")
    top2 = np.sort(np.asarray(probs_cpu), axis=1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > 1e-3
    assert len(labels_gpu) == len(labels_cpu)
    np.testing.assert_array_equal(labels_gpu[decided], np.asarray(labels_cpu)[decided])
    assert decided.mean() > 0.99


# --------------------------------------------------------------------------- torch.compile (slowest: last)

@pytest.mark.parametrize("name", ["pointnet", "acnn"])
def test_torch_compile_training_step_matches_eager(name):
    torch.manual_seed(0)
    eager = build(name, 13, 9, dropout=0.0).to(CUDA).train()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model)
    x = block_input().to(CUDA)
    results = []
    for net, params in ((eager, eager), (compiled, compiled_model)):
        logits, aux = net(x)
        (logits.square().mean() + aux).backward()
        results.append((logits.detach(), [p.grad for p in params.parameters()]))
    (logits_e, grads_e), (logits_c, grads_c) = results
    assert relative_error(logits_c, logits_e) < 1e-3
    assert all(relative_error(gc, ge) < 1e-2 for gc, ge in zip(grads_c, grads_e))
