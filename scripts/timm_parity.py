#!/usr/bin/env python3
"""Checks that ich's EfficientNet-B0 computes what timm's efficientnet_b0 computes.

`ich model fixture --out DIR` writes, with ich's own engine on the CPU:

    DIR/model.safetensors     a state dict under timm's names and shapes (6 classes, num_batches_tracked included)
    DIR/input.safetensors     "input" [N, 3, S, S] float32
    DIR/expected.safetensors  "logits" [N, 6] and "features" [N, 1280] (the pooled head output the classifier reads),
                              computed in eval mode

This script loads the state dict into timm.create_model("efficientnet_b0", pretrained=False, num_classes=6),
reports and refuses any missing or unexpected key (only num_batches_tracked counters may be missing), runs the
input in eval mode in fp32 with TF32 off in cuDNN and cuBLAS, and compares timm's logits, and its pooled features
(forward_features, then forward_head(pre_logits=True)), with ich's:

    python3 scripts/timm_parity.py DIR                       # cuda when there is a GPU, else cpu
    python3 scripts/timm_parity.py DIR --device cpu --atol 1e-4 --rtol 1e-3

An element matches when |timm - ich| <= atol + rtol * |ich| (torch.allclose's rule). The last line is the verdict,

    timm parity: PASS max|diff| 3.1e-06 max rel 4.2e-06 (logits [2,6]); features max|diff| ... ; ...

or the same with FAIL. Exit status: 0 PASS, 1 FAIL, 2 when it cannot run (a file missing or unreadable, torch or
timm not installed, CUDA asked for but absent).

Needs only torch and timm: the files are read with the safetensors package when it is installed, else with the
small reader below. In the distribution built by scripts/dist it is tools/timm_parity.py.
"""

import argparse
import json
import os
import struct
import sys

FILES = ("model.safetensors", "input.safetensors", "expected.safetensors")
COUNTER = ".num_batches_tracked"
# safetensors dtype names -> torch attribute names
DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
          "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class CannotRun(Exception):
    """Something outside the comparison is wrong: exit status 2."""


def parse_args(argv):
    p = argparse.ArgumentParser(description="Compare ich's EfficientNet-B0 with timm's efficientnet_b0 on a fixture "
                                            "written by `ich model fixture --out DIR`.")
    p.add_argument("dir", help="the fixture folder")
    p.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda when available, else cpu)")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance (default 1e-4)")
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance (default 1e-3)")
    return p.parse_args(argv)


def read_header(blob, path):
    """The safetensors layout: u64 little-endian header length n, n bytes of JSON, then the data section.
    Returns (metadata, [(name, dtype, shape, begin, end)]) with begin and end as offsets into blob."""
    if len(blob) < 8:
        raise CannotRun("%s: %d bytes, too short for a safetensors file" % (path, len(blob)))
    (n,) = struct.unpack_from("<Q", blob, 0)
    if 8 + n > len(blob):
        raise CannotRun("%s: declares a %d-byte header but the file has %d bytes" % (path, n, len(blob)))
    try:
        header = json.loads(bytes(blob[8:8 + n]).decode("utf-8"))
    except ValueError as e:
        raise CannotRun("%s: the header is not JSON: %s" % (path, e))
    data, size = 8 + n, len(blob) - 8 - n
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, (begin, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
        if dtype not in ITEM_BYTES:
            raise CannotRun("%s: tensor %s has dtype %s, which this reader does not know" % (path, name, dtype))
        count = 1
        for d in shape:
            count *= d
        if not 0 <= begin <= end <= size or end - begin != count * ITEM_BYTES[dtype]:
            raise CannotRun("%s: tensor %s %s%s has data_offsets [%d, %d] that do not fit it or the file"
                            % (path, name, dtype, shape, begin, end))
        entries.append((name, dtype, shape, data + begin, data + end))
    return header.get("__metadata__", {}), entries


def read_metadata(path):
    """The header's __metadata__ (who wrote the fixture), reading nothing else."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CannotRun("%s: %d bytes, too short for a safetensors file" % (path, len(head)))
        (n,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except ValueError as e:
            raise CannotRun("%s: the header is not JSON: %s" % (path, e))
    return header.get("__metadata__", {}) if isinstance(header, dict) else {}


def read_tensors(path):
    """{name: tensor} on the CPU, with the safetensors package when installed."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        return load_file(path)
    import torch
    with open(path, "rb") as f:
        blob = bytearray(f.read())  # writable, so torch.frombuffer does not warn
    tensors = {}
    for name, dtype, shape, begin, end in read_header(blob, path)[1]:
        torch_dtype = getattr(torch, DTYPES[dtype])
        if end == begin:
            tensors[name] = torch.empty(shape, dtype=torch_dtype)
        else:
            # The data is little-endian, as every host timm runs on; clone() lets blob go.
            flat = torch.frombuffer(blob, dtype=torch_dtype, count=(end - begin) // ITEM_BYTES[dtype], offset=begin)
            tensors[name] = flat.reshape(shape).clone()
    return tensors


def compare(name, got, want, atol, rtol):
    """(ok, text) for one output: max absolute error, max relative error where |want| >= atol."""
    got, want = got.detach().cpu().double(), want.double()
    shape = "[%s]" % ",".join(str(d) for d in want.shape)
    if tuple(got.shape) != tuple(want.shape):
        return False, "%s: timm [%s], ich %s" % (name, ",".join(str(d) for d in got.shape), shape)
    if not bool(got.isfinite().all()):
        return False, "%s %s: timm's output is not finite" % (name, shape)
    diff = (got - want).abs()
    significant = want.abs() >= atol
    rel = (diff[significant] / want.abs()[significant]).max().item() if bool(significant.any()) else 0.0
    ok = bool((diff <= atol + rtol * want.abs()).all())
    return ok, "max|diff| %.1e max rel %.1e (%s %s)" % (diff.max().item(), rel, name, shape)


def run(args):
    paths = [os.path.join(args.dir, f) for f in FILES]
    for p in paths:
        if not os.path.isfile(p):
            raise CannotRun("no %s: write the fixture with `ich model fixture --out %s`" % (p, args.dir))
    try:
        import torch
        import timm
    except ImportError as e:
        raise CannotRun("%s: this check needs torch and timm" % e)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CannotRun("--device %s, but torch sees no CUDA device (torch %s)" % (device, torch.__version__))
    if not (device == "cpu" or device.startswith("cuda")):
        raise CannotRun("--device takes cuda, cuda:N or cpu, not %s" % device)
    # ich computes in full fp32: no TF32 shortcuts in the convolutions and matrix products.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")

    about = read_metadata(paths[2])
    state = read_tensors(paths[0])
    inputs = read_tensors(paths[1])
    expected = read_tensors(paths[2])
    for what, tensors, names in (("input", inputs, ["input"]), ("expected", expected, ["logits", "features"])):
        for n in names:
            if n not in tensors:
                raise CannotRun("%s has no tensor \"%s\"" % (os.path.join(args.dir, what + ".safetensors"), n))
    if "classifier.weight" not in state:
        raise CannotRun("%s has no classifier.weight: not an EfficientNet-B0 state dict" % paths[0])
    classes = state["classifier.weight"].shape[0]
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    print("timm parity: torch %s, timm %s, %s (%s); fixture from ich %s on %s, input %s"
          % (torch.__version__, timm.__version__, device, name, about.get("ich.version", "?"), about.get("ich.backend", "?"),
             list(inputs["input"].shape)))

    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=classes)
    try:
        report = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a shape mismatch raises even when not strict
        return False, "the state dict does not fit timm's efficientnet_b0: %s" % str(e).replace("\n", " ")
    missing = [k for k in report.missing_keys if not k.endswith(COUNTER)]
    counters = len(report.missing_keys) - len(missing)
    print("timm parity: loaded %d tensors; missing %d (%d num_batches_tracked), unexpected %d"
          % (len(state), len(report.missing_keys), counters, len(report.unexpected_keys)))
    for k in missing:
        print("  missing: %s" % k)
    for k in report.unexpected_keys:
        print("  unexpected: %s" % k)
    if missing or report.unexpected_keys:
        return False, "the state dict's names differ from timm's efficientnet_b0 (%d missing, %d unexpected)" \
                      % (len(missing), len(report.unexpected_keys))

    model = model.float().to(device).eval()
    x = inputs["input"].float().to(device)
    with torch.no_grad():
        logits = model(x)
        feature_map = model.forward_features(x)
        if hasattr(model, "forward_head"):
            features = model.forward_head(feature_map, pre_logits=True)
        else:
            features = model.global_pool(feature_map).flatten(1)
    ok_logits, logits_text = compare("logits", logits, expected["logits"], args.atol, args.rtol)
    ok_features, features_text = compare("features", features, expected["features"], args.atol, args.rtol)
    if not ok_logits:
        print("timm parity: logits, timm then ich:")
        print(logits.detach().cpu())
        print(expected["logits"])
    return ok_logits and ok_features, "%s; features %s; atol %.0e rtol %.0e; timm %s, torch %s on %s" % (
        logits_text, features_text, args.atol, args.rtol, timm.__version__, torch.__version__, name)


def main(argv=None):
    args = parse_args(argv)
    try:
        ok, text = run(args)
    except CannotRun as e:
        print("timm parity: cannot run: %s" % e, file=sys.stderr)
        return 2
    print("timm parity: %s %s" % ("PASS" if ok else "FAIL", text))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
