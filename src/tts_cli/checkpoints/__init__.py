"""Checkpoint files: our format (`format`: save, validate, migrate), NVIDIA FastPitch import
(`nvidia_fastpitch`), HiFi-GAN generators of three origins (`hifigan`), and the one load dispatch
(`load`: `load_checkpoint`, `build_fastpitch`). The aligner's files are our format too
(`kind: aligner` is not a separate reader: `tts_cli.stages.align` keeps its weights in `model`).
Fine-tuning's remapping of weights (symbols, speakers) lives in `tts_cli.training.init_from`."""
