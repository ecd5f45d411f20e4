"""The shared library and its functions' signatures (ctypes)."""
import ctypes
import ctypes.util
import glob
import os


class Error(RuntimeError):
    """A failure inside libflowmatch, with its message."""


def _find():
    here = os.path.dirname(os.path.abspath(__file__))
    env = os.environ.get("FLOWMATCH_LIB")
    if env:
        return env
    local = sorted(glob.glob(os.path.join(here, "libflowmatch.so*")))  # make python copies it here
    if local:
        return local[0]
    tree = sorted(glob.glob(os.path.join(here, "..", "..", "build", "shared", "libflowmatch.so.*")))  # source tree
    if tree:
        return tree[0]
    found = ctypes.util.find_library("flowmatch")  # make install
    if found:
        return found
    raise ImportError("libflowmatch.so not found: run 'make python' (or 'make install'), or set FLOWMATCH_LIB")


lib = ctypes.CDLL(_find())

_P = ctypes.c_void_p
_S = ctypes.c_char_p
_I = ctypes.c_int
_SIGS = {
    "fm_version": (_S, []),
    "fm_last_error": (_S, []),
    "fm_method_count": (_I, []),
    "fm_method_name": (_S, [_I]),
    "fm_set_threads": (None, [_I]),
    "fm_train_config_new": (_P, [_S, _S]),
    "fm_train_config_free": (None, [_P]),
    "fm_train_config_set_option": (_I, [_P, _S, _S]),
    "fm_trainer_new": (_P, [_P]),
    "fm_trainer_free": (None, [_P]),
    "fm_trainer_step": (_I, [_P, ctypes.POINTER(ctypes.c_double)]),
    "fm_trainer_iter": (ctypes.c_int64, [_P]),
    "fm_trainer_save": (_I, [_P, _S]),
    "fm_st_load": (_P, [_S]),
    "fm_st_free": (None, [_P]),
    "fm_model_load": (_P, [_P, _I]),
    "fm_model_free": (None, [_P]),
    "fm_model_dim": (_I, [_P]),
    "fm_model_size": (ctypes.c_size_t, [_P]),
    "fm_model_method_name": (_S, [_P]),
    "fm_model_sample_named": (_I, [_P, _I, ctypes.c_uint64, _S, _I, ctypes.POINTER(ctypes.c_float)]),
    "fm_model_log_likelihood": (_I, [_P, ctypes.POINTER(ctypes.c_float), _I, _I, _I, ctypes.c_uint64,
                                     ctypes.POINTER(ctypes.c_double)]),
    "fm_model_set_schedule": (_I, [_P, _S]),
    "fm_train_config_batch": (_I, [_P, ctypes.c_uint64, _I, _I, _I] + [ctypes.POINTER(ctypes.c_float)] * 6),
}
for _name, (_res, _args) in _SIGS.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


def check(status):
    """Raise Error with the library's message for a status other than FM_OK."""
    if status != 0:
        raise Error(lib.fm_last_error().decode())
