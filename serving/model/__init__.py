"""The model runtime: appeal input, bundles, features, the linear and ONNX models, the rule layer, the
path hierarchy and the tree prior, and the predictor that joins them. No torch, no database."""
