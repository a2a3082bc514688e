"""Layer 6, evaluation: running every model on every split, the paper's goals, the Selector,
serving (ONNX, TorchScript), latency, and the statistics over seeds (``seeds_stage``)."""
