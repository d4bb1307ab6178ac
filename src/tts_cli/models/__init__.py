"""Neural models: FastPitch (fastpitch.py), its FFT blocks (transformer.py), the aligner (alignment.py).

Kept import-free so `import tts_cli.models.x` pulls in only what x needs.
"""
