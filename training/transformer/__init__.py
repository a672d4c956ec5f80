"""The transformer router: prepare (tokenize, label) → fit (torch) → export (ONNX, int8) → evaluate.

``prepare`` and the pipeline need the taxonomy; ``model`` and ``fit`` need only torch, transformers,
numpy and safetensors, so the fit step can run by itself on a GPU machine
(``python -m training.transformer.fit``) and the rest resumes from its work directory.
"""
