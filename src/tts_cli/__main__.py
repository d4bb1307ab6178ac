"""`python -m tts_cli ...` (also what `torchrun ... -m tts_cli train` runs)."""
from .cli import main

main()
