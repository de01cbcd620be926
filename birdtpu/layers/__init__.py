"""Keras 3 layers of birdtpu: the audio front, augmentations and the stacker."""
