"""joblib 1.6.0 tests that the runner does not run against para, one reason each.

Keys are ``file`` (the whole file is not run), ``file::function`` (every
parametrisation) or ``file::function[id]``. Only tests that examine joblib
internals that para does not provide belong here, or behaviours that
docs/migrating.rst documents as deliberate differences (the reason says so).
"""

_BACKPORTS = (
    "joblib.backports (concurrency_safe_rename, make_memmap): joblib's private "
    "helpers; para's own atomic writes and memmaps are tested in its packages"
)
_MP_THREADS = (
    "joblib's multiprocessing backend refuses inner_max_num_threads; para's "
    "applies it in its pool's workers: docs/migrating.rst, "
    "'inner_max_num_threads'"
)
_DISK = "joblib.disk: joblib's private file-system helpers, not part of para"
_UTILS = "joblib._utils.eval_expr: helper of joblib's own code, not part of para"
_MEMORY_PRIVATE = (
    "joblib.memory's private helpers (_build_func_identifier, _STORE_BACKENDS, "
    "_store_backend_factory): para-cache organises its store differently; the "
    "public behaviour is covered by the other test_memory tests"
)

DESELECTED: dict[str, str] = {
    # Whole files.
    "test_numpy_pickle_compat.py": (
        "imports joblib.numpy_pickle_compat, joblib's reader of < 0.10 files; "
        "para's load reads those files itself (tested on joblib's sample files)"
    ),
    # Functions.
    "test_backports.py::test_memmap": _BACKPORTS,
    "test_backports.py::test_concurrency_safe_rename": _BACKPORTS,
    "test_cloudpickle_wrapper.py::test_wrap_non_picklable_objects": (
        "uses joblib._cloudpickle_wrapper._my_wrap_non_picklable_objects, a "
        "private twin of the public wrap_non_picklable_objects"
    ),
    "test_disk.py::test_disk_used": _DISK,
    "test_disk.py::test_memstr_to_bytes": _DISK,
    "test_disk.py::test_memstr_to_bytes_exception": _DISK,
    "test_disk.py::test_mkdirp": _DISK,
    "test_disk.py::test_rm_subdirs": _DISK,
    "test_func_inspect.py::test_clean_win_chars": (
        "joblib.func_inspect._clean_win_chars: a private helper of joblib's "
        "cache folder names"
    ),
    "test_memory.py::test__get_items": _MEMORY_PRIVATE,
    "test_memory.py::test__get_items_to_delete": _MEMORY_PRIVATE,
    "test_memory.py::test_dummy_store_backend": _MEMORY_PRIVATE,
    "test_memory.py::test_func_dir": _MEMORY_PRIVATE,
    "test_memory.py::test_instanciate_incomplete_store_backend": _MEMORY_PRIVATE,
    "test_memory.py::test_instanciate_store_backend_with_pathlib_path": (
        _MEMORY_PRIVATE
    ),
    "test_memory.py::test_memory_clear": _MEMORY_PRIVATE,
    "test_memory.py::test_memory_reduce_size_age_limit": _MEMORY_PRIVATE,
    "test_memory.py::test_memory_reduce_size_bytes_limit": _MEMORY_PRIVATE,
    "test_memory.py::test_memory_reduce_size_items_limit": _MEMORY_PRIVATE,
    "test_memory.py::test_warning_on_unknown_location_type": _MEMORY_PRIVATE,
    "test_store_backends.py::test_concurrency_safe_write": (
        "joblib._store_backends.concurrency_safe_write: joblib's private "
        "writer; para's stores write atomically by their own means"
    ),
    "test_utils.py::test_eval_expr_invalid": _UTILS,
    "test_utils.py::test_eval_expr_too_large_literal": _UTILS,
    "test_utils.py::test_eval_expr_too_long": _UTILS,
    "test_utils.py::test_eval_expr_valid": _UTILS,
    "test_hashing.py::test_hashes_stay_the_same": (
        "pins joblib's md5 digests; para's digests are its own (same equality "
        "rules, C pickler: faster): docs/migrating.rst, 'hash values'"
    ),
}

_NP_UTILS = (
    "joblib.numpy_pickle_utils's private helpers (_detect_compressor, "
    "_ensure_native_byte_order, _is_numpy_array_byte_order_mismatch, "
    "_IO_BUFFER_SIZE): para-persist detects formats and byte orders itself; "
    "the same behaviours are checked through dump/load by test_corpus.py"
)
DESELECTED.update(
    {
        "test_memmapping.py": (
            "imports joblib internals at module level: _memmapping_reducer "
            "(ArrayMemmapForwardReducer, _get_backing_memmap, _strided_from_"
            "memmap, _WeakArrayKeyMap, _get_temp_dir), backports.make_memmap "
            "and executor._TestingMemmappingExecutor; nearly every test "
            "examines those, so a name or two would not make it run. para's "
            "shared-memory transport is para-memmap, tested there"
        ),
        "test_numpy_pickle.py::test_numpy_persistence_bufferred_array_compression": (
            _NP_UTILS
        ),
        "test_numpy_pickle.py::test_compressed_pickle_dump_and_load": _NP_UTILS,
        "test_numpy_pickle.py::test_joblib_pickle_across_python_versions": _NP_UTILS,
        "test_numpy_pickle.py::test_joblib_pickle_across_python_versions_with_mmap": (
            "calls joblib.numpy_pickle_utils._ensure_native_byte_order (a "
            "private helper para does not provide) on its expected values; "
            "what it checks of load (joblib's warnings for < 0.10 files and "
            "for unaligned maps of 0.10-0.11 files, texts included; the "
            "values) is checked on the same files against joblib by "
            "tests-integration/test_persist_vs_joblib.py, and the test passes "
            "when that helper is stood in"
        ),
        "test_numpy_pickle.py::test_numpy_array_byte_order_mismatch_detection": (
            _NP_UTILS
        ),
        "test_numpy_pickle.py::test_compress_tuple_argument": _NP_UTILS,
        "test_numpy_pickle.py::test_compress_string_argument": _NP_UTILS,
        "test_numpy_pickle.py::test_joblib_compression_formats": _NP_UTILS,
        "test_numpy_pickle.py::test_compression_using_file_extension": _NP_UTILS,
        "test_numpy_pickle.py::test_object_array_inner_stream_uses_caller_find_class": (
            "subclasses joblib.numpy_pickle.NumpyUnpickler, which para does not "
            "offer (docs/migrating.rst, 'Deliberately not provided')"
        ),
        "test_numpy_pickle.py::test_binary_zlibfile": (
            "calls BinaryZlibFile._check_can_read / _check_can_write, private "
            "methods of joblib's implementation"
        ),
        "test_numpy_pickle.py::test_binary_zlibfile_invalid_modes": (
            "para's BinaryZlibFile also opens 'ab' and 'xb' (and 'r'/'w' as "
            "binary): docs/migrating.rst, 'BinaryZlibFile modes'"
        ),
        "test_config.py::test_threadpool_limitation_in_child_context_error"
        "[parallel_config-multiprocessing]": _MP_THREADS,
        "test_config.py::test_threadpool_limitation_in_child_context_error"
        "[parallel_config-backend2]": _MP_THREADS,
        "test_config.py::test_threadpool_limitation_in_child_context_error"
        "[parallel_backend-multiprocessing]": _MP_THREADS,
        "test_config.py::test_threadpool_limitation_in_child_context_error"
        "[parallel_backend-backend2]": _MP_THREADS,
        "test_parallel.py::test_error_capture": (
            "checks that the worker pool is replaced after a task raised; para "
            "keeps its workers after an Exception (no restart cost), and "
            "replaces them after KeyboardInterrupt, a timeout or a crash: "
            "docs/migrating.rst, 'Workers kept after a task error'"
        ),
        "test_parallel.py::test_batching_auto_threading": (
            "checks that batch_size='auto' leaves threads at one task per "
            "batch; para's threading backend batches fast tasks as its process "
            "backends do: docs/migrating.rst, 'Thread batching'"
        ),
        "test_numpy_pickle.py::test_memmap_alignment_padding[4]": (
            "protocol 4: para pickles arrays in-line with protocol < 5, so "
            "load(mmap_mode='r') gives an ndarray: docs/migrating.rst, "
            "'mmap_mode with protocol < 5'"
        ),
        "test_module.py::test_no_start_method_side_effect_on_import": (
            "relies on 'import joblib' importing loky (which registers the "
            "'loky' start method); 'import joblib' on para imports nothing "
            "until first use: docs/migrating.rst, 'import joblib is lazy'"
        ),
    }
)

# Files run only with PARA_JOBLIB_SUITE_FULL=1, for the time budget of
# ``make test`` (not deselected: they pass or fail like the others then).
SLOW_FILES: dict[str, str] = {
    "test_dask.py": (
        "starts a dask.distributed cluster per test: about 30 s each on two "
        "shared cores, over 10 minutes in all"
    ),
}
