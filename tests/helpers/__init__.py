"""Shared test helpers, one module per topic; import from the module (``from helpers.data import ...``).

- `helpers.data`: test datasets, one family (image folders, packed images, byte datasets, a bench root).
- `helpers.samples`: a span read from disk, sample keys, "every key exactly once".
- `helpers.stores`: `DirStore`, `CountingStore`, `Remote` (a run area and how to reach it).
- `helpers.torch_state`: a tiny varied training state, bit-for-bit `assert_same`, raw safetensors.
- `helpers.http`: raw HTTP calls to the gateway, batch frames, a self-signed certificate.
- `helpers.secure`: a gateway with TLS (a private CA) and tokens of each scope.
- `helpers.world`: the gateway's bad-input world (tokens, snapshots, `World.unharmed`).
- `helpers.sockets`: loopback servers and clients for the WAN emulator's tests.
- `helpers.procs`: a process tree and its open-for-writing files, from /proc.
- `helpers.recipes`: run a trainer recipe of examples/trainers/ (crash, resume) and check its record.

The modules are not re-exported here: a test then imports only what it uses (the socket
tests need no torch), and each name says where it comes from.
"""
