"""joblib 1.6.0 tests that fail on para today, each with its cause and owner.

Not deliberate differences (those are deselected, see
para_suite_deselected.py): bugs or missing behaviour, fixed on the branch
named or to be fixed by the package named. ``test_joblib_suite.py`` fails on
any failure not listed here; a listed test that passes is reported (then
remove it from the list).
"""

KNOWN_FAILURES: dict[str, str] = {
    "test_numpy_pickle.py::test_joblib_pickle_across_python_versions_with_mmap": (
        "para-persist _npwrp.py: no UserWarning when memory-mapping an array "
        "of a joblib 0.10-0.11 file written without alignment padding"
    ),
    "test_parallel.py::<process>": (
        "para-core: the pytest process of test_parallel.py dies of a "
        "segmentation fault in the main thread in about half of the runs, at "
        "varying places where delayed() objects are made or dropped: reading "
        "a generator of delayed() calls (test_simple_parallel with a spawn "
        "context; test_abort_backend[2-None]) and delayed.forget() at the end "
        "of a call (test_initializer_reused[4]); not reproduced in isolation; "
        "_speedups.c reviewed for refcount errors without finding one"
    ),
    "test_init.py::<process>": (
        "para-core: once, the process of test_init.py (which only runs "
        "'from joblib import *') ended with SIGSEGV after its test passed, "
        "at interpreter exit; not reproduced in 8 runs, cause unknown"
    ),
}
