"""The decode benchmark's batches (scripts/bench_speed_cuda.py): a server's
batch of sequences of their own lengths, left-padded and masked."""

import argparse
import sys

import mlx.core as mx
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import bench_speed_cuda as bench  # noqa: E402


def test_a_ragged_batch_masks_each_sequences_padding():
    assert bench.sequences("1", 4096) == (1, None)
    assert bench.sequences("8", 4096) == (8, None)
    n, lengths = bench.sequences("8r", 4096)
    assert n == 8 and lengths == [512 * (i + 1) for i in range(8)]
    keep = bench.mlx_mask(lengths, 4096)
    assert keep.shape == (8, 1, 1, 4096) and keep.dtype == mx.bool_
    # Left padding: sequence i sees its last lengths[i] keys.
    assert keep.sum(axis=-1).reshape(-1).tolist() == lengths
    assert not keep[0, 0, 0, : 4096 - 512].any().item()
    assert keep[0, 0, 0, 4096 - 512 :].all().item()
    assert bench.mlx_mask(None, 4096) is None


def test_batches_are_parsed_as_counts_or_ragged_counts():
    assert bench.parse_case("4096:8r") == (4096, "8r")
    for bad in ("0", "8x", "r", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.batch_spec(bad)


def test_the_gpu_clocks_note_reads_nvidia_smi_csv():
    csv = "1755 MHz, 1980 MHz, 310.52 W, 700.00 W, 0x0000000000000000\n"
    note = bench.clock_note(csv)
    assert note == (
        "GPU after the runs: SM clock 1755 MHz (at most 1980 MHz), power "
        "310.52 W of 700.00 W, clock throttle reasons 0x0000000000000000."
    )
    with pytest.raises(ValueError):
        bench.clock_note("1755 MHz, 1980 MHz\n")


def test_chained_calls_take_the_output_before_as_their_query():
    seen = []

    def step(q):
        out = q + 1
        seen.append((q, out))
        return out

    q = mx.zeros((2,))
    assert bench.chained_seconds_per_call(step, q, rounds=1, calls=3) > 0
    # A batch to warm up, then the timed one.
    assert len(seen) == 6
    for batch in (seen[:3], seen[3:]):
        assert batch[0][0] is q
        for (_, out), (query, _) in zip(batch, batch[1:]):
            assert query is out


def test_pipelined_calls_go_to_async_eval_as_they_are_made(monkeypatch):
    handed = []
    monkeypatch.setattr(mx, "async_eval", lambda *a: handed.append(a[0]))
    made = []

    def call():
        made.append(mx.ones((2,)) + len(made))
        # Each call before it was handed over first.
        assert len(handed) == len(made) - 1
        return made[-1]

    assert bench.pipelined_seconds_per_call(call, rounds=1, calls=3) > 0
    assert handed == made and len(made) == 6


def test_every_timing_has_a_note_and_reaches_the_children():
    assert set(bench.TIMING_NOTES) == {"together", "chained", "pipelined"}
    text = (ROOT / "scripts" / "bench_speed_cuda.py").read_text()
    assert '"--timing", args.timing' in text
