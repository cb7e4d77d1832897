#!/usr/bin/env python3
"""PyTorch's training throughput for the model ich trains, to read next to `ich bench train --device gpu`.

Trains timm's efficientnet_b0 (6 classes, dropout 0.125 before the classifier, drop-path 0.2 as ich train's
default) with BCEWithLogitsLoss and Adam (lr 4e-4) on one random batch that is already on the GPU, and prints
images/s of whole steps (forward, loss, backward, Adam) in the same table shape as `ich bench train`:

    bench_pytorch: timm efficientnet_b0 training steps (forward, BCE, backward, Adam), batch 256 x 3 x 256 x 256 ...
    device: <GPU name> (cuda:0), torch <version>, timm <version>; <date>
    path                                   images/s      ms/step  notes
    pytorch, batch in device memory         <n>          <ms>     bf16 autocast, channels_last, eager; loss ...; peak ... GiB

By default it runs as a tuned PyTorch training loop would: bf16 autocast (torch.autocast("cuda",
dtype=torch.bfloat16)), channels_last activations and torch.backends.cudnn.benchmark = True. --fp32 gives the
full-precision comparison for ich's fp32 engine (autocast off, TF32 off in cuDNN and cuBLAS unless --tf32).
--compile wraps the model in torch.compile (its first steps compile: give it enough --warmup).

Only the timed steps count: --warmup steps first (cuDNN autotuning, compilation), then --steps steps between two
torch.cuda.synchronize() calls. The loss is not read back inside the loop (a host sync per step; ich's step
reads each loss only once the next step is queued, so it does not stall the GPU either). Peak memory is torch.cuda.max_memory_allocated over
the whole run (model, optimizer state, the batch and the activations), not what the caching allocator reserved.

Needs only torch (with CUDA) and timm:

    python3 scripts/bench_pytorch.py                        # batch 256, 256 x 256, bf16 autocast
    python3 scripts/bench_pytorch.py --fp32                 # full fp32
    python3 scripts/bench_pytorch.py --compile --warmup 20  # torch.compile
    python3 scripts/bench_pytorch.py --batch 32 --size 96 --device 1

In the distribution built with `scripts/dist --with-tests` it is tools/bench_pytorch.py, and bin/gpu-check runs it
when a python with torch and timm is found ($ICH_PYTHON, else python3).
"""

import argparse
import datetime
import sys
import time


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be positive, got %s" % text)
    return value


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more, got %s" % text)
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description="PyTorch training throughput of timm efficientnet_b0, "
                                            "for comparison with `ich bench train --device gpu`.")
    p.add_argument("--batch", type=positive, default=256, help="images per step (default 256)")
    p.add_argument("--size", type=positive, default=256, help="input size S x S (default 256)")
    p.add_argument("--steps", type=positive, default=50, help="timed steps (default 50)")
    p.add_argument("--warmup", type=non_negative, default=5, help="untimed steps before them (default 5)")
    p.add_argument("--device", type=non_negative, default=0, help="CUDA device index (default 0)")
    p.add_argument("--fp32", action="store_true", help="no autocast: full fp32 (TF32 off unless --tf32)")
    p.add_argument("--tf32", action="store_true", help="with --fp32: allow TF32 in convolutions and matmuls")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--drop-path", type=float, default=0.2, help="stochastic depth rate (default 0.2, as ich train)")
    p.add_argument("--seed", type=int, default=1, help="seed of the weights and the random batch (default 1)")
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    try:
        import torch
        import timm
    except ImportError as e:
        print("bench_pytorch: needs torch and timm: %s" % e, file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("bench_pytorch: no CUDA device: torch.cuda.is_available() is False (torch %s, built for CUDA %s)"
              % (torch.__version__, torch.version.cuda), file=sys.stderr)
        return 1
    if args.device >= torch.cuda.device_count():
        print("bench_pytorch: no CUDA device %d: %d found" % (args.device, torch.cuda.device_count()), file=sys.stderr)
        return 1

    device = torch.device("cuda", args.device)
    torch.cuda.set_device(device)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    if args.fp32:
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32

    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=6, drop_rate=0.125,
                              drop_path_rate=args.drop_path)
    model = model.to(device=device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=4e-4)
    criterion = torch.nn.BCEWithLogitsLoss()
    forward = torch.compile(model) if args.compile else model

    generator = torch.Generator(device=device).manual_seed(args.seed)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last)
    # about one label in four positive; the rate does not change the cost of a step
    y = (torch.rand(args.batch, 6, device=device, generator=generator) < 0.25).float()
    torch.cuda.reset_peak_memory_stats(device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not args.fp32):
            logits = forward(x)
        # the loss in fp32 either way, as autocast would run it
        loss = criterion(logits.float(), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    first = last = None
    for i in range(args.steps):
        last = step()
        if i == 0:
            first = last
    torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device)

    if args.fp32:
        precision = "fp32 (TF32 %s)" % ("allowed" if args.tf32 else "off")
        shape_precision = "fp32"
    else:
        precision = "bf16 autocast"
        shape_precision = "bf16 autocast"
    images_per_second = args.batch * args.steps / seconds
    ms_per_step = 1e3 * seconds / args.steps
    notes = "%s, channels_last, %s; loss %.4f -> %.4f (first -> last timed step); peak %.2f GiB (max_memory_allocated)" % (
        precision, "torch.compile" if args.compile else "eager", first.item(), last.item(), peak / 2 ** 30)
    print("bench_pytorch: timm efficientnet_b0 training steps (forward, BCE, backward, Adam), batch %d x 3 x %d x %d %s, "
          "%d timed steps after %d warm-up" % (args.batch, args.size, args.size, shape_precision, args.steps, args.warmup))
    print("device: %s (cuda:%d), torch %s, timm %s; %s" % (
        torch.cuda.get_device_name(device), args.device, torch.__version__, timm.__version__,
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M")))
    print("%-34s %12s %12s  %s" % ("path", "images/s", "ms/step", "notes"))
    print("%-34s %12s %12s  %s" % ("pytorch, batch in device memory", "{:,.1f}".format(images_per_second),
                                   "{:,.1f}".format(ms_per_step), notes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
