"""scripts/gpu_check.sh: the dry run (no GPU, nothing built), the refusal without a GPU, and the
report's pieces (JUnit summary, targets), so the one-shot GPU check cannot rot between GPU runs."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_dry_run_writes_the_report_to_out(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path))
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True and report["ok"] is True
    stages = {s["name"]: s for s in report["stages"]}
    assert list(stages) == ["build", "test_cuda", "bench_ops", "bench_models", "suite"]
    assert stages["build"]["status"] == "passed" and "nothing built" in stages["build"]["note"]
    cuda_tests = report["test_cuda"]
    assert cuda_tests["tests"] > 50 and cuda_tests["skipped"] == cuda_tests["tests"]  # collected, all skipped
    for bench in ("bench_ops", "bench_models"):
        assert stages[bench]["status"] == "passed" and "refused" in stages[bench]["note"]
    assert stages["suite"]["status"] == "skipped"
    assert report["environment"]["python"] and "modules" in report["environment"]
    assert "gpu_check: ok" in (tmp_path / "gpu_check.log").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_the_check_refuses_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/gpu_check.py", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "gpu_check: error: no CUDA device" in proc.stdout
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["ok"] is False and report["stages"] == []


def test_junit_summary_sets_missing_module_failures_apart(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text("""<testsuites><testsuite>
      <testcase classname="tests.test_a" name="test_one[x]"/>
      <testcase classname="tests.test_a" name="test_one[y]"/>
      <testcase classname="tests.test_a" name="test_two"><skipped message="no CUDA"/></testcase>
      <testcase classname="tests.test_b" name="test_three"><failure message="assert 1 == 2">long</failure></testcase>
      <testcase classname="tests.test_c" name="test_four"><error message="ModuleNotFoundError: No module named 'open3d'"/></testcase>
    </testsuite></testsuites>""")
    summary = gpu_check.junit_summary(xml)
    assert (summary["tests"], summary["passed"], summary["skipped"], summary["failed"]) == (5, 2, 1, 2)
    assert summary["passed_by_function"] == {"test_one": 2}
    assert summary["failures"] == ["tests.test_b::test_three: assert 1 == 2"]
    assert summary["missing_module_failures"][0].startswith("tests.test_c::test_four")
    assert gpu_check.junit_summary(tmp_path / "absent.xml") == {"error": "no JUnit report written"}


def test_targets_from_the_benchmark_rows():
    rows = [
        {"case": gpu_check.FPS_BLOCKS_CASE, "impl": "pcseg", "ms": 1.5},
        {"case": gpu_check.FPS_BLOCKS_CASE, "impl": "plain torch FPS loop", "ms": 30.0},
        {"case": gpu_check.FPS_BLOCKS_CASE, "impl": "torch-cluster fps", "ms": float("nan")},
        {"case": gpu_check.KNN_1M_CASE, "impl": "pcseg", "ms": 800.0},
        {"case": gpu_check.KNN_1M_CASE, "impl": "plain torch cdist + topk", "ms": 2000.0},
    ]
    tests = {"passed_by_function": {"test_fps_adversarial": 14, "test_model_forward_backward_matches_cpu": 2},
             "failures": ["tests.test_cuda::test_amp_training_step[acnn]: boom"]}
    targets = gpu_check.evaluate_targets(rows, tests)
    assert targets["cuda_equals_cpu"]["met"] is True                  # the failure is not a kernel test
    assert targets["fps_16x4096_to_1024_ms"] == {"value": 1.5, "target": "<= 2.0", "met": True}
    assert targets["knn_1M_self_k16_ms"]["met"] is False
    speedups = {k: v for k, v in targets.items() if " x " in k}
    assert [v["value"] for v in speedups.values()] == [20.0, 2.5]
    assert [v["met"] for v in speedups.values()] == [True, False]
    tests["failures"].append("tests.test_cuda::test_knn_adversarial[tree-room-float32]: 3 of 9 values differ")
    assert gpu_check.evaluate_targets(rows, tests)["cuda_equals_cpu"]["met"] is False
    assert gpu_check.evaluate_targets([], {})["cuda_equals_cpu"]["met"] is False  # nothing ran: not shown
