"""Training machinery shared by the acoustic model and the vocoder: data, optimiser, loop, run folder."""
