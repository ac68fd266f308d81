"""Objects pickled by para-core 0.1.0 still load (module paths inside pickles).

``data/pickled_by_0_1_0.pkl`` was written by that version (commit 6693691);
it names the modules the objects were defined in then: ``_backend_base``,
``_backends``, ``_config``, ``_pickling``, ``_errors``, ``_transport``.
``tools/check_old_pickles.py`` at the repository root checks the same, plus
``para_persist.dump`` files and ``para_cache`` entries, against any commit.
"""

from __future__ import annotations

import os
import pickle

import para_core

DATA = os.path.join(os.path.dirname(__file__), "data", "pickled_by_0_1_0.pkl")


def test_objects_pickled_by_0_1_0_load_and_work():
    with open(DATA, "rb") as fh:
        objects = pickle.load(fh)
    batch = objects["batch"]
    assert type(batch) is para_core.BatchedCalls
    assert batch.first_index == 5
    assert batch() == [1, (3, 1)]
    assert [type(b) for b in objects["backends"]] == [
        para_core.LokyBackend,
        para_core.MultiprocessingBackend,
        para_core.SequentialBackend,
        para_core.ThreadingBackend,
    ]
    assert objects["backends"][3].nesting_level == 1
    assert objects["wrapped_function"](-4) == 4
    assert objects["wrapped_instance"].a == 1
    assert isinstance(objects["error"], para_core.WorkerTerminatedError)
    assert objects["default"].value is None
    assert objects["request"] == para_core.TransportRequest(
        backend="loky", n_jobs=2, temp_folder=None, max_nbytes=10, mmap_mode="r"
    )
