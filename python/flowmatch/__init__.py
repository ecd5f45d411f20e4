"""flowmatch: flow-matching generative models in plain C, from Python.

A thin layer over the shared library (libflowmatch.so, through ctypes): NumPy
arrays in, NumPy arrays out.

    import numpy as np, flowmatch
    model = flowmatch.train("moons", method="fm", path="ot", iters=2000)
    x = model.sample(1000, steps=8, solver="midpoint")      # (1000, 2) float32
    logp = model.log_prob(x[:100])                            # (100,) float64
    model.save("m.safetensors"); same = flowmatch.load("m.safetensors")

train() takes a dataset spec ("moons", "csv:table.csv", "mnist:data/mnist")
or a 2-D float array, and the train command's options as keyword arguments
(underscores for dashes: lr=1e-3, t_end=0.999, ve_sigma_max=5, sde="vp" for
method="score"). Errors raise flowmatch.Error with the library's message.
"""
import ctypes
import os
import tempfile

import numpy as np

from ._lib import lib, Error, check

__all__ = ["train", "load", "batch", "Model", "Error", "version", "methods", "set_threads"]


def version():
    """The shared library's version, e.g. '0.1.0'."""
    return lib.fm_version().decode()


def set_threads(n):
    """Threads for everything after (0: all cores). The same seed and thread
    count give the same bits."""
    if int(n) < 0:
        raise ValueError(f"threads must be >= 0, not {n}")
    lib.fm_set_threads(int(n))


def methods():
    """The registered methods' names: fm, ddpm, vae, gan, cnf, nf, score, rfm, dfm, meanflow."""
    return [lib.fm_method_name(i).decode() for i in range(lib.fm_method_count())]


def _c(s):
    return None if s is None else str(s).encode()


def _array_f32(x, name, dim=None):
    """x as a C-contiguous float32 (n, d) array, checked."""
    a = np.asarray(x)
    if a.ndim == 1 and dim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d), not of shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold numbers, not {a.dtype}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name} has {a.shape[1]} columns; the model has {dim} dimensions")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return a


class Model:
    """A trained model of any method (a checkpoint), for sampling, likelihoods
    and saving. Made by train() or load(); frees its memory when collected."""

    def __init__(self, handle, path_bytes=None, trainer=None):
        self._h = handle
        self._bytes = path_bytes  # the checkpoint it was loaded from (save() copies it)
        self._tr = trainer        # the trainer it came from (save() writes a resumable checkpoint)
        self.dim = lib.fm_model_dim(handle)
        self.method = lib.fm_model_method_name(handle).decode()
        self.parameters = lib.fm_model_size(handle)

    def __repr__(self):
        return f"flowmatch.Model(method={self.method!r}, dim={self.dim}, parameters={self.parameters})"

    def __del__(self):
        if getattr(self, "_h", None):
            lib.fm_model_free(self._h)
            self._h = None
        if getattr(self, "_tr", None):
            lib.fm_trainer_free(self._tr)
            self._tr = None

    def sample(self, n, steps=None, solver=None, seed=0, schedule=None):
        """n samples as a (n, dim) float32 array. solver: an ODE solver
        ("euler", "midpoint", "heun", "heun3", "rk4", "dopri5"), a stochastic one for
        flows ("sde", "em", "pc"), or DDPM's ("ancestral", "ddim"); None the
        model's default, as steps None is. schedule: a path name ("cosine",
        "vp", ...) to sample a flow-matching model along instead of its
        training path (a schedule transformation)."""
        n = int(n)
        if n < 1:
            raise ValueError(f"n must be >= 1, not {n}")
        out = np.empty((n, self.dim), dtype=np.float32)
        if schedule is not None:
            check(lib.fm_model_set_schedule(self._h, _c(schedule)))
        try:
            check(lib.fm_model_sample_named(self._h, n, int(seed), _c(solver), int(steps or 0),
                                            out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))))
        finally:
            if schedule is not None:
                lib.fm_model_set_schedule(self._h, None)
        return out

    def log_prob(self, x, steps=100, probes=0, seed=0):
        """log p(x) per row (float64): exact for a normalizing flow; for a flow
        by its ODE (rk4, steps steps) with the exact divergence, or Hutchinson's
        with `probes` probes."""
        a = _array_f32(x, "x", self.dim)
        out = np.empty(a.shape[0], dtype=np.float64)
        check(lib.fm_model_log_likelihood(self._h, a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), a.shape[0],
                                          int(steps), int(probes), int(seed),
                                          out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))))
        return out

    def save(self, path):
        """Write the checkpoint (resumable by `flowmatch train --resume` when
        it came from train())."""
        path = os.fspath(path)
        if self._tr:
            check(lib.fm_trainer_save(self._tr, _c(path)))
        else:
            with open(path, "wb") as f:
                f.write(self._bytes)


def _load_handle(path, ema=True):
    st = lib.fm_st_load(_c(path))
    if not st:
        raise Error(lib.fm_last_error().decode())
    try:
        h = lib.fm_model_load(st, 1 if ema else 0)
        if not h:
            raise Error(lib.fm_last_error().decode())
        return h
    finally:
        lib.fm_st_free(st)


def load(path, ema=True):
    """A checkpoint of any method written by flowmatch (the EMA weights when
    it has them and ema is True)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    return Model(_load_handle(path, ema), path_bytes=data)


def _path_first(options):
    """The options with "path" first: setting a path resets its parameters
    (sigma, ...) to the path's defaults, so they must come after it."""
    return sorted(options.items(), key=lambda kv: kv[0] != "path")


def batch(x0, x1, t=None, seed=0, **options):
    """One flow-matching training batch as train draws it (torchcfm's
    sample_location_and_conditional_flow with return_noise=True): x0 and x1
    (n, d) are paired by the coupling option ("independent", "ot" or "sb"),
    t (n) drawn uniformly unless given, and with eps the path's noise,
    xt = a x1 + b x0 + c eps and ut its time derivative. options: the train
    command's path options (path="cosine", sigma=0.1, sigma_min=..,
    coupling="ot", ...). Returns t, xt, ut, eps, x0, x1 (the last two as
    paired)."""
    a0 = _array_f32(x0, "x0").copy()
    a1 = _array_f32(x1, "x1").copy()
    if a0.shape != a1.shape:
        raise ValueError(f"x0 {a0.shape} and x1 {a1.shape} must have the same shape")
    n, d = a0.shape
    tt = np.zeros(n, dtype=np.float32) if t is None else np.ascontiguousarray(np.broadcast_to(t, (n,)), dtype=np.float32)
    eps, xt, ut = (np.empty((n, d), dtype=np.float32) for _ in range(3))
    cfg = lib.fm_train_config_new(b"fm", b"moons")
    if not cfg:
        raise Error(lib.fm_last_error().decode())
    f32 = ctypes.POINTER(ctypes.c_float)
    if options.get("coupling") == "sb" and "path" not in options:
        options["path"] = "sb"  # the bridge comes with its plan, as on the command line
    try:
        for k, v in _path_first(options):
            check(lib.fm_train_config_set_option(cfg, _c(k.replace("_", "-")), _c(v)))
        check(lib.fm_train_config_batch(cfg, int(seed), n, d, 0 if t is None else 1,
                                        *(a.ctypes.data_as(f32) for a in (a0, a1, tt, eps, xt, ut))))
    finally:
        lib.fm_train_config_free(cfg)
    return tt, xt, ut, eps, a0, a1


def train(data, method="fm", iters=10000, progress=None, every=None, **options):
    """Train a model and return it. data: a dataset spec or a (n, d) array;
    method: "fm", "score", "ddpm", "cnf", "nf", "vae", "gan"; options: the
    train command's (lr, batch, seed, path, width, depth, act, ema, ...).
    progress(iteration, loss) is called every `every` iterations (default
    iters // 100); without it a tqdm bar is shown when tqdm is installed and
    iters >= 1000."""
    tmpdir = tempfile.mkdtemp(prefix="flowmatch-")
    try:
        if isinstance(data, str):
            spec = data
        else:
            a = _array_f32(data, "data")
            if a.shape[0] < 2:
                raise ValueError("data needs at least 2 rows")
            spec = "npy:" + os.path.join(tmpdir, "data.npy")
            np.save(spec[4:], a)
        cfg = lib.fm_train_config_new(_c(method), _c(spec))
        if not cfg:
            raise Error(lib.fm_last_error().decode())
        try:
            check(lib.fm_train_config_set_option(cfg, b"iters", _c(int(iters))))
            for k, v in _path_first(options):
                if isinstance(v, bool):
                    v = int(v)
                check(lib.fm_train_config_set_option(cfg, _c(k.replace("_", "-")), _c(v)))
            tr = lib.fm_trainer_new(cfg)
            if not tr:
                raise Error(lib.fm_last_error().decode())
        finally:
            lib.fm_train_config_free(cfg)
        try:
            _run(tr, int(iters), progress, every)
            ck = os.path.join(tmpdir, "model.safetensors")
            check(lib.fm_trainer_save(tr, _c(ck)))
            h = _load_handle(ck, True)
        except BaseException:
            lib.fm_trainer_free(tr)
            raise
        return Model(h, trainer=tr)
    finally:
        for f in os.listdir(tmpdir):
            os.remove(os.path.join(tmpdir, f))
        os.rmdir(tmpdir)


def _run(tr, iters, progress, every):
    loss = ctypes.c_double(0)
    every = max(1, int(every or iters // 100 or 1))
    bar = None
    if progress is None and iters >= 1000:
        try:
            from tqdm import tqdm
            bar = tqdm(total=iters, desc="flowmatch train")
        except ImportError:
            bar = None
    try:
        done = lib.fm_trainer_iter(tr)
        for i in range(done, iters):
            check(lib.fm_trainer_step(tr, ctypes.byref(loss)))
            if (i + 1) % every == 0 or i + 1 == iters:
                if progress:
                    progress(i + 1, loss.value)
                if bar:
                    bar.update((i + 1) - bar.n)
                    bar.set_postfix(loss=f"{loss.value:.4f}")
    finally:
        if bar:
            bar.close()
