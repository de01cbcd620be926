"""birdtpu: bird-call classifiers with Keras 3 and TensorFlow on TPUs, GPUs and CPUs."""

__version__ = "0.1.0"
