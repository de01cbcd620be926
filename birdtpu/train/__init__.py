"""Training: the fit loop behind `birdtpu fit`."""
