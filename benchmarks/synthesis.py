"""Real-time factor of `tts synthesize` on CPU: FastPitch tiny/base x HiFi-GAN V1/V3/Griffin-Lim, 1 and 2 threads.

RTF = compute time / audio duration (lower is faster), end to end through `Synthesizer.synthesize`:
text front end (Spanish normaliser + espeak-ng), FastPitch, vocoder, joining. Untrained weights
(speed does not depend on them) with durations fixed at FRAMES_PER_SYMBOL frames per symbol, so
every configuration renders the same length of audio (~9 s, the size of the reference numbers).

For HiFi-GAN three inference paths are timed in the same run, on the same text: plain fp32
eager (baseline), channels-last conv2d fp32, channels-last bf16; "default" marks the one
`--precision auto` picks on this CPU. "none" times the front end + FastPitch alone (a vocoder
that returns silence), i.e. what is not the vocoder.
The machine is shared: the CPU time other processes used during the run is printed; numbers taken
while it is high are slower than the machine can do.

    .venv/bin/python benchmarks/synthesis.py [--reps 5] [--threads 1 2] [--quick]
    .venv/bin/python benchmarks/synthesis.py --voice es_base     # a bundled voice, as shipped
    .venv/bin/python benchmarks/synthesis.py --compare [--n 20]  # vocoders side by side, new lengths

--compare: the bundled voice es_base through each vocoder on N held-out sentences
(data/teacher_test_es.txt), every one of a length not seen before, as `tts synthesize -i` meets
them: Griffin-Lim, the universal HiFi-GAN V1 as shipped (fixed-size windows), the same V1
vocoding each mel at its own length (the path before the windows: the baseline, same run), the
universal V1 in fp32, and the Kokoro teacher when the [teacher] extra is installed (skipped
otherwise). Each configuration runs in a fresh process (oneDNN's kernel cache is per process), at
1 and 2 threads: load s (model + vocoder), first-call latency (the first sentence, kernels built
then), RTF over all N sentences (compute / audio; the first call included), RTF of a second pass
over the same lengths (kernels cached), peak RSS of the process, and the CPU time other processes
used meanwhile (on 2 shared cores a busy neighbour slows 2-thread runs many times over).

The last line is the FastPitch base + HiFi-GAN V3 figure at the highest thread count, or with
--voice the bundled voice's own RTF (its weights, its predicted durations, its vocoder; baseline in
the same run: untrained `tiny` + Griffin-Lim with fixed durations on the same text).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

TEXT = ("El veloz murciélago hindú comía feliz cardillo y kiwi, mientras la cigüeña tocaba el saxofón "
        "detrás del palenque de paja, bajo la lluvia de la tarde.")
FRAMES_PER_SYMBOL = 5.3  # ~16 symbols/s speech rate: 150 symbols -> ~800 frames -> ~9.3 s


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def cpu_busy_jiffies() -> int:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return sum(parts) - parts[3] - parts[4]  # all but idle and iowait


def own_cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def fastpitch_ckpt(preset: str) -> dict:
    import torch

    from tts_cli.models.fastpitch import PRESETS, FastPitch
    from dataclasses import replace
    from tts_cli.text.symbols import base_inventory

    symbols = base_inventory("es", "text")
    torch.manual_seed(0)
    cfg = replace(PRESETS[preset], n_symbols=len(symbols), aligner=False)
    model = FastPitch(cfg)
    return {"kind": "fastpitch", "config": cfg.to_dict(), "model": model.state_dict(), "symbols": symbols,
            "step": 0, "text": {"language": "es", "text_type": "text", "normalize": True, "keep_stress": True},
            "audio": {}, "pitch_stats": {"corpus": {"mean": 200.0, "std": 40.0}}, "speakers": {}}


def silent_vocoder():
    """Stands in for a vocoder: isolates the front end + FastPitch share."""
    from tts_cli.config import DEFAULT_AUDIO
    from tts_cli.inference.vocoders import Vocoder

    class SilentVocoder(Vocoder):
        name = "none"

        def __call__(self, mel):
            import torch

            return torch.zeros(mel.shape[0], mel.shape[-1] * 256)

        def describe(self) -> str:
            return "no vocoder"

    return SilentVocoder(dict(DEFAULT_AUDIO))


VARIANTS = {"fp32 eager": ("fp32", False), "cl fp32": ("fp32", True), "cl bf16": ("bf16", True)}


def make_vocoder(name: str, variant: str):
    from tts_cli.models.hifigan import PRESETS, Generator
    from tts_cli.config import DEFAULT_AUDIO
    from tts_cli.inference.vocoders import GriffinLimVocoder, HiFiGANVocoder

    if name == "none":
        return silent_vocoder()
    if name == "griffin-lim":
        return GriffinLimVocoder(dict(DEFAULT_AUDIO))
    import torch

    torch.manual_seed(0)
    precision, channels_last = VARIANTS[variant]
    return HiFiGANVocoder(Generator(PRESETS[name]), dict(DEFAULT_AUDIO), precision=precision,
                          channels_last=channels_last)


def reference_vocoder(name: str):
    """The plain fp32 reference: weight-norm-free Generator.forward, conv1d, the whole mel at once."""
    import torch

    from tts_cli.models.hifigan import PRESETS, Generator
    from tts_cli.config import DEFAULT_AUDIO
    from tts_cli.inference.vocoders import Vocoder

    torch.manual_seed(0)  # the same weights as make_vocoder
    gen = Generator(PRESETS[name]).remove_weight_norm().eval()

    class Reference(Vocoder):
        def __call__(self, mel):
            with torch.no_grad():
                return gen(torch.as_tensor(mel).float()).squeeze(1)

    return Reference(dict(DEFAULT_AUDIO))


def quality(ckpt: dict, name: str) -> str:
    """Default inference path vs the fp32 reference on the benchmark text: max |diff|, SNR."""
    import numpy as np

    from tts_cli.inference.synthesizer import Synthesizer

    fast = Synthesizer(ckpt, vocoder=make_vocoder(name, "cl fp32"), device="cpu")
    ref = Synthesizer(ckpt, vocoder=reference_vocoder(name), device="cpu")
    a = fast.synthesize(TEXT, frames_per_symbol=FRAMES_PER_SYMBOL).wav.astype(np.float64)
    b = ref.synthesize(TEXT, frames_per_symbol=FRAMES_PER_SYMBOL).wav.astype(np.float64)
    snr = 10 * np.log10(np.sum(b ** 2) / max(np.sum((a - b) ** 2), 1e-30))
    return (f"quality {name.upper()} (default fp32 path vs plain fp32 forward, {len(b)} samples): "
            f"max |diff| {np.abs(a - b).max():.2e} (peak {np.abs(b).max():.2e}), SNR {snr:.1f} dB")


def foreign_cores(busy0: int, own0: float, wall: float) -> float:
    """CPU cores other processes used since (busy0, own0), over `wall` seconds."""
    hz = os.sysconf("SC_CLK_TCK")
    return max(0.0, (cpu_busy_jiffies() - busy0) / hz - (own_cpu_s() - own0)) / max(wall, 1e-3)


def time_rtf(synth, reps: int, min_time: float, max_foreign: float = 0.15, patience_s: float = 120.0,
             frames_per_symbol: float | None = FRAMES_PER_SYMBOL, speaker: str | None = None):
    """(median RTF, audio seconds, discarded reps) after two warm-ups.

    A rep during which other processes used more than `max_foreign` cores is discarded and redone
    (on 2 shared cores a neighbour slows a 2-thread run 2-20x); after `patience_s` of retries the
    noisy reps are kept and counted."""
    kw = {"frames_per_symbol": frames_per_symbol} if frames_per_symbol else {}
    if speaker is not None:
        kw["speaker"] = speaker
    for _ in range(2):
        r = synth.synthesize(TEXT, **kw)
    times, discarded = [], 0
    t_all = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - t_all < min_time and len(times) < 50):
        busy0, own0, t0 = cpu_busy_jiffies(), own_cpu_s(), time.perf_counter()
        r = synth.synthesize(TEXT, **kw)
        dt = time.perf_counter() - t0
        # (below 0.2 s the 10 ms jiffy resolution cannot tell; such reps are short enough to trust)
        if dt > 0.2 and foreign_cores(busy0, own0, dt) > max_foreign and time.perf_counter() - t_all < patience_s:
            discarded += 1
            time.sleep(1.0)
            continue
        times.append(dt)
    return statistics.median(times) / r.seconds, r.seconds, discarded


def bench_voice(args, target: float = 0.05) -> None:
    """RTF of a bundled voice as `tts synthesize --voice` runs it, per speaker and thread count."""
    import torch

    from tts_cli.inference.synthesizer import Synthesizer
    from tts_cli.inference.voices import get_voice

    voice = get_voice(args.voice)
    vocoder = str(voice.vocoder_path) if voice.vocoder_path else "griffin-lim"
    synth = Synthesizer(str(voice.acoustic_path), vocoder=vocoder, device="cpu")
    base = Synthesizer(fastpitch_ckpt("tiny"), vocoder=make_vocoder("griffin-lim", "-"), device="cpu")
    print(f"torch {torch.__version__}, {cpu_model()}, {os.cpu_count()} CPUs; voice {voice.name} "
          f"({voice.path}), vocoder {synth.vocoder.describe()}; text {len(TEXT)} chars")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        rtf0, secs0, _ = time_rtf(base, args.reps, args.min_time)
        print(f"{threads}T  baseline untrained tiny + griffin-lim, fixed durations: RTF {rtf0:.4f} ({secs0:.2f} s)")
        for spk in voice.speakers or [None]:
            rtf, secs, discarded = time_rtf(synth, args.reps, args.min_time, frames_per_symbol=None, speaker=spk)
            print(f"{threads}T  {voice.name} speaker {spk}: RTF {rtf:.4f} ({secs:.2f} s audio"
                  f"{f'; {discarded} noisy reps redone' if discarded else ''})", flush=True)
            rows.append((threads, rtf))
    top = max(args.threads)
    result = max(r for t, r in rows if t == top)  # the slower speaker
    print(f"bundled voice {voice.name}, {top} threads: RTF {result:.4f} (target <= {target}: "
          f"{'met' if result <= target else 'NOT met'})")


COMPARE = {  # name -> (vocoder spec, precision, HiFi-GAN window: None = the default)
    "griffin-lim": ("griffin-lim", "auto", None),
    "universal V1": ("universal", "auto", None),
    "universal V1, own lengths": ("universal", "auto", 0),
    "universal V1, fp32": ("universal", "fp32", None),
    "kokoro teacher": (None, None, None),
}


def held_out_sentences(n: int) -> list[str]:
    path = Path(__file__).resolve().parents[1] / "data" / "teacher_test_es.txt"
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")][:n]


def compare_child(name: str, threads: int, n: int) -> dict:
    """One configuration in this (fresh) process: the figures of --compare as a dict."""
    import resource

    import torch

    torch.set_num_threads(threads)
    texts = held_out_sentences(n)
    busy0, own0, t0 = cpu_busy_jiffies(), own_cpu_s(), time.perf_counter()
    if name == "kokoro teacher":
        from tts_cli.teacher import load_teacher

        teacher = load_teacher("kokoro", voice="ef_dora", threads=threads)

        def speak(text):
            out = teacher.synthesize(text)
            return len(out.audio) / out.sample_rate
        describe = f"Kokoro-82M int8 ONNX, onnxruntime {threads} thread(s)"
    else:
        from tts_cli.inference.synthesizer import Synthesizer
        from tts_cli.inference.vocoders import load_vocoder
        from tts_cli.inference.voices import get_voice

        spec, precision, window = COMPARE[name]
        voice = get_voice("es_base")
        synth = Synthesizer(str(voice.acoustic_path), vocoder="griffin-lim", device="cpu")
        synth.vocoder = load_vocoder(spec, synth.audio, precision=precision, window=window)

        def speak(text):
            return synth.synthesize(text).seconds
        describe = synth.vocoder.describe()
    load_s = time.perf_counter() - t0
    times, audio = [], []
    for text in texts:
        t1 = time.perf_counter()
        audio.append(speak(text))
        times.append(time.perf_counter() - t1)
    t2 = time.perf_counter()
    for text in texts:
        speak(text)
    again = time.perf_counter() - t2
    wall = time.perf_counter() - t0
    return {"name": name, "threads": threads, "describe": describe, "load_s": load_s, "first_s": times[0],
            "first_audio_s": audio[0], "rtf": sum(times) / sum(audio), "rtf_again": again / sum(audio),
            "audio_s": sum(audio), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "foreign_cores": foreign_cores(busy0, own0, wall)}


def teacher_available() -> bool:
    try:
        from tts_cli.teacher.kokoro import unavailable_reason

        return unavailable_reason() is None
    except Exception:  # noqa: BLE001 - any import problem means: no teacher here
        return False


def bench_compare(args) -> None:
    import json
    import subprocess

    import torch

    names = [k for k in COMPARE if k != "kokoro teacher" or teacher_available()]
    print(f"torch {torch.__version__}, {cpu_model()}, {os.cpu_count()} CPUs; voice es_base; {args.n} held-out "
          f"sentences of new lengths (data/teacher_test_es.txt); each row a fresh process"
          + ("" if "kokoro teacher" in names else "; Kokoro teacher skipped: the [teacher] extra is not installed"))
    print("RTF = compute time / audio duration, first call included; 'again' = a second pass (kernels cached)")
    head = f"{'vocoder':<27} {'thr':>3} {'load s':>7} {'first s':>8} {'RTF':>6} {'again':>6} {'peak MB':>8} {'others':>7}"
    print(head)
    rows = []
    for threads in args.threads:
        for name in names:
            out = subprocess.run([sys.executable, __file__, "--compare-child", name, "--threads", str(threads),
                                  "--n", str(args.n)], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{name:<27} {threads:>3} failed: {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(r)
            print(f"{name:<27} {threads:>3} {r['load_s']:>7.2f} {r['first_s']:>8.2f} {r['rtf']:>6.3f} "
                  f"{r['rtf_again']:>6.3f} {r['peak_mb']:>8.0f} {r['foreign_cores']:>6.2f}c   {r['describe']}",
                  flush=True)
    base = {r["threads"]: r["rtf"] for r in rows if r["name"] == "universal V1, own lengths"}
    for r in rows:
        if r["name"] == "universal V1" and r["threads"] in base:
            print(f"universal V1 at {r['threads']} thread(s), new lengths: RTF {r['rtf']:.3f} vs {base[r['threads']]:.3f} "
                  f"vocoding each mel at its own length ({base[r['threads']] / r['rtf']:.2f}x)")
    print("'others' = CPU cores other processes used meanwhile: above ~0.1 the timings are pessimistic")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=2.0, help="seconds of timing per configuration (at least)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="2 reps, 2 threads only, base model only")
    ap.add_argument("--voice", help="time this bundled voice (tts voices) instead of the untrained grid")
    ap.add_argument("--compare", action="store_true", help="vocoders side by side on held-out sentences (see above)")
    ap.add_argument("--n", type=int, default=20, help="--compare: held-out sentences")
    ap.add_argument("--compare-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.compare_child:
        import json

        print(json.dumps(compare_child(args.compare_child, args.threads[0], args.n)))
        return None
    if args.compare:
        return bench_compare(args)
    if args.voice:
        return bench_voice(args)
    import torch

    from tts_cli.inference.synthesizer import Synthesizer
    from tts_cli.inference.cpu import bf16_convs_faster, cpu_has_native_bf16

    if args.quick:
        args.reps, args.min_time, args.threads = 2, 0.0, [max(args.threads)]
    models = ["base"] if args.quick else ["tiny", "base"]
    vocoders = ["none", "v3", "v1", "griffin-lim"]
    default_variant = "cl bf16" if bf16_convs_faster() else "cl fp32"
    print(f"torch {torch.__version__}, {cpu_model()}, {os.cpu_count()} CPUs, avx512_bf16/amx: "
          f"{cpu_has_native_bf16()}, bf16 convs faster: {default_variant == 'cl bf16'}; "
          f"text {len(TEXT)} chars, {FRAMES_PER_SYMBOL} frames/symbol")
    print("RTF = compute time / audio duration (median); front end + FastPitch + vocoder")
    ckpts = {m: fastpitch_ckpt(m) for m in models}
    rows = []
    busy0, own0, wall0 = cpu_busy_jiffies(), own_cpu_s(), time.perf_counter()
    for threads in args.threads:
        torch.set_num_threads(threads)
        for m in models:
            for v in vocoders:
                variants = list(VARIANTS) if v in ("v1", "v3") else ["-"]
                for variant in variants:
                    synth = Synthesizer(ckpts[m], vocoder=make_vocoder(v, variant), device="cpu")
                    rtf, secs, discarded = time_rtf(synth, args.reps, args.min_time)
                    label = variant + (" (default)" if variant in (default_variant, "-") else "")
                    rows.append((threads, m, v, "default" if variant in (default_variant, "-") else variant, rtf, secs))
                    print(f"{threads}T  fastpitch {m:<5} + {v:<11} [{label:<20}] RTF {rtf:.4f}  "
                          f"({secs:.2f} s audio; {synth.vocoder.describe()}"
                          f"{f'; {discarded} noisy reps redone' if discarded else ''})", flush=True)
    wall = time.perf_counter() - wall0
    hz = os.sysconf("SC_CLK_TCK")
    foreign = max(0.0, (cpu_busy_jiffies() - busy0) / hz - (own_cpu_s() - own0)) / wall
    for v in ("v3", "v1"):
        print(quality(ckpts["base"], v))
    print(f"other processes used {foreign:.2f} CPU cores on average during the run "
          f"({'quiet' if foreign < 0.1 else 'NOISY: timings are pessimistic'})")
    top = max(args.threads)
    for m, v, target in (("base", "v1", 0.15), ("base", "v3", 0.04)):
        got = [r[4] for r in rows if r[:4] == (top, m, v, "default")]
        if got:
            print(f"target {m}+{v.upper()} <= {target} at {top} threads: {got[0]:.4f} "
                  f"({'met' if got[0] <= target else 'NOT met'})")
    final = [r[4] for r in rows if r[:4] == (top, "base", "v3", "default")][0]
    print(f"fastpitch base + hifigan V3, {top} threads: RTF {final:.4f}")


if __name__ == "__main__":
    main()
