"""Data stages: catalog, sampling, folds, audio decoding, shards, the tf.data pipeline, synthetic data."""
