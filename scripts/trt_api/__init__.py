"""The steps of ``scripts/extract_trt_api.py``, one module each.

- ``wheels``: download a ``tensorrt*-bindings`` wheel, record its SHA-256, unpack it as ``tensorrt``.
- ``elf``: read the extension's dynamic section; write the trapping stub libraries it links against.
- ``introspect``: the child programs that resolve symbols and walk ``import tensorrt``, and running them.
- ``extract``: one release from wheel to record, with the cross-check against the extension's strings.
- ``record``: the fields of a ``trt-<version>.json`` record and its deterministic text.
- ``names``: the name lookup over a record (shared with the tests) and the names ``__init__.py`` only leaks.
- ``known_facts``: the check of a record against ``rftrt/engines/data/trt_api/known_facts.json``.
- ``log``: progress messages on stderr.

Standard library only.
"""
