"""The streaming embedding engine: tokenise → batch → device → write, each stage overlapped with the others.

* :mod:`~virnucpro.engine.stream` reads a FASTA in bounded chunks and prepares them (tokenise, batch, pad, pin) in
  worker threads ahead of the device;
* :mod:`~virnucpro.engine.batching` holds the chunk/batch shapes (flat tokens + offsets, padded-budget batching);
* :mod:`~virnucpro.engine.flight` is the device loop (several batches in flight, asynchronous copies, OOM back-off);
* :mod:`~virnucpro.engine.transfer` brings results back (at once on CPU; pinned buffer + event on CUDA);
* :mod:`~virnucpro.engine.backoff` says which errors are out-of-memory and remembers the batch size that fits;
* :mod:`~virnucpro.engine.sink` restores input order and writes from a background thread.

:class:`virnucpro.embed.Embedder` wires them to a loaded encoder; the engine itself knows nothing of models beyond a
``step(ids, mask, padded) → means`` function and a pad id.
"""
