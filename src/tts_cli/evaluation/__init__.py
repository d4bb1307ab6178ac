"""Objective quality measurement shared by `tts evaluate` and training.

- `metrics`: the metric definitions (CER/WER, MCD-DTW, F0 error, durations), numpy only at import;
- `asr` / `dnsmos`: the offline recogniser and the naturalness proxy, heavy parts imported on use;
- `quick`: the cheap evaluation the training loop runs to pick best.pt;
- `held_out`: the end-of-training check on the user's held-out clips (beside their own recordings);
- `scoring` / `report`: one utterance's numbers and the report of `tts evaluate`.

Nothing here imports from `tts_cli.stages`: training depends on this package, not on a stage.
"""
