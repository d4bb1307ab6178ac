"""Speaking with a trained voice: the synthesizer (text -> mel -> wav) and what it needs.

- `synthesizer`: `Synthesizer(model, vocoder).synthesize(text) -> Result`;
- `controls`: speed, pitch and energy controls, the mel contrast for an unmatched vocoder;
- `resolve`: which model (-m, --run, --voice, the default voice) and which vocoder speak;
- `vocoders`: Griffin-Lim and HiFi-GAN behind one callable; `cpu`: threads, bf16, allocator;
- `voices` / `voice_export`: bundled voices (find, list, default) and making one from a run;
- `onnx_engine`: the same voice exported to ONNX, run by onnxruntime.
"""
