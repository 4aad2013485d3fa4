"""The fuzz suite's machinery (tests/test_fuzz_*.py and scripts/fuzz use it).

``worker``      a child process that runs one hostile input at a time against layerlab
``harness``     the parent's side: a bounded call into the worker, the verdict on its answer
``mutate``      seeded byte-level mutations (bit flips, truncation, chunk duplication/deletion)
``strategies``  hypothesis strategies for history, manifests, OCI layouts, repo-info, tar streams
``registry``    a hostile Distribution-API server on 127.0.0.1
``long``        the long mode behind ``scripts/fuzz --minutes N``
"""
