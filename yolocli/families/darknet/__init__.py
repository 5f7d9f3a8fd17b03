"""Darknet models: cfg and weights, the ONNX compiler, head decoding, the letterbox."""
