"""Video side: decoding, clip sampling, feature extractors and the features they produce."""
