"""Checkpoint files: our format (`format`: save, validate, migrate), NVIDIA FastPitch import
(`nvidia_fastpitch`), HiFi-GAN generators of three origins (`hifigan`), the aligner's file
(`aligner`), and the one load dispatch for acoustic models (`load`: `load_checkpoint`,
`build_fastpitch`). Fine-tuning's remapping of weights (symbols, speakers) lives in
`tts_cli.training.init_from`."""
