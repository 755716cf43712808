"""The data: manifests and their cache, folds and their checks, audio decoding, batching, the
feature cache of frozen upstreams, and the feeds that hand batches to the training loop."""
