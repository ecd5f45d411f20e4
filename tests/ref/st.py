"""Minimal safetensors writer for the fixture scripts.

Written here rather than imported so the scripts need nothing beyond Debian's
python3-torch; the format is 8-byte little-endian header length, JSON header,
data section.
"""
import json
import struct

import torch

_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
}


def tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def save(path, tensors, metadata=None):
    """tensors: dict name -> torch.Tensor (kept in insertion order)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, off = [], 0
    for name, t in tensors.items():
        b = tensor_bytes(t)
        header[name] = {"dtype": _DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode("utf-8")  # ensure_ascii: non-ASCII as \u escapes
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    """Returns (tensors as float64 torch tensors, metadata)."""
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        assert e["dtype"] == "F32", e["dtype"]
        arr = np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"])
        out[name] = torch.from_numpy(arr.astype("float64"))
    return out, meta


def save_file(tensors, path, metadata=None):
    """As safetensors.torch.save_file: a state_dict (name -> tensor) to path."""
    save(path, tensors, metadata)


def load_file(path):
    """As safetensors.torch.load_file: name -> torch tensor in the file's dtype
    (F32, F64, F16 or BF16), without the metadata."""
    import numpy as np
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    kinds = {"F32": ("<f4", torch.float32), "F64": ("<f8", torch.float64), "F16": ("<f2", torch.float16)}
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        if e["dtype"] == "BF16":
            bits = np.frombuffer(data[a:b], dtype="<i2").astype(np.int16).reshape(e["shape"])
            out[name] = torch.from_numpy(bits.copy()).view(torch.bfloat16)
        else:
            np_dt, _ = kinds[e["dtype"]]
            out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype=np_dt).reshape(e["shape"]).copy())
    return out
