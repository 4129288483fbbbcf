"""benchmarks/gpu_check.py, the prepared GPU measurement, stays runnable: its transformers half on the CPU
with tiny shapes (the vLLM half needs a GPU worker)."""


def test_the_gpu_check_runs_its_transformers_half_on_tiny_shapes(load_benchmark, tmp_path):
    import json

    check = load_benchmark("gpu_check")
    out = tmp_path / "figures.json"
    figures = check.main(["--shape", "tiny", "--no-vllm", "--problems", "3", "--step-tokens", "16",
                          "--json", str(out)])
    assert json.loads(out.read_text()) == figures and figures["shape"] == "tiny"
    rates = figures["transformers"]
    assert rates["mcts_alpha_tokens_per_s"] > 0 and rates["beam_tokens_per_s"] > 0
    assert figures["prm"]["states_per_s"] > 0 and "vllm" not in figures
