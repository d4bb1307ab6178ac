"""Training shared by the acoustic model and the vocoder: the one skeleton of a run (`skeleton`),
the jobs that build each model family's model, task and data (`fastpitch_job`, `hifigan_job`),
the Trainer (`loop`) and what it stands on (settings, runtime, monitor, run folder, data, optim,
ema, init_from, gta)."""
