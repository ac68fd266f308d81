"""The execution backends of ``Parallel``, one module each.

``_base`` holds the protocol users extend (``ParallelBackendBase``,
``AutoBatchingMixin``, ``FallbackToBackend``); ``_threads`` the sequential
and threading backends; ``_process`` and ``_packets`` what the process
backends share (batches pickled in the caller, run by the workers);
``_loky``, ``_multiprocessing`` and ``_dask`` (with ``_dask_tasks``, its
worker side) one backend each. The public names are ``para_core``'s; this
package imports nothing, so that a worker loading ``_packets`` pays for that
module only, and the registry (``para_core._registry``) imports each backend
module when a backend of its name is first made.
"""

__all__: list[str] = []
