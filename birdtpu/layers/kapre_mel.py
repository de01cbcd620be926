"""`KapreMelSpectrogram`: the mel front computed with kapre (TensorFlow backend, the [kapre] extra).

`frontend()` uses it when `frontend.impl` is "kapre"; it gives the numbers of `MelSpectrogram`
(same configuration) through kapre's STFT, magnitude and mel filterbank.
"""

from __future__ import annotations

from kapre import STFT, ApplyFilterbank, Magnitude
from keras import ops

from birdtpu.layers.mel import MelSpectrogram
from birdtpu.saving import register


@register
class KapreMelSpectrogram(MelSpectrogram):
    """`MelSpectrogram` through kapre: STFT of win_length-long frames starting
    (n_fft - win_length) // 2 into each centred frame (the same |X|), magnitude, kapre's mel
    filterbank (librosa's, Slaney-normalised)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stft = STFT(
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            window_name="hann_window",
            dtype="float32",
        )
        self.magnitude = Magnitude(dtype="float32")
        self.mel = ApplyFilterbank(
            type="mel",
            dtype="float32",
            filterbank_kwargs={
                "sample_rate": self.sample_rate,
                "n_freq": self.n_fft // 2 + 1,
                "n_mels": self.n_mels,
                "f_min": self.fmin,
                "f_max": self.fmax,
                "htk": self.htk,
                "norm": "slaney",
            },
        )

    def build(self, input_shape):
        # the kapre sublayers hold no weights: nothing to create
        for layer in (self.stft, self.magnitude, self.mel):
            layer.built = True
        self.built = True

    def call(self, waveform):
        pad, start = self.n_fft // 2, (self.n_fft - self.win_length) // 2
        x = ops.pad(ops.cast(waveform, "float32"), [[0, 0], [pad, pad]])
        x = x[:, start : start + (self.frames - 1) * self.hop_length + self.win_length, None]
        mag = self.magnitude(self.stft(x))  # (batch, frames, freq, 1)
        spec = ops.square(mag) if self.power == 2.0 else ops.power(mag, self.power)
        return ops.transpose(self.mel(spec), (0, 2, 1, 3))
